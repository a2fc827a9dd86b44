import { describe, expect, it } from 'vitest';
import { parseRpcHeader, toRpcError } from '../src/connection/rpc-header.js';
import { DinferError, DinferErrorCode } from '../src/errors.js';
import { ListenerHandshake } from '../src/protocol/handshake.js';
import { assertSafeJson } from '../src/protocol/json-guard.js';
import {
  isProtocolMessageType,
  PROTOCOL_MESSAGE_TYPES,
  parseMessage,
  parseMessageHeader,
} from '../src/protocol/messages.js';
import { tensorsEnvelope, tensorsFromEnvelope } from '../src/protocol/tensors-message.js';
import { PROTOCOL_VERSION } from '../src/protocol/version.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(DinferError);
    return (error as DinferError).code;
  }
  return undefined;
}

const wire = (text: string): unknown => JSON.parse(text);
const SHA = 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';

describe('assertSafeJson', () => {
  it('accepts plain JSON data', () => {
    expect(code(() => assertSafeJson(wire('{"a":[1,"x",null,true,{"b":2.5}]}'), 'h'))).toBeUndefined();
    expect(code(() => assertSafeJson(Object.create(null), 'h'))).toBeUndefined();
  });

  it.each([
    ['__proto__', '{"__proto__":{"polluted":true}}'],
    ['constructor', '{"a":{"constructor":{"prototype":{}}}}'],
    ['prototype', '[{"prototype":1}]'],
  ])('rejects a %s key at any depth', (_k, text) => {
    expect(code(() => assertSafeJson(wire(text), 'h'))).toBe(DinferErrorCode.PROTOCOL);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('rejects non-data values, excess depth, size and string length without recursion', () => {
    expect(code(() => assertSafeJson({ f: () => 1 }, 'h'))).toBe(DinferErrorCode.PROTOCOL);
    expect(code(() => assertSafeJson({ d: new Date() }, 'h'))).toBe(DinferErrorCode.PROTOCOL);
    expect(code(() => assertSafeJson({ n: Number.NaN }, 'h'))).toBe(DinferErrorCode.PROTOCOL);
    expect(code(() => assertSafeJson({ [Symbol('s')]: 1 }, 'h'))).toBe(DinferErrorCode.PROTOCOL);
    const deep = wire(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    expect(code(() => assertSafeJson(deep, 'h'))).toBe(DinferErrorCode.PROTOCOL);
    expect(code(() => assertSafeJson(new Array(200_001).fill(0), 'h'))).toBe(DinferErrorCode.PROTOCOL);
    expect(code(() => assertSafeJson('x'.repeat(20), 'h', { maxStringLength: 10 }))).toBe(
      DinferErrorCode.PROTOCOL,
    );
    expect(code(() => assertSafeJson([[[1]]], 'h', { maxDepth: 2 }))).toBe(DinferErrorCode.PROTOCOL);
  });
});

describe('parseMessageHeader', () => {
  it('parses every message type of the union into a fresh typed object', () => {
    const hello = new ListenerHandshake('t').hello();
    const cases: unknown[] = [
      hello,
      { type: 'auth', protocol: PROTOCOL_VERSION, nonce: 'n', proof: 'p' },
      { type: 'welcome', protocol: PROTOCOL_VERSION, proof: '' },
      { type: 'reject', reason: 'no' },
      { type: 'ping', sentAt: 1700000000000 },
      {
        type: 'pong',
        sentAt: 1700000000000,
        load: { cpu: 0.5, freeMemoryBytes: 1024, queueLength: 2, latencyMs: 12.5 },
      },
      {
        type: 'join',
        name: 'w',
        capabilities: { backend: 'wasm', cores: 2, memoryBytes: 4096, score: 1.5 },
        blobs: [SHA],
      },
      { type: 'joined', workerId: 'w1', heartbeatPort: 7070, heartbeatIntervalMs: 2000 },
      { type: 'blob.status', blobs: [SHA, SHA] },
      { type: 'blob.status.result', missing: [SHA], partial: [{ sha256: SHA, receivedBytes: 10 }] },
      {
        type: 'blob.chunk',
        sha256: SHA,
        offset: 0,
        rawBytes: 10,
        totalBytes: 20,
        compression: 'deflate',
        final: false,
      },
      { type: 'blob.delta', sha256: SHA, base: SHA, totalBytes: 8, compression: 'shuffle4+deflate' },
      { type: 'blob.ack', sha256: SHA, receivedBytes: 20, complete: true },
      { type: 'stage.load', key: 'm@1#0', topology: SHA, weights: [SHA], inputs: ['in'], outputs: ['out'] },
      { type: 'stage.loaded', key: 'm@1#0', warmupMs: 3.5 },
      { type: 'stage.unload', key: 'm@1#0' },
      { type: 'ok' },
      {
        type: 'infer',
        key: 'm@1#0',
        requestId: 'r1',
        tensors: [{ dtype: 'float32', shape: [1, 2], byteLength: 8, encoding: 'none', compression: 'none' }],
      },
      { type: 'infer.result', tensors: [], computeMs: 1.25, queueMs: 0 },
      { type: 'drain', reason: 'worker shutting down' },
      {
        type: 'tensors',
        tensors: [{ dtype: 'int32', shape: [2], byteLength: 8, encoding: 'none', compression: 'none' }],
      },
      { type: 'tensors', tensors: [], tag: 'stage-1' },
      { type: 'error', code: DinferErrorCode.OVERLOADED, message: 'busy' },
    ];
    expect(new Set(cases.map((c) => (c as { type: string }).type))).toEqual(new Set(PROTOCOL_MESSAGE_TYPES));
    for (const header of cases) {
      const input = JSON.parse(JSON.stringify(header));
      const parsed = parseMessageHeader(input);
      expect(parsed).toEqual(header);
      expect(parsed).not.toBe(input);
      expect(isProtocolMessageType(parsed.type)).toBe(true);
    }
  });

  it.each([
    ['not an object', '[1]'],
    ['no type', '{"sentAt":1}'],
    ['an unknown type', '{"type":"eval","code":"x"}'],
    ['an inherited type name', '{"type":"toString"}'],
    ['a missing field', '{"type":"ping"}'],
    ['a wrong field type', '{"type":"ping","sentAt":"1"}'],
    ['an unknown field', '{"type":"ping","sentAt":1,"extra":0}'],
    ['a __proto__ field', '{"type":"ping","sentAt":1,"__proto__":{"x":1}}'],
    ['a nested constructor key', '{"type":"error","code":"c","message":"m","constructor":{}}'],
    ['a fractional protocol', '{"type":"hello","protocol":1.5,"nonce":"n"}'],
    ['an empty nonce', '{"type":"hello","protocol":1,"nonce":""}'],
    ['an overlong reason', `{"type":"reject","reason":"${'x'.repeat(5000)}"}`],
    ['tensors that are not an array', '{"type":"tensors","tensors":{}}'],
    ['a tag that is too long', `{"type":"tensors","tensors":[],"tag":"${'x'.repeat(300)}"}`],
    ['a pong without load', '{"type":"pong","sentAt":1}'],
    [
      'a join with an unknown capability',
      `{"type":"join","name":"w","capabilities":{"backend":"wasm","cores":1,"memoryBytes":1,"score":1,"gpu":1},"blobs":[]}`,
    ],
    [
      'a join with zero cores',
      `{"type":"join","name":"w","capabilities":{"backend":"wasm","cores":0,"memoryBytes":1,"score":1},"blobs":[]}`,
    ],
    ['a blob hash that is not SHA-256', '{"type":"blob.status","blobs":["abc"]}'],
    [
      'a chunk that runs past its blob',
      `{"type":"blob.chunk","sha256":"${SHA}","offset":15,"rawBytes":10,"totalBytes":20,"compression":"none","final":true}`,
    ],
    [
      'an unknown chunk compression',
      `{"type":"blob.chunk","sha256":"${SHA}","offset":0,"rawBytes":1,"totalBytes":1,"compression":"gzip","final":true}`,
    ],
    [
      'a partial entry with an extra field',
      `{"type":"blob.status.result","missing":[],"partial":[{"sha256":"${SHA}","receivedBytes":1,"x":1}]}`,
    ],
    ['an empty stage key', '{"type":"stage.unload","key":""}'],
    [
      'a negative heartbeat port',
      '{"type":"joined","workerId":"w1","heartbeatPort":-1,"heartbeatIntervalMs":1}',
    ],
  ])('rejects %s with DINFER_ERR_PROTOCOL', (_n, text) => {
    expect(code(() => parseMessageHeader(wire(text)))).toBe(DinferErrorCode.PROTOCOL);
  });

  it('rejects invalid tensor descriptors with DINFER_ERR_TENSOR_INVALID and applies tensor limits', () => {
    const bad = {
      type: 'tensors',
      tensors: [{ dtype: 'float64', shape: [1], byteLength: 8, encoding: 'none', compression: 'none' }],
    };
    expect(code(() => parseMessageHeader(bad))).toBe(DinferErrorCode.TENSOR_INVALID);
    const big = {
      type: 'tensors',
      tensors: [{ dtype: 'uint8', shape: [100], byteLength: 100, encoding: 'none', compression: 'none' }],
    };
    expect(code(() => parseMessageHeader(big, { tensors: { maxBytes: 99 } }))).toBe(
      DinferErrorCode.TENSOR_INVALID,
    );
  });
});

describe('parseMessage', () => {
  it('returns a message of the expected type and names both types otherwise', () => {
    expect(parseMessage({ type: 'ok' }, 'ok')).toEqual({ type: 'ok' });
    expect(() => parseMessage({ type: 'ok' }, 'pong')).toThrow('expected a pong message, got ok');
  });
});

describe('tensorsEnvelope / tensorsFromEnvelope', () => {
  it('round-trips tensors with a tag through JSON', () => {
    const envelope = tensorsEnvelope([{ dtype: 'int32', shape: [3], data: Int32Array.of(1, -2, 3) }], {
      tag: 'x',
      encoding: 'fp16',
    });
    const back = tensorsFromEnvelope(
      { header: JSON.parse(JSON.stringify(envelope.header)), attachments: envelope.attachments },
      { maxBytes: 100 },
    );
    expect(back.tag).toBe('x');
    expect([...back.tensors[0]!.data]).toEqual([1, -2, 3]);
  });

  it('refuses other messages', () => {
    expect(
      code(() =>
        tensorsFromEnvelope({ header: { type: 'ping', sentAt: 1 }, attachments: [] }, { maxBytes: 1 }),
      ),
    ).toBe(DinferErrorCode.PROTOCOL);
  });
});

describe('parseRpcHeader', () => {
  it('parses every kind', () => {
    const cases = [
      { type: 'rpc', kind: 'request', id: 0, body: { type: 'x' } },
      { type: 'rpc', kind: 'response', id: 9, body: { type: 'y', n: 1 } },
      { type: 'rpc', kind: 'error', id: 1, error: { code: 'C', message: 'm' } },
      { type: 'rpc', kind: 'message', body: { type: 'z' } },
      { type: 'rpc', kind: 'cancel', id: 2 },
      { type: 'rpc', kind: 'close' },
      { type: 'rpc', kind: 'close', error: { code: 'C', message: '' } },
    ];
    for (const header of cases) expect(parseRpcHeader(JSON.parse(JSON.stringify(header)))).toEqual(header);
  });

  it.each([
    ['an unknown kind', { type: 'rpc', kind: 'push' }],
    ['an inherited kind name', { type: 'rpc', kind: 'hasOwnProperty' }],
    ['a fractional id', { type: 'rpc', kind: 'cancel', id: 1.5 }],
    ['an unsafe id', { type: 'rpc', kind: 'cancel', id: 2 ** 60 }],
    ['an error without message', { type: 'rpc', kind: 'error', id: 1, error: { code: 'C' } }],
    [
      'an error with extra fields',
      { type: 'rpc', kind: 'error', id: 1, error: { code: 'C', message: '', stack: '' } },
    ],
    ['a body type that is empty', { type: 'rpc', kind: 'message', body: { type: '' } }],
    ['a wrong type', { type: 'rpcx', kind: 'message', body: { type: 'x' } }],
  ])('rejects %s', (_n, header) => {
    expect(code(() => parseRpcHeader(header))).toBe(DinferErrorCode.PROTOCOL);
  });

  it('turns errors into wire form, truncating long messages', () => {
    expect(toRpcError(new DinferError(DinferErrorCode.TIMEOUT, 'slow'))).toEqual({
      code: DinferErrorCode.TIMEOUT,
      message: 'slow',
    });
    expect(toRpcError(new Error('x'.repeat(10_000))).message).toHaveLength(4096);
    expect(toRpcError('oops')).toEqual({ code: DinferErrorCode.INTERNAL, message: 'oops' });
  });
});
