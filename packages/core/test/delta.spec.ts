import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import { applyDelta, encodeDelta } from '../src/ship/delta.js';
import { prng } from './fixtures/models.js';

function weights(n: number, seed: number): Float32Array {
  const next = prng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (next() - 0.5) * 0.2;
  return out;
}

/** `w * (1 + relative * u)`, u uniform in [-1, 1): a small fine-tuning-like change. */
function perturbed(w: Float32Array, relative: number, seed: number): Float32Array {
  const next = prng(seed);
  return w.map((v) => v * (1 + relative * (next() * 2 - 1)));
}

const bytes = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('encodeDelta / applyDelta', () => {
  it('rebuilds a slightly changed float32 tensor bit for bit, far smaller than the deflated tensor', () => {
    const base = weights(65_536, 1);
    const target = perturbed(base, 1e-3, 2);
    const delta = encodeDelta(bytes(base), bytes(target));
    expect(delta.compression).toBe('shuffle4+deflate');
    expect(delta.totalBytes).toBe(target.byteLength);
    const rebuilt = applyDelta(bytes(base), delta.bytes, delta.compression, delta.totalBytes);
    expect(Buffer.from(rebuilt).equals(Buffer.from(bytes(target)))).toBe(true);
    const deflated = deflateRawSync(bytes(target), { level: 1 }).byteLength;
    const ratio = delta.bytes.byteLength / deflated;
    console.log(`delta of a 1e-3 relative change: ${(ratio * 100).toFixed(1)}% of the deflated tensor`);
    expect(ratio).toBeLessThan(0.7);
  });

  it('is independent of the XOR it encodes: the inflated, unshuffled payload is base ^ target', () => {
    const base = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    const target = new Uint8Array([1, 2, 3, 5, 5, 6, 9, 8]);
    const delta = encodeDelta(base, target, { elementBytes: 4 });
    // Byte k of element i lands at k * 2 + i.
    const packed = new Uint8Array(inflateRawSync(delta.bytes));
    expect([...packed]).toEqual([0, 0, 0, 0, 0, 14, 1, 0]);
  });

  it('handles every lane, lengths that are not whole elements, empty and identical tensors', () => {
    const next = prng(3);
    for (const [length, lane, expected] of [
      [1000, 2, 'shuffle2+deflate'],
      [1001, 4, 'deflate'],
      [999, 1, 'deflate'],
      [0, 4, 'shuffle4+deflate'],
    ] as const) {
      const base = Uint8Array.from({ length }, () => Math.floor(next() * 256));
      const target = base.map((v, i) => (i % 7 === 0 ? v ^ 0x01 : v));
      const delta = encodeDelta(base, target, { elementBytes: lane });
      expect(delta.compression).toBe(expected);
      expect([...applyDelta(base, delta.bytes, delta.compression, length)]).toEqual([...target]);
    }
    const same = bytes(weights(4096, 4));
    const none = encodeDelta(same, same);
    expect(none.bytes.byteLength).toBeLessThan(100);
    expect(Buffer.from(applyDelta(same, none.bytes, none.compression, same.byteLength)).equals(same)).toBe(
      true,
    );
  });

  it('refuses mismatched lengths, unknown compressions and deflate bombs', () => {
    const a = new Uint8Array(16);
    expect(
      isDinferError(
        thrown(() => encodeDelta(a, new Uint8Array(12))),
        DinferErrorCode.INVALID_ARGUMENT,
      ),
    ).toBe(true);
    const delta = encodeDelta(
      a,
      a.map((_, i) => i),
    );
    expect(
      isDinferError(
        thrown(() => applyDelta(new Uint8Array(8), delta.bytes, delta.compression, 16)),
        DinferErrorCode.PROTOCOL,
      ),
    ).toBe(true);
    expect(
      isDinferError(
        thrown(() => applyDelta(a, delta.bytes, 'gzip' as never, 16)),
        DinferErrorCode.PROTOCOL,
      ),
    ).toBe(true);
    const bomb = deflateRawSync(new Uint8Array(1 << 20));
    expect(
      isDinferError(
        thrown(() => applyDelta(a, bomb, 'deflate', 16)),
        DinferErrorCode.PROTOCOL,
      ),
    ).toBe(true);
    const short = deflateRawSync(new Uint8Array(8));
    expect(
      isDinferError(
        thrown(() => applyDelta(a, short, 'deflate', 16)),
        DinferErrorCode.PROTOCOL,
      ),
    ).toBe(true);
  });
});
