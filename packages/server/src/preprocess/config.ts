/**
 * Per-model image preprocessing settings: how decoded pixels (0..255) become the values a
 * model was trained on, `value = (pixel * scale - mean[c]) / std[c]`, and how an image is
 * fitted to the model's input size.
 *
 * @module
 */
import { DinferError, DinferErrorCode, type ServedModel } from '@dinfer/core';

/** How an image whose aspect ratio differs from the model input's is fitted to it. */
export type ImageFit = 'fill' | 'cover' | 'contain';

/** Every {@link ImageFit}, for validation. */
export const IMAGE_FITS: readonly ImageFit[] = ['fill', 'cover', 'contain'];

/**
 * Normalisation of one model's image input. Channels are in model order (R, G, B; one
 * channel for greyscale models). A `mean` or `std` of one value applies to every channel.
 */
export interface PreprocessConfig {
  /** Multiplies each 0..255 pixel first. Default `1 / 255`. */
  readonly scale?: number | undefined;
  /** Subtracted per channel after scaling. Default 0. */
  readonly mean?: readonly number[] | undefined;
  /** Divides per channel after subtracting the mean. Default 1. */
  readonly std?: readonly number[] | undefined;
  /**
   * `fill` (default) stretches to the input size; `cover` scales to cover it and crops the
   * centre; `contain` scales to fit inside it and pads with black.
   */
  readonly fit?: ImageFit | undefined;
}

/** A {@link PreprocessConfig} with every default applied and one mean/std per channel. */
export interface ResolvedPreprocess {
  readonly scale: number;
  readonly mean: readonly number[];
  readonly std: readonly number[];
  readonly fit: ImageFit;
}

/**
 * The preprocessing of each served model: a record by model name, or a function of the
 * model (return `undefined` for the defaults).
 */
export type PreprocessOption =
  | Readonly<Record<string, PreprocessConfig>>
  | ((model: ServedModel) => PreprocessConfig | undefined);

/** The default: pixels scaled to [0, 1], no mean, unit std, stretched to the input size. */
export const DEFAULT_PIXEL_SCALE = 1 / 255;

/** A preprocessing config is the server's configuration, not the client's input. */
function bad(message: string): DinferError {
  return new DinferError(DinferErrorCode.CONFIG_INVALID, message);
}

function perChannel(
  values: readonly number[] | undefined,
  fallback: number,
  channels: number,
  what: string,
): number[] {
  if (values === undefined) return new Array<number>(Math.max(channels, 1)).fill(fallback);
  if (
    !Array.isArray(values) ||
    values.length === 0 ||
    (values.length !== 1 && channels > 0 && values.length !== channels)
  ) {
    throw bad(`${what} must hold 1 or ${channels} numbers (one per channel), got ${JSON.stringify(values)}`);
  }
  for (const v of values) {
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw bad(`${what} ${JSON.stringify(values)} must be finite numbers`);
  }
  return values.length === 1 && channels > 1 ? new Array<number>(channels).fill(values[0]!) : [...values];
}

/**
 * Checks `config` for a model input with `channels` channels and fills in the defaults.
 *
 * @param channels the channels of the model input; 0 checks the config without a model (any
 *   mean/std length is then accepted, and the result keeps the lengths given).
 * @param where names the config in messages, e.g. `preprocess of model "resnet"`.
 * @throws DinferError CONFIG_INVALID for a non-finite scale, a mean/std of the wrong length,
 *   a zero or non-finite std, or an unknown fit.
 */
export function resolvePreprocess(
  config: PreprocessConfig | undefined,
  channels: number,
  where = 'preprocess config',
): ResolvedPreprocess {
  const scale = config?.scale ?? DEFAULT_PIXEL_SCALE;
  if (typeof scale !== 'number' || !Number.isFinite(scale)) {
    throw bad(`${where}: scale ${String(scale)} must be a finite number`);
  }
  const mean = perChannel(config?.mean, 0, channels, `${where}: mean`);
  const std = perChannel(config?.std, 1, channels, `${where}: std`);
  if (std.some((s) => s === 0)) throw bad(`${where}: std ${JSON.stringify(std)} must not contain 0`);
  const fit = config?.fit ?? 'fill';
  if (!IMAGE_FITS.includes(fit)) {
    throw bad(`${where}: fit "${String(fit)}" must be one of ${IMAGE_FITS.join(', ')}`);
  }
  return { scale, mean, std, fit };
}

/**
 * The configured preprocessing of `model` (`undefined` when none is set).
 *
 * @throws DinferError CONFIG_INVALID when `option` is neither a record nor a function.
 */
export function preprocessConfigFor(
  option: PreprocessOption | undefined,
  model: ServedModel,
): PreprocessConfig | undefined {
  if (option === undefined) return undefined;
  if (typeof option === 'function') return option(model);
  if (typeof option !== 'object' || option === null) {
    throw bad('preprocess must be a record of model name -> config, or a function of the model');
  }
  return Object.hasOwn(option, model.name) ? option[model.name] : undefined;
}

/**
 * Checks a {@link PreprocessOption} when the server is created: a function, or a record
 * whose every config is valid on its own (channel counts are checked per request, once the
 * model is known).
 *
 * @throws DinferError CONFIG_INVALID naming the model whose config is wrong.
 */
export function checkPreprocessOption(option: PreprocessOption | undefined): void {
  if (option === undefined || typeof option === 'function') return;
  if (typeof option !== 'object' || option === null || Array.isArray(option)) {
    throw bad('preprocess must be a record of model name -> config, or a function of the model');
  }
  for (const [name, config] of Object.entries(option)) {
    if (typeof config !== 'object' || config === null) {
      throw bad(`preprocess of model "${name}" must be an object {scale?, mean?, std?, fit?}`);
    }
    resolvePreprocess(config, 0, `preprocess of model "${name}"`);
  }
}
