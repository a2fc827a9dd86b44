/**
 * Runs a LayersModel's own graph on concrete tensors, one layer call after another: the loop
 * `model.predict` runs inside (tfjs-layers' `execute`), without predict's batch loop around
 * it. `predict` slices every input into batches and concatenates every output afterwards; on
 * the wasm backend both are full copies of the tensor (a 1.6 MB activation costs two), and
 * the run cannot be interrupted. Here the inputs go in as they are, the outputs come out as
 * the layers made them, and an asynchronous run can pause between layer calls, so a worker's
 * event loop keeps reading its socket while a stage computes.
 *
 * A synchronous and an asynchronous run execute the same layer calls in the same order with
 * the same arguments as `predict` (inference mode, masks passed on), so all three give the
 * same numbers.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';

type Layer = tf.layers.Layer;
type LayerNode = Layer['inboundNodes'][number];

/** One layer call: reads the values of `inputs`, writes those of `outputs` (symbolic tensor ids). */
interface Step {
  readonly layer: Layer;
  readonly inputs: readonly number[];
  readonly outputs: readonly number[];
  /** Inputs read for the last time here, freed once the call is done. */
  readonly lastUses: readonly number[];
}

/** How an asynchronous run shares its thread. */
export interface GraphRunOptions {
  /**
   * Called between two layer calls once the run has computed for `sliceMs` since it started
   * or last paused; the run goes on when the promise resolves (e.g. after one turn of the
   * event loop).
   */
  readonly pause: () => Promise<void>;
  /** Milliseconds of computing between two pauses. */
  readonly sliceMs: number;
  /** Checked at every pause: an aborted run frees what it made and rejects with `DINFER_ERR_ABORTED`. */
  readonly signal?: AbortSignal | undefined;
}

/** A model's graph, ordered once, ready to run many times. */
export interface GraphRunner {
  readonly model: tf.LayersModel;
  /**
   * Runs the graph on `inputs` (in `model.inputs` order) and returns new tensors in
   * `model.outputs` order, which the caller disposes; the inputs are left alone (an output
   * that is an input comes back as a copy). Every intermediate tensor is freed after its last
   * use.
   *
   * @throws DinferError TENSOR_INVALID for inputs whose count, dtype or shape do not fit.
   */
  run(inputs: readonly tf.Tensor[]): tf.Tensor[];
  /** {@link GraphRunner.run}, pausing between layer calls as `options` say. */
  runAsync(inputs: readonly tf.Tensor[], options: GraphRunOptions): Promise<tf.Tensor[]>;
}

function invalid(model: tf.LayersModel, message: string, details: Record<string, unknown> = {}): DinferError {
  return new DinferError(DinferErrorCode.TENSOR_INVALID, `model "${model.name}": ${message}`, { details });
}

/** The node that computes `tensor` in its model's graph. */
function producerOf(tensor: tf.SymbolicTensor): LayerNode {
  const node = tensor.sourceLayer.inboundNodes[tensor.nodeIndex];
  if (node === undefined) {
    throw new DinferError(
      DinferErrorCode.MODEL_UNSUPPORTED,
      `tensor "${tensor.name}" has no producing node in layer "${tensor.sourceLayer.name}"`,
    );
  }
  return node;
}

/**
 * The layer calls that compute the model's outputs from its inputs, in an executable order
 * (each after the calls that produce its inputs), with the last use of every tensor.
 */
function orderSteps(model: tf.LayersModel): Step[] {
  const inputIds = new Set(model.inputs.map((t) => t.id));
  const nodes: LayerNode[] = [];
  const seen = new Set<LayerNode>();
  // Depth-first from the outputs, without recursion: a node is listed after its producers.
  const stack: { node: LayerNode; next: number }[] = [];
  const visit = (tensor: tf.SymbolicTensor): void => {
    if (inputIds.has(tensor.id)) return;
    const node = producerOf(tensor);
    if (seen.has(node)) return;
    seen.add(node);
    stack.push({ node, next: 0 });
  };
  for (const output of model.outputs) {
    visit(output);
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const input = top.node.inputTensors[top.next++];
      if (input !== undefined) {
        visit(input);
        continue;
      }
      stack.pop();
      // An input layer's node has no inputs: its output is a model input, nothing to run.
      if (top.node.inputTensors.length > 0) nodes.push(top.node);
    }
  }
  const last = new Map<number, number>();
  nodes.forEach((node, i) => {
    for (const t of node.inputTensors) last.set(t.id, i);
  });
  const kept = new Set<number>([...inputIds, ...model.outputs.map((t) => t.id)]);
  return nodes.map((node, i) => {
    const inputs = node.inputTensors.map((t) => t.id);
    return {
      layer: node.outboundLayer,
      inputs,
      outputs: node.outputTensors.map((t) => t.id),
      lastUses: [...new Set(inputs)].filter(
        (id) => last.get(id) === i && !kept.has(id) && !isStatefulOutput(node, id),
      ),
    };
  });
}

/** Outputs of stateful layers are never freed early (tfjs-layers keeps them too). */
function isStatefulOutput(node: LayerNode, id: number): boolean {
  const tensor = node.inputTensors.find((t) => t.id === id);
  return tensor?.sourceLayer.stateful === true;
}

