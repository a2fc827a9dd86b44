/**
 * Builds a LayersModel from a checked `model.json`, setting its weights one tensor at a time
 * from a reader of the weight groups' bytes. `tf.loadLayersModel` decodes every weight before
 * setting any, so a model briefly takes twice its weights in the backend (the layers' zeros
 * and the decoded values) besides the bytes read; here the backend holds the weights plus one
 * tensor, and only one weight group's bytes are read at a time.
 *
 * The model is made exactly as `tf.loadLayersModel` makes it (TF.js's own `fromConfig`, with
 * its fast zero initialisation of the weights that are about to be set), and the weights are
 * decoded by TF.js (`tf.io.decodeWeights`, which dequantizes quantized entries), so the result
 * is the same model.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { type CheckedModelJson, weightEntryBytes } from './artifacts.js';
import { disposeModel } from './dispose-model.js';
import { pythonicToTs } from './keras-layer-shapes.js';
import { corrupt, modelBuildError } from './model-errors.js';
import { manifestWeightQuantization, rememberWeightQuantization } from './source-quantization.js';

/** Reads the stored bytes of group `group` of the weights manifest. */
export type WeightGroupReader = (group: number) => Promise<Uint8Array>;

/**
 * Makes the model of a topology (`{ class_name, config }`, or a `model_config` envelope of it)
 * with zero-filled weights: no initialiser runs, as when TF.js loads a model whose weights are
 * about to be set.
 *
 * @throws DinferError MODEL_UNSUPPORTED for unknown layer classes, MODEL_CORRUPT otherwise.
 */
export function zeroWeightModel(modelTopology: unknown, path: string): tf.LayersModel {
  const stored = (modelTopology ?? {}) as Record<string, unknown>;
  const topology = (typeof stored.model_config === 'object' ? stored.model_config : stored) as Record<
    string,
    unknown
  >;
  const cls = topology.class_name === 'Sequential' ? tf.Sequential : tf.LayersModel;
  try {
    const config = pythonicToTs(topology.config) as tf.serialization.ConfigDict;
    return cls.fromConfig(cls as never, config, {}, true) as tf.LayersModel;
  } catch (error) {
    throw modelBuildError(path, error);
  }
}

/**
 * Builds the model of `json` and sets every weight from `readGroup`, one group's bytes and one
 * decoded tensor at a time. Weights the manifest stores quantized are dequantized, and their
 * stored form is remembered (`sourceWeightQuantization`), as `modelFromArtifacts` does.
 *
 * @param path Names the model in messages and `details.path`.
 * @throws DinferError MODEL_CORRUPT when a group holds other than the bytes its weights need,
 *   a weight has no variable of its name and shape, or a variable gets no weight;
 *   MODEL_UNSUPPORTED for unknown layer classes. Nothing is left allocated.
 */
export async function modelFromWeightGroups(
  json: CheckedModelJson,
  readGroup: WeightGroupReader,
  path: string,
): Promise<tf.LayersModel> {
  const model = zeroWeightModel(json.modelTopology, path);
  try {
    const variables = new Map<string, tf.LayerVariable>();
    for (const variable of model.weights) {
      if (variables.has(variable.originalName)) {
        throw corrupt(path, `the model has two weights named ${variable.originalName}`);
      }
      variables.set(variable.originalName, variable);
    }
    const unset = new Set(variables.keys());
    for (const [g, group] of json.weightsManifest.entries()) {
      const bytes = await readGroup(g);
      const needed = group.weights.reduce((sum, entry) => sum + (weightEntryBytes(entry) ?? 0), 0);
      if (bytes.byteLength !== needed) {
        throw corrupt(
          path,
          `weight group ${g} (${group.paths.join(', ')}) holds ${bytes.byteLength} bytes but its ${group.weights.length} weights need ${needed}`,
          { group: g, expectedBytes: needed, actualBytes: bytes.byteLength },
        );
      }
      let offset = 0;
      for (const entry of group.weights) {
        const size = weightEntryBytes(entry) ?? 0;
        const variable = variables.get(entry.name);
        if (variable === undefined || !unset.has(entry.name)) {
          throw corrupt(
            path,
            `weight ${entry.name} of the manifest matches no weight of the model (or comes twice)`,
            {
              weight: entry.name,
            },
          );
        }
        // An exact buffer: TF.js reads the values from offset 0 of what it is given.
        const buffer = bytes.buffer.slice(
          bytes.byteOffset + offset,
          bytes.byteOffset + offset + size,
        ) as ArrayBuffer;
        offset += size;
        const value = tf.io.decodeWeights(buffer, [entry])[entry.name]!;
        try {
          variable.write(value);
        } catch (error) {
          throw corrupt(
            path,
            `weight ${entry.name} has shape [${entry.shape.join(', ')}], the model's [${variable.shape.join(', ')}]`,
            { weight: entry.name },
            error,
          );
        } finally {
          value.dispose();
        }
        unset.delete(entry.name);
      }
    }
    if (unset.size > 0) {
      throw corrupt(
        path,
        `${unset.size} of ${variables.size} weights are not in the manifest: ${[...unset].join(', ')}`,
      );
    }
  } catch (error) {
    disposeModel(model);
    throw error;
  }
  if (json.userDefinedMetadata !== undefined) model.setUserDefinedMetadata(json.userDefinedMetadata);
  rememberWeightQuantization(
    model,
    manifestWeightQuantization(json.weightsManifest.flatMap((group) => group.weights)),
  );
  return model;
}
