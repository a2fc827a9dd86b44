/**
 * A plain-JavaScript `Conv2DBackpropFilter` kernel, so Conv2D layers can be trained on
 * backends that lack it (tfjs-backend-wasm 4.22 has none) or have a slow one (tfjs-backend-cpu
 * spends seconds per MNIST batch in it). Used by the MNIST training script.
 *
 * @module
 */

import { DinferError, DinferErrorCode } from '@dinfer/core';
import * as tf from '@tensorflow/tfjs';

interface FilterGradAttrs {
  readonly strides: [number, number] | number;
  readonly pad: 'valid' | 'same' | number;
  readonly dataFormat: 'NHWC' | 'NCHW';
  readonly dimRoundingMode?: 'floor' | 'round' | 'ceil';
  readonly filterShape: [number, number, number, number];
}

/**
 * Computes the gradient of an NHWC `conv2d(x, filter)` (dilation 1) with respect to the filter:
 * `dW[r, c, i, o] = sum over b, y, x of x[b, y*sh + r - top, x*sw + c - left, i] * dy[b, y, x, o]`.
 * Inputs are flat NHWC arrays; returns the flat `[fh, fw, inC, outC]` gradient.
 */
export function conv2dFilterGrad(
  x: Float32Array,
  xShape: readonly [number, number, number, number],
  dy: Float32Array,
  info: {
    readonly filterHeight: number;
    readonly filterWidth: number;
    readonly outHeight: number;
    readonly outWidth: number;
    readonly outChannels: number;
    readonly strideHeight: number;
    readonly strideWidth: number;
    readonly padTop: number;
    readonly padLeft: number;
  },
): Float32Array {
  const [batch, inHeight, inWidth, inChannels] = xShape;
  const { filterHeight, filterWidth, outHeight, outWidth, outChannels } = info;
  const dW = new Float32Array(filterHeight * filterWidth * inChannels * outChannels);
  for (let b = 0; b < batch; b++) {
    for (let oy = 0; oy < outHeight; oy++) {
      for (let ox = 0; ox < outWidth; ox++) {
        const dyBase = ((b * outHeight + oy) * outWidth + ox) * outChannels;
        for (let r = 0; r < filterHeight; r++) {
          const iy = oy * info.strideHeight + r - info.padTop;
          if (iy < 0 || iy >= inHeight) continue;
          for (let c = 0; c < filterWidth; c++) {
            const ix = ox * info.strideWidth + c - info.padLeft;
            if (ix < 0 || ix >= inWidth) continue;
            const xBase = ((b * inHeight + iy) * inWidth + ix) * inChannels;
            const wBase = (r * filterWidth + c) * inChannels * outChannels;
            for (let i = 0; i < inChannels; i++) {
              const xv = x[xBase + i]!;
              if (xv === 0) continue;
              const w = wBase + i * outChannels;
              for (let o = 0; o < outChannels; o++) dW[w + o]! += xv * dy[dyBase + o]!;
            }
          }
        }
      }
    }
  }
  return dW;
}

const kernelFunc: tf.KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const a = attrs as unknown as FilterGradAttrs;
  if (a.dataFormat !== 'NHWC' || x.dtype !== 'float32' || dy.dtype !== 'float32') {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      'the JavaScript Conv2DBackpropFilter kernel supports NHWC float32 only',
      { details: { dataFormat: a.dataFormat, dtype: x.dtype } },
    );
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    a.filterShape,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
  const kernelBackend = backend as tf.KernelBackend;
  const dW = conv2dFilterGrad(
    kernelBackend.readSync(x.dataId) as Float32Array,
    x.shape as [number, number, number, number],
    kernelBackend.readSync(dy.dataId) as Float32Array,
    { ...info, padTop: info.padInfo.top, padLeft: info.padInfo.left },
  );
  const shape = [...a.filterShape];
  return { dataId: kernelBackend.write(dW, shape, 'float32'), shape, dtype: 'float32' };
};

/**
 * Registers the plain-JavaScript `Conv2DBackpropFilter` kernel for `backendName` (`wasm` or
 * `cpu`), replacing any registered one, so that training Conv2D layers works and is fast
 * there. Affects the whole process; meant for training scripts.
 *
 * @throws DinferError `DINFER_ERR_INVALID_ARGUMENT` for another backend (tfjs-node has a
 *   native kernel already).
 */
export function registerConv2DFilterGradKernel(backendName: 'wasm' | 'cpu'): void {
  if (backendName !== 'wasm' && backendName !== 'cpu') {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `registerConv2DFilterGradKernel: backend must be wasm or cpu, got "${String(backendName)}"`,
      { details: { backend: backendName } },
    );
  }
  if (tf.getKernel('Conv2DBackpropFilter', backendName) !== undefined) {
    tf.unregisterKernel('Conv2DBackpropFilter', backendName);
  }
  tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName, kernelFunc });
}
