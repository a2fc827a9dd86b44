/**
 * IEEE 754 binary16 (half precision) conversion for the `fp16` tensor encoding:
 * round-to-nearest-even, overflow to infinity, subnormals, signed zeros, and NaN kept NaN.
 *
 * @module
 */

/**
 * Converts the bits of one float32 to the bits of the nearest float16 (ties to even).
 * Values beyond the float16 range become infinity; NaN stays a (quiet) NaN.
 */
export function float32BitsToFloat16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  const mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  const e = exponent - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal float16 (or zero): value = m * 2^-24, m = significand >> (14 - e).
    if (e < -10) return sign;
    const significand = mantissa | 0x800000;
    const shift = 14 - e;
    const m = significand >>> shift;
    const rest = significand & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    // A carry out of the subnormal range lands on the smallest normal, which is correct.
    return sign | (rest > half || (rest === half && (m & 1) === 1) ? m + 1 : m);
  }
  const h = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry can ripple into the exponent (and up to infinity): that is the right result.
  return sign | (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1) ? h + 1 : h);
}

/** Converts float16 bits to the (exactly representable) number they stand for. */
export function float16BitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >>> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

let table: Float32Array | undefined;

/** All 65 536 float16 values as float32 (256 KiB), built on first use. */
function decodeTable(): Float32Array {
  if (table === undefined) {
    table = new Float32Array(0x10000);
    for (let h = 0; h < 0x10000; h++) table[h] = float16BitsToNumber(h);
  }
  return table;
}

/** Encodes float32 values as float16 (native-endian `Uint16Array`). */
export function float32ToFloat16(values: Float32Array): Uint16Array {
  // Int32 (not Uint32) keeps every word a small integer in V8; the bit operations are the same.
  const bits = new Int32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) out[i] = float32BitsToFloat16Bits(bits[i]!);
  return out;
}

/** Decodes float16 values (native-endian `Uint16Array`) to float32. */
export function float16ToFloat32(halves: Uint16Array): Float32Array {
  const lookup = decodeTable();
  const out = new Float32Array(halves.length);
  for (let i = 0; i < halves.length; i++) out[i] = lookup[halves[i]!]!;
  return out;
}