function checkInputs(model: tf.LayersModel, inputs: readonly tf.Tensor[]): void {
  if (inputs.length !== model.inputs.length) {
    throw invalid(model, `takes ${model.inputs.length} input tensors, got ${inputs.length}`);
  }
  inputs.forEach((x, i) => {
    const spec = model.inputs[i]!;
    const fits =
      x.rank === spec.shape.length && spec.shape.every((d, axis) => d === null || d === x.shape[axis]);
    if (!fits || x.dtype !== spec.dtype) {
      throw invalid(
        model,
        `input ${i} (${spec.name}) is ${x.dtype} [${x.shape.join(', ')}], expected ${spec.dtype} [${spec.shape.map((d) => d ?? '?').join(', ')}]`,
        { input: i },
      );
    }
  });
}

/** The state of one run: the values computed so far. */
class Execution {
  readonly #model: tf.LayersModel;
  readonly #steps: readonly Step[];
  readonly #values = new Map<number, tf.Tensor>();
  readonly #masks = new Map<number, tf.Tensor>();
  /** Everything this run created and has not handed out. */
  readonly #owned = new Set<tf.Tensor>();
  #next = 0;

  constructor(model: tf.LayersModel, steps: readonly Step[], inputs: readonly tf.Tensor[]) {
    checkInputs(model, inputs);
    this.#model = model;
    this.#steps = steps;
    model.inputs.forEach((spec, i) => {
      this.#values.set(spec.id, inputs[i]!);
    });
  }

  get done(): boolean {
    return this.#next >= this.#steps.length;
  }

  /** Runs the next layer call. */
  step(): void {
    const step = this.#steps[this.#next++]!;
    const args = step.inputs.map((id) => this.#values.get(id)!);
    const masks = step.inputs.map((id) => this.#masks.get(id) ?? null);
    const masked = masks.some((m) => m !== null);
    // As tfjs-layers' execute (predict's loop): the list of inputs, the first mask if any.
    const kwargs = masked ? { mask: masks[0] ?? undefined } : undefined;
    let mask: tf.Tensor | null = null;
    const kept = tf.tidy(() => {
      const result = step.layer.apply(args, kwargs) as tf.Tensor | tf.Tensor[];
      const list = Array.isArray(result) ? result : [result];
      if (!step.layer.supportsMasking) return list;
      const computed = step.layer.computeMask(args, masks as tf.Tensor[]) as tf.Tensor | tf.Tensor[] | null;
      // As execute again: every output carries the first output mask.
      const first = (Array.isArray(computed) ? computed[0] : computed) ?? null;
      if (first === null) return list;
      mask = first;
      return [...list, first];
    });
    const outputs = mask === null ? kept : kept.slice(0, -1);
    outputs.forEach((value, i) => {
      const id = step.outputs[i];
      if (id === undefined) {
        value.dispose();
        return;
      }
      this.#values.set(id, value);
      this.#owned.add(value);
      if (mask !== null) {
        this.#masks.set(id, mask);
        this.#owned.add(mask);
      }
    });
    for (const id of step.lastUses) {
      const value = this.#values.get(id);
      this.#values.delete(id);
      if (value !== undefined && this.#owned.delete(value)) value.dispose();
    }
  }

  /** Hands out the outputs (a copy of any that is an input or appears twice) and frees the rest. */
  finish(): tf.Tensor[] {
    const handed = new Set<tf.Tensor>();
    const outputs = this.#model.outputs.map((spec) => {
      const value = this.#values.get(spec.id)!;
      if (this.#isInput(value) || handed.has(value)) return value.clone();
      handed.add(value);
      this.#owned.delete(value);
      return value;
    });
    this.abandon();
    return outputs;
  }

  /** Frees everything the run made and still holds. */
  abandon(): void {
    for (const tensor of this.#owned) tensor.dispose();
    this.#owned.clear();
    this.#values.clear();
    this.#masks.clear();
  }

  #isInput(value: tf.Tensor): boolean {
    return this.#model.inputs.some((spec) => this.#values.get(spec.id) === value);
  }
}

class ModelGraphRunner implements GraphRunner {
  readonly model: tf.LayersModel;
  readonly #steps: readonly Step[];

  constructor(model: tf.LayersModel) {
    this.model = model;
    this.#steps = orderSteps(model);
  }

  run(inputs: readonly tf.Tensor[]): tf.Tensor[] {
    const execution = new Execution(this.model, this.#steps, inputs);
    try {
      while (!execution.done) execution.step();
      return execution.finish();
    } catch (error) {
      execution.abandon();
      throw error;
    }
  }

  async runAsync(inputs: readonly tf.Tensor[], options: GraphRunOptions): Promise<tf.Tensor[]> {
    const execution = new Execution(this.model, this.#steps, inputs);
    try {
      let sliceStart = performance.now();
      while (!execution.done) {
        execution.step();
        if (execution.done || performance.now() - sliceStart < options.sliceMs) continue;
        await options.pause();
        if (options.signal?.aborted) {
          throw new DinferError(DinferErrorCode.ABORTED, `model "${this.model.name}": the run was aborted`, {
            cause: options.signal.reason,
          });
        }
        sliceStart = performance.now();
      }
      return execution.finish();
    } catch (error) {
      execution.abandon();
      throw error;
    }
  }
}

const runners = new WeakMap<tf.LayersModel, GraphRunner>();

/**
 * The {@link GraphRunner} of `model`, ordered on first use and kept while the model lives
 * (a LayersModel's graph does not change once built).
 *
 * @throws DinferError MODEL_UNSUPPORTED for a graph that cannot be ordered.
 */
export function graphRunner(model: tf.LayersModel): GraphRunner {
  let runner = runners.get(model);
  if (runner === undefined) {
    runner = new ModelGraphRunner(model);
    runners.set(model, runner);
  }
  return runner;
}
