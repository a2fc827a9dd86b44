/**
 * What an image must become to feed a model: the size and channels of its one input
 * `[null, H, W, C]` (C = 1 greyscale, C = 3 RGB) and the dtype of the values.
 *
 * @module
 */
import { DinferError, DinferErrorCode, type ServedModel } from '@dinfer/core';

/** Channel counts an image input can have: 1 (greyscale) or 3 (RGB). */
export type ImageChannels = 1 | 3;

/** The image a model input takes. */
export interface ImageTarget {
  /** Input name, for the tensor. */
  readonly name: string;
  /** Rows, or `null` when the model takes any height (the image keeps its own). */
  readonly height: number | null;
  /** Columns, or `null` when the model takes any width (the image keeps its own). */
  readonly width: number | null;
  readonly channels: ImageChannels;
  /**
   * `float32`: normalised values; `int32`: raw 0..255 pixels (sent as a `uint8` tensor,
   * which feeds int32 inputs).
   */
  readonly dtype: 'float32' | 'int32';
}

function bad(message: string): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message);
}

const formatShape = (shape: readonly (number | null)[]) =>
  `[${shape.map((d) => (d === null ? 'null' : String(d))).join(',')}]`;

/**
 * The image `model` takes.
 *
 * @throws DinferError INVALID_ARGUMENT when the model does not take exactly one float32 or
 *   int32 input of shape `[null, H, W, 1|3]`.
 */
export function imageTargetOf(model: ServedModel): ImageTarget {
  if (model.inputs.length !== 1) {
    throw bad(
      `model "${model.name}" takes ${model.inputs.length} inputs, not one image; use POST /v2/models/${model.name}/infer`,
    );
  }
  const spec = model.inputs[0]!;
  const [batch, height, width, channels] = spec.shape;
  if (spec.shape.length !== 4 || batch !== null || (channels !== 1 && channels !== 3)) {
    throw bad(
      `model "${model.name}" input "${spec.name}" has shape ${formatShape(spec.shape)}, ` +
        'not an image batch [null,height,width,1|3]; send a tensor as JSON instead',
    );
  }
  if (spec.dtype !== 'float32' && spec.dtype !== 'int32') {
    throw bad(
      `model "${model.name}" input "${spec.name}" has dtype ${spec.dtype}; images feed float32 or int32 inputs`,
    );
  }
  return { name: spec.name, height: height ?? null, width: width ?? null, channels, dtype: spec.dtype };
}
