/**
 * Options shared by the generated example image classifiers, and their validation.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';

/** Options for the generated ImageNet-style classifiers ({@link resnet50}, {@link mobilenetV2}). */
export interface ExampleModelOptions {
  /** Input `[height, width, 3]`; default `[224, 224, 3]`. Height and width must be at least 32. */
  readonly inputShape?: readonly [number, number, 3];
  /** Number of output classes; default 1000. */
  readonly classes?: number;
  /** Seed of the generated weights; default 1. The same seed gives bit-identical weights. */
  readonly seed?: number;
}

/** {@link ExampleModelOptions} with defaults applied and values checked. */
export interface ResolvedModelOptions {
  readonly inputShape: readonly [number, number, 3];
  readonly classes: number;
  readonly seed: number;
}

/** The default seed of generated example weights. */
export const DEFAULT_MODEL_SEED = 1;

/**
 * Applies defaults to {@link ExampleModelOptions} and checks them, throwing
 * `DINFER_ERR_INVALID_ARGUMENT` for a shape that is not `[h >= 32, w >= 32, 3]`, a class count
 * that is not a positive integer, or a seed that is not an integer.
 */
export function resolveModelOptions(model: string, options: ExampleModelOptions = {}): ResolvedModelOptions {
  const inputShape = options.inputShape ?? ([224, 224, 3] as const);
  const classes = options.classes ?? 1000;
  const seed = options.seed ?? DEFAULT_MODEL_SEED;
  const [height, width, channels] = inputShape;
  const dimOk = (d: number): boolean => Number.isInteger(d) && d >= 32;
  if (inputShape.length !== 3 || !dimOk(height) || !dimOk(width) || channels !== 3) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `${model}: inputShape must be [height >= 32, width >= 32, 3] (integers), got [${inputShape.join(', ')}]`,
      { details: { model, inputShape } },
    );
  }
  if (!Number.isInteger(classes) || classes < 1) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `${model}: classes must be a positive integer, got ${classes}`,
      { details: { model, classes } },
    );
  }
  if (!Number.isInteger(seed)) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `${model}: seed must be an integer, got ${seed}`,
      {
        details: { model, seed },
      },
    );
  }
  return { inputShape, classes, seed };
}
