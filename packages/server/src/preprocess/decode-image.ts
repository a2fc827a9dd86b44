/**
 * Decoding an uploaded image (PNG, JPEG or WebP) into raw 8-bit pixels of a given size and
 * channel count, with sharp (libvips). EXIF orientation is applied, alpha is dropped,
 * greyscale targets get the luminance, colour targets get sRGB.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import type { ImageFit } from './config.js';
import type { ImageChannels } from './image-target.js';

/** Image formats accepted in requests (as sharp names them). */
export const SUPPORTED_IMAGE_FORMATS: readonly string[] = ['jpeg', 'png', 'webp'];

/** Default largest decoded image, in pixels (width x height): 40 megapixels. */
export const DEFAULT_MAX_IMAGE_PIXELS = 40_000_000;

/**
 * Default largest image per output pixel when the output size is fixed: 256, an image 16
 * times the output's height and width (a 12-megapixel PNG for a 224x224 input).
 */
export const DEFAULT_MAX_IMAGE_PIXEL_RATIO = 256;

/** The bound relative to the output size is never below one megapixel (1024x1024). */
export const MIN_RELATIVE_IMAGE_PIXELS = 2 ** 20;

/**
 * How much larger a JPEG or WebP may be than a PNG under the relative bound: libvips decodes
 * them at down to 1/8 of their width and height (shrink-on-load) when they are resized down.
 */
export const SHRINK_ON_LOAD_PIXEL_FACTOR = 64;

/** Formats libvips decodes at a reduced size when resizing down. */
const SHRINK_ON_LOAD_FORMATS: readonly string[] = ['jpeg', 'webp'];

/** Raw pixels, row-major `[height, width, channels]`, 0..255. */
export interface DecodedImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly channels: ImageChannels;
  /** The format the bytes were in (`jpeg`, `png`, `webp`). */
  readonly format: string;
  /** The size of the image before resizing. */
  readonly sourceWidth: number;
  readonly sourceHeight: number;
}

/** Options of {@link decodeImage}. */
export interface DecodeImageOptions {
  /** Output width; `null` keeps the image's own width. */
  readonly width: number | null;
  /** Output height; `null` keeps the image's own height. */
  readonly height: number | null;
  readonly channels: ImageChannels;
  /** How the image is fitted when both sizes are given. Default `fill`. */
  readonly fit?: ImageFit | undefined;
  /** Largest accepted image in pixels. Default {@link DEFAULT_MAX_IMAGE_PIXELS}. */
  readonly maxPixels?: number | undefined;
  /**
   * With both `width` and `height`: largest image per output pixel (never below
   * {@link MIN_RELATIVE_IMAGE_PIXELS}; {@link SHRINK_ON_LOAD_PIXEL_FACTOR} times more for JPEG
   * and WebP, decoded at a reduced size). Default: no bound beyond `maxPixels`.
   */
  readonly maxPixelRatio?: number | undefined;
  /** Who takes the image, for the message of the relative bound (e.g. `model "mnist"`). */
  readonly consumer?: string | undefined;
}

/**
 * The most pixels an image of `format` may have to be decoded to `width` x `height`, and
 * the message part that says why when the relative bound is the tighter one.
 */
export function imagePixelBound(
  format: string,
  options: Pick<DecodeImageOptions, 'width' | 'height' | 'maxPixels' | 'maxPixelRatio' | 'consumer'>,
): { readonly maxPixels: number; readonly reason?: string } {
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_IMAGE_PIXELS;
  const { width, height, maxPixelRatio } = options;
  if (width === null || height === null || maxPixelRatio === undefined) return { maxPixels };
  const shrinks = SHRINK_ON_LOAD_FORMATS.includes(format);
  const relative =
    Math.max(MIN_RELATIVE_IMAGE_PIXELS, Math.floor(maxPixelRatio * width * height)) *
    (shrinks ? SHRINK_ON_LOAD_PIXEL_FACTOR : 1);
  if (relative >= maxPixels) return { maxPixels };
  const who = options.consumer ?? 'the input';
  const note = shrinks
    ? ''
    : ` as ${format.toUpperCase()} (JPEG or WebP may be ${SHRINK_ON_LOAD_PIXEL_FACTOR} times larger)`;
  return {
    maxPixels: relative,
    reason: `${who} takes ${width}x${height} images: send at most ${relative} pixels${note}`,
  };
}

function bad(message: string, details: Record<string, unknown> = {}, cause?: unknown): DinferError {
  return new DinferError(DinferErrorCode.INVALID_ARGUMENT, message, {
    details,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** sharp's messages can repeat libjpeg's warnings over several lines: keep the first. */
function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n', 1)[0]!.trim();
}

/**
 * Decodes `bytes` and resizes the image to `width` x `height` with `channels` channels.
 *
 * Its size is read from the header and checked against {@link imagePixelBound} before any
 * pixel is decoded.
 *
 * @throws DinferError INVALID_ARGUMENT ("cannot decode image: ...") for empty, corrupt or
 *   truncated bytes, for a format other than {@link SUPPORTED_IMAGE_FORMATS}, and for an
 *   image over the bound.
 */
export async function decodeImage(bytes: Uint8Array, options: DecodeImageOptions): Promise<DecodedImage> {
  if (bytes.length === 0) throw bad('cannot decode image: the image is empty (0 bytes)');
  let meta: Metadata;
  try {
    // Only the header is read here; the pixel limit is checked below with a clearer message.
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw bad(`cannot decode image: ${firstLine(error)}`, { bytes: bytes.length }, error);
  }
  const format = meta.format;
  if (!SUPPORTED_IMAGE_FORMATS.includes(format)) {
    throw bad(
      `cannot decode image: format "${format}" is not accepted; send ${SUPPORTED_IMAGE_FORMATS.join(', ')}`,
      { format },
    );
  }
  const sourceWidth = meta.autoOrient.width;
  const sourceHeight = meta.autoOrient.height;
  const pixels = sourceWidth * sourceHeight;
  const { maxPixels, reason } = imagePixelBound(format, options);
  if (pixels > maxPixels) {
    const size = `image is ${sourceWidth}x${sourceHeight} = ${pixels} pixels`;
    throw bad(reason === undefined ? `${size}, over the limit of ${maxPixels}` : `${size}; ${reason}`, {
      width: sourceWidth,
      height: sourceHeight,
      maxPixels,
    });
  }
  const width = options.width ?? sourceWidth;
  const height = options.height ?? sourceHeight;
  // failOn 'warning' (sharp's default, stated): a truncated JPEG fails instead of decoding grey.
  // Resizing down lets libvips decode a JPEG or WebP at a fraction of its size (shrink-on-load).
  let pipeline = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'warning' }).autoOrient().removeAlpha();
  if (width !== sourceWidth || height !== sourceHeight) {
    pipeline = pipeline.resize(width, height, {
      fit: options.fit ?? 'fill',
      background: { r: 0, g: 0, b: 0, alpha: 1 },
    });
  }
  pipeline = options.channels === 1 ? pipeline.greyscale() : pipeline.toColourspace('srgb');
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw bad(`cannot decode image: ${firstLine(error)}`, { format, bytes: bytes.length }, error);
  }
  const { info } = out;
  if (info.width !== width || info.height !== height || info.channels !== options.channels) {
    throw new DinferError(
      DinferErrorCode.INTERNAL,
      `image decoding gave ${info.width}x${info.height}x${info.channels}, expected ${width}x${height}x${options.channels}`,
    );
  }
  const data = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength);
  return { data, width, height, channels: options.channels, format, sourceWidth, sourceHeight };
}
