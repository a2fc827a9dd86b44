/**
 * The whole image preprocessing of one request: decode, fit to the model input, normalise,
 * and wrap as a batch of one tensor.
 *
 * @module
 */

import { performance } from 'node:perf_hooks';
import type { ServedModel, TensorData } from '@dinfer/core';
import { type PreprocessConfig, resolvePreprocess } from './config.js';
import { DEFAULT_MAX_IMAGE_PIXEL_RATIO, decodeImage } from './decode-image.js';
import { imageTargetOf } from './image-target.js';
import { normalizePixels } from './normalize.js';

/** Options of {@link imageToTensor}. */
export interface ImageToTensorOptions {
  /** The model's preprocessing (defaults: scale 1/255, mean 0, std 1, fit `fill`). */
  readonly config?: PreprocessConfig | undefined;
  /** Largest accepted image, in pixels. Default 40 megapixels. */
  readonly maxPixels?: number | undefined;
  /**
   * Largest image per model input pixel, for inputs of fixed height and width (see
   * `imagePixelBound`). Default {@link DEFAULT_MAX_IMAGE_PIXEL_RATIO}.
   */
  readonly maxPixelRatio?: number | undefined;
}

/** The tensor of one image, with what it took. */
export interface ImageTensor {
  /** Shape `[1, H, W, C]`: float32 normalised values, or uint8 pixels for an int32 input. */
  readonly tensor: TensorData;
  /** Format of the image (`jpeg`, `png`, `webp`). */
  readonly format: string;
  /** Time to decode and resize, then to normalise, in ms. */
  readonly decodeMs: number;
  readonly normalizeMs: number;
}

/**
 * Turns encoded image `bytes` into the input tensor of `model` (one input `[null,H,W,C]`,
 * C = 1 greyscale or 3 RGB). Float32 inputs get `(pixel * scale - mean[c]) / std[c]`; int32
 * inputs get the raw 0..255 pixels (normalisation does not apply to them).
 *
 * @throws DinferError INVALID_ARGUMENT for a model that takes no image, or bytes that are
 *   not a decodable PNG/JPEG/WebP within the pixel limit; CONFIG_INVALID for a config
 *   whose mean/std does not match the input's channels.
 */
export async function imageToTensor(
  bytes: Uint8Array,
  model: ServedModel,
  options: ImageToTensorOptions = {},
): Promise<ImageTensor> {
  const target = imageTargetOf(model);
  const config = resolvePreprocess(options.config, target.channels, `preprocess of model "${model.name}"`);
  const t0 = performance.now();
  const image = await decodeImage(bytes, {
    width: target.width,
    height: target.height,
    channels: target.channels,
    fit: config.fit,
    maxPixels: options.maxPixels,
    maxPixelRatio: options.maxPixelRatio ?? DEFAULT_MAX_IMAGE_PIXEL_RATIO,
    consumer: `model "${model.name}"`,
  });
  const t1 = performance.now();
  const shape = [1, image.height, image.width, image.channels];
  const tensor: TensorData =
    target.dtype === 'int32'
      ? { name: target.name, dtype: 'uint8', shape, data: image.data }
      : {
          name: target.name,
          dtype: 'float32',
          shape,
          data: normalizePixels(image.data, image.channels, config),
        };
  return { tensor, format: image.format, decodeMs: t1 - t0, normalizeMs: performance.now() - t1 };
}
