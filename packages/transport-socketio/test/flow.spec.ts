import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { whenWritable } from '../src/flow.js';

class FakeRaw extends EventEmitter {
  writableLength = 0;
  writableNeedDrain = false;
  destroyed = false;
}

class FakeEngine extends EventEmitter {
  readyState = 'open';
  writeBuffer: unknown[] = [];
  constructor(readonly raw: FakeRaw) {
    super();
  }
  get transport() {
    return { ws: { _socket: this.raw } };
  }
}

async function settled(promise: Promise<void>): Promise<boolean> {
  let done = false;
  void promise.then(() => {
    done = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('whenWritable (send backpressure)', () => {
  it('does not wait while little is buffered, or when there is no open engine', () => {
    const engine = new FakeEngine(new FakeRaw());
    engine.writeBuffer.length = 10;
    engine.raw.writableNeedDrain = true;
    engine.raw.writableLength = 64 * 1024;
    expect(whenWritable(engine)).toBeUndefined();
    expect(whenWritable(undefined)).toBeUndefined();
    engine.readyState = 'closed';
    engine.raw.writableLength = 64 * 1024 * 1024;
    expect(whenWritable(engine)).toBeUndefined();
  });

  it('waits for the TCP socket to drain when megabytes are buffered', async () => {
    const engine = new FakeEngine(new FakeRaw());
    engine.raw.writableNeedDrain = true;
    engine.raw.writableLength = 5 * 1024 * 1024;
    const waiting = whenWritable(engine);
    expect(waiting).toBeInstanceOf(Promise);
    expect(await settled(waiting as Promise<void>)).toBe(false);
    engine.raw.writableNeedDrain = false;
    engine.raw.writableLength = 0;
    engine.raw.emit('drain');
    expect(await settled(waiting as Promise<void>)).toBe(true);
    expect(engine.raw.listenerCount('drain')).toBe(0);
    expect(engine.raw.listenerCount('close')).toBe(0);
  });

  it("waits for engine.io's drain when its packet queue is long, and stops waiting on close", async () => {
    const engine = new FakeEngine(new FakeRaw());
    engine.writeBuffer.length = 1024;
    const waiting = whenWritable(engine) as Promise<void>;
    expect(await settled(waiting)).toBe(false);
    engine.writeBuffer.length = 0;
    engine.emit('drain');
    expect(await settled(waiting)).toBe(true);

    engine.raw.writableNeedDrain = true;
    engine.raw.writableLength = 8 * 1024 * 1024;
    const closing = whenWritable(engine) as Promise<void>;
    engine.readyState = 'closed';
    engine.raw.emit('close');
    expect(await settled(closing)).toBe(true);
  });
});
