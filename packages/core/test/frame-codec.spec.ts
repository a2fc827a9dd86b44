import { describe, expect, it } from 'vitest';
import { DinferErrorCode, isDinferError } from '../src/errors.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  decodeFrameBody,
  encodeFrame,
  FRAME_MAGIC,
  FrameDecoder,
  frameByteLength,
} from '../src/protocol/frame-codec.js';
import { seededRandom as rng } from '../src/testing/seeded-random.js';
import type { Envelope } from '../src/transport.js';

function randomBytes(next: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(next() * 256);
  return out;
}

function join(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(frameByteLength(parts));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

function expectCode(fn: () => unknown, code: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(isDinferError(thrown)).toBe(true);
  expect((thrown as { code: string }).code).toBe(code);
}

function u32(n: number): number[] {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
}

/** Builds a frame by hand from the documented layout, independently of encodeFrame. */
function handFrame(
  header: string,
  attachments: number[][],
  opts: { magic?: number; table?: number[] } = {},
): Uint8Array {
  const json = [...new TextEncoder().encode(header)];
  const table = opts.table ?? attachments.map((a) => a.length);
  const body: number[] = [opts.magic ?? FRAME_MAGIC, ...u32(json.length), ...u32(table.length), ...json];
  for (const n of table) body.push(...u32(n));
  attachments.forEach((a, i) => {
    if (i === 0) while (body.length % 8 !== 0) body.push(0);
    body.push(...a);
    if (i < attachments.length - 1) while (body.length % 8 !== 0) body.push(0);
  });
  return new Uint8Array([...u32(body.length), ...body]);
}

function sampleEnvelopes(next: () => number): Envelope[] {
  return [
    { header: { type: 'ping' }, attachments: [] },
    { header: { type: 'empty-attachments', n: 2 }, attachments: [new Uint8Array(0), new Uint8Array(0)] },
    { header: { type: 'unicode', text: 'żółć ✓ 𝄞' }, attachments: [randomBytes(next, 3)] },
    {
      header: { type: 'mixed', nested: { a: [1, 2, 3] } },
      attachments: [
        randomBytes(next, 5),
        randomBytes(next, 40_000),
        randomBytes(next, 7),
        randomBytes(next, 1),
      ],
    },
    { header: { type: 'big' }, attachments: [randomBytes(next, 300_000)] },
  ];
}

function expectSame(actual: readonly Envelope[], expected: readonly Envelope[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((envelope, i) => {
    const want = expected[i]!;
    expect(envelope.header).toEqual(want.header);
    expect(envelope.attachments.length).toBe(want.attachments.length);
    envelope.attachments.forEach((a, j) => {
      expect(Buffer.from(a).equals(Buffer.from(want.attachments[j]!))).toBe(true);
    });
  });
}

describe('encodeFrame', () => {
  it('writes exactly the documented layout', () => {
    const envelope: Envelope = {
      header: { type: 't' },
      attachments: [new Uint8Array([1, 2, 3]), new Uint8Array([9])],
    };
    expect(Buffer.from(join(encodeFrame(envelope)))).toEqual(
      Buffer.from(handFrame('{"type":"t"}', [[1, 2, 3], [9]])),
    );
    expect(Buffer.from(join(encodeFrame({ header: { type: 'x' }, attachments: [] })))).toEqual(
      Buffer.from(handFrame('{"type":"x"}', [])),
    );
  });

  it('passes large attachments through without copying', () => {
    const big = new Uint8Array(100_000);
    const parts = encodeFrame({ header: { type: 'big' }, attachments: [big, new Uint8Array(3), big] });
    expect(parts.filter((p) => p === big).length).toBe(2);
  });

  it('refuses headers that are not plain objects with a string type', () => {
    const bad = [null, [], { type: 3 }, { nope: 1 }, new Date()];
    for (const header of bad) {
      expectCode(
        () => encodeFrame({ header, attachments: [] } as unknown as Envelope),
        DinferErrorCode.PROTOCOL,
      );
    }
    expectCode(
      () => encodeFrame({ header: { type: 'b', n: 1n }, attachments: [] } as unknown as Envelope),
      DinferErrorCode.PROTOCOL,
    );
  });

  it('refuses frames above maxFrameBytes and invalid limits', () => {
    const envelope: Envelope = { header: { type: 'big' }, attachments: [new Uint8Array(1000)] };
    expectCode(() => encodeFrame(envelope, { maxFrameBytes: 999 }), DinferErrorCode.FRAME_TOO_LARGE);
    expectCode(() => encodeFrame(envelope, { maxFrameBytes: -1 }), DinferErrorCode.INVALID_ARGUMENT);
    expectCode(() => new FrameDecoder({ maxFrameBytes: 2 ** 33 }), DinferErrorCode.INVALID_ARGUMENT);
    expect(new FrameDecoder().maxFrameBytes).toBe(DEFAULT_MAX_FRAME_BYTES);
  });
});

describe('FrameDecoder', () => {
  it('decodes a stream split at random points (property test, 200 runs)', () => {
    const next = rng(42);
    for (let run = 0; run < 200; run++) {
      const envelopes = sampleEnvelopes(next).filter(() => next() < 0.7);
      const stream = join(envelopes.flatMap((e) => encodeFrame(e)));
      const decoder = new FrameDecoder();
      const out: Envelope[] = [];
      let at = 0;
      while (at < stream.length) {
        const mode = next();
        const size =
          mode < 0.2 ? 1 : mode < 0.5 ? 1 + Math.floor(next() * 16) : 1 + Math.floor(next() * 70_000);
        out.push(...decoder.push(stream.subarray(at, Math.min(stream.length, at + size))));
        at += size;
      }
      expectSame(out, envelopes);
      expect(decoder.bufferedBytes).toBe(0);
    }
  });

  it('decodes every frame of one chunk holding many frames', () => {
    const envelopes = Array.from({ length: 500 }, (_, i) => ({
      header: { type: 'n', i },
      attachments: [new Uint8Array([i & 255, (i >> 8) & 255])],
    }));
    const out = new FrameDecoder().push(join(envelopes.flatMap((e) => encodeFrame(e))));
    expectSame(out, envelopes);
    // Small frames come from Node's buffer pool, whose slices are 8-byte aligned too.
    for (const envelope of out) expect(envelope.attachments[0]!.byteOffset % 8).toBe(0);
  });

  it('hands out 8-byte-aligned attachment views', () => {
    const next = rng(7);
    const envelope = sampleEnvelopes(next)[3]!;
    const stream = join(encodeFrame(envelope));
    const decoder = new FrameDecoder();
    const out = [...decoder.push(stream.subarray(0, 1001)), ...decoder.push(stream.subarray(1001))];
    for (const a of out[0]!.attachments) expect(a.byteOffset % 8).toBe(0);
    const floats = new Float32Array(
      out[0]!.attachments[1]!.buffer,
      out[0]!.attachments[1]!.byteOffset,
      10_000,
    );
    expect(floats.length).toBe(10_000);
  });

  it('stays linear for a 1 MiB frame fed one byte at a time', () => {
    const payload = randomBytes(rng(1), 1 << 20);
    const stream = join(encodeFrame({ header: { type: 'slow' }, attachments: [payload] }));
    const decoder = new FrameDecoder();
    const started = performance.now();
    const out: Envelope[] = [];
    for (let i = 0; i < stream.length; i++) out.push(...decoder.push(stream.subarray(i, i + 1)));
    expect(performance.now() - started).toBeLessThan(10_000);
    expectSame(out, [{ header: { type: 'slow' }, attachments: [payload] }]);
  });

  it('rejects an oversized length prefix as soon as the prefix arrives', () => {
    const decoder = new FrameDecoder({ maxFrameBytes: 1024 });
    expect(decoder.push(new Uint8Array([0, 0]))).toEqual([]);
    expectCode(() => decoder.push(new Uint8Array(u32(1025).slice(2))), DinferErrorCode.FRAME_TOO_LARGE);
    expect(decoder.error?.code).toBe(DinferErrorCode.FRAME_TOO_LARGE);
    // Poisoned: later pushes fail the same way, even with valid bytes.
    expectCode(
      () => decoder.push(join(encodeFrame({ header: { type: 'ok' }, attachments: [] }))),
      'DINFER_ERR_FRAME_TOO_LARGE',
    );
    expectCode(
      () => new FrameDecoder().push(new Uint8Array([255, 255, 255, 255])),
      DinferErrorCode.FRAME_TOO_LARGE,
    );
  });

  it('waits on a truncated frame without emitting anything', () => {
    const stream = join(encodeFrame({ header: { type: 'cut' }, attachments: [new Uint8Array(100)] }));
    const decoder = new FrameDecoder();
    expect(decoder.push(stream.subarray(0, stream.length - 1))).toEqual([]);
    expect(decoder.bufferedBytes).toBe(stream.length - 1);
    expect(decoder.push(stream.subarray(stream.length - 1)).length).toBe(1);
  });

  it('rejects lying lengths', () => {
    // Attachment claims more bytes than the body has.
    expectCode(
      () => new FrameDecoder().push(handFrame('{"type":"t"}', [[1, 2, 3]], { table: [50] })),
      'DINFER_ERR_PROTOCOL',
    );
    // Table sums to less than the body.
    expectCode(
      () => new FrameDecoder().push(handFrame('{"type":"t"}', [[1, 2, 3]], { table: [2] })),
      'DINFER_ERR_PROTOCOL',
    );
    // Body shorter than the fixed header.
    expectCode(
      () => new FrameDecoder().push(new Uint8Array([...u32(3), FRAME_MAGIC, 0, 0])),
      'DINFER_ERR_PROTOCOL',
    );
    // Header length larger than the body: rejected from the fixed header, before the rest arrives.
    const decoder = new FrameDecoder();
    const early = new Uint8Array([...u32(100), FRAME_MAGIC, ...u32(5000), ...u32(0)]);
    expectCode(() => decoder.push(early), DinferErrorCode.PROTOCOL);
    // An absurd attachment count is rejected the same way.
    const count = new Uint8Array([...u32(100), FRAME_MAGIC, ...u32(2), ...u32(0xffffffff)]);
    expectCode(() => new FrameDecoder().push(count), DinferErrorCode.PROTOCOL);
  });

  it('rejects bad magic, bad JSON and bad headers', () => {
    const cases = [
      handFrame('{"type":"t"}', [], { magic: 0x00 }),
      handFrame('{"type":', []),
      handFrame('[1,2]', []),
      handFrame('"hello"', []),
      handFrame('{"kind":"t"}', []),
      handFrame('{"type":5}', []),
      handFrame('null', []),
    ];
    for (const frame of cases) expectCode(() => new FrameDecoder().push(frame), DinferErrorCode.PROTOCOL);
    const invalidUtf8 = handFrame('{"type":"ab"}', []);
    invalidUtf8[4 + 9 + 10] = 0xff;
    expectCode(() => new FrameDecoder().push(invalidUtf8), DinferErrorCode.PROTOCOL);
  });

  it('decodes a bare body with decodeFrameBody', () => {
    const frame = handFrame('{"type":"body"}', [[4, 5]]);
    const envelope = decodeFrameBody(frame.subarray(4));
    expect(envelope.header).toEqual({ type: 'body' });
    expect([...envelope.attachments[0]!]).toEqual([4, 5]);
    expectCode(() => decodeFrameBody(new Uint8Array(3)), DinferErrorCode.PROTOCOL);
  });

  it('never throws anything but a DinferError on random garbage', () => {
    const next = rng(99);
    let failures = 0;
    for (let i = 0; i < 2000; i++) {
      const decoder = new FrameDecoder({ maxFrameBytes: 4096 });
      const valid = join(encodeFrame({ header: { type: 'g', i }, attachments: [randomBytes(next, 20)] }));
      const bytes = next() < 0.5 ? randomBytes(next, 1 + Math.floor(next() * 200)) : valid;
      if (bytes === valid) bytes[Math.floor(next() * bytes.length)]! ^= 1 << Math.floor(next() * 8);
      try {
        decoder.push(bytes);
      } catch (error) {
        expect(isDinferError(error)).toBe(true);
        failures++;
      }
    }
    expect(failures).toBeGreaterThan(500);
  });
});
