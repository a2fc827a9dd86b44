/**
 * A dense residual tower of any size, written as TF.js artifacts directly on disk: its
 * `model.json` (the topology TF.js itself writes for it) and its seeded weights streamed into
 * the shard files a chunk at a time, so a model of many gigabytes is generated in a few
 * megabytes of memory. No TF.js model of it is ever built.
 *
 * `x` (width) -> `blocks` x [`b<i>_up` Dense(width, relu) -> `b<i>_down` Dense(width) ->
 * `b<i>_add` Add(with the block's input)] -> `head` Dense(classes, softmax). Each Dense kernel
 * holds `width * width` float32 values: 4096 wide, one block is 128 MiB.
 *
 * Besides the artifacts it writes `layout.json`: where each weight lies in the shard files,
 * so that a reference can read the weights without dinfer's readers.
 *
 * @module
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DinferError, DinferErrorCode } from '@dinfer/core';
import { deriveSeed, seededRandom } from '@dinfer/core/models';
import * as tf from '@tensorflow/tfjs';

/** The shape and seed of a {@link writeBigDenseModel} model. */
export interface BigDenseSpec {
  readonly width: number;
  readonly blocks: number;
  readonly classes: number;
  readonly seed: number;
  /** Bytes per shard file. Default 64 MiB. */
  readonly shardBytes?: number | undefined;
}

/** A {@link BigDenseSpec} with its defaults filled in. */
export interface ResolvedSpec {
  readonly width: number;
  readonly blocks: number;
  readonly classes: number;
  readonly seed: number;
  readonly shardBytes: number;
}

/** One weight in `layout.json`: its place in the concatenated shards. */
export interface BigDenseWeight {
  readonly name: string;
  readonly shape: readonly number[];
  /** Byte offset in the shards concatenated in order. */
  readonly offset: number;
  readonly byteLength: number;
}

/** The contents of `layout.json`. */
export interface BigDenseLayout {
  readonly spec: ResolvedSpec;
  readonly shards: readonly string[];
  readonly shardBytes: number;
  readonly weights: readonly BigDenseWeight[];
  /** Total bytes of the weights. */
  readonly weightBytes: number;
}

/** The layout file's name beside `model.json`. */
export const LAYOUT_FILE = 'layout.json';

/** The weights in order: every block's up and down kernel and bias, then the head's. */
function weightList(spec: ResolvedSpec): { name: string; shape: number[]; low: number; high: number }[] {
  const { width, blocks, classes } = spec;
  const he = Math.sqrt(6 / width); // relu keeps the second moment
  const damped = 0.1 * Math.sqrt(3 / width); // each residual branch adds ~1% of variance
  const list = [];
  for (let b = 0; b < blocks; b++) {
    list.push(
      { name: `b${b}_up/kernel`, shape: [width, width], low: -he, high: he },
      { name: `b${b}_up/bias`, shape: [width], low: -0.01, high: 0.01 },
      { name: `b${b}_down/kernel`, shape: [width, width], low: -damped, high: damped },
      { name: `b${b}_down/bias`, shape: [width], low: -0.01, high: 0.01 },
    );
  }
  const head = Math.sqrt(3 / width);
  list.push(
    { name: 'head/kernel', shape: [width, classes], low: -head, high: head },
    { name: 'head/bias', shape: [classes], low: -0.01, high: 0.01 },
  );
  return list;
}

/** The topology TF.js writes for the tower: taken from a 4-wide copy, widened. */
function topologyOf(spec: ResolvedSpec): unknown {
  const narrow = 4;
  const x = tf.input({ shape: [narrow], name: 'x' });
  let h = x;
  for (let b = 0; b < spec.blocks; b++) {
    const up = tf.layers
      .dense({ units: narrow, activation: 'relu', name: `b${b}_up` })
      .apply(h) as tf.SymbolicTensor;
    const down = tf.layers.dense({ units: narrow, name: `b${b}_down` }).apply(up) as tf.SymbolicTensor;
    h = tf.layers.add({ name: `b${b}_add` }).apply([h, down]) as tf.SymbolicTensor;
  }
  const y = tf.layers
    .dense({ units: spec.classes, activation: 'softmax', name: 'head' })
    .apply(h) as tf.SymbolicTensor;
  const model = tf.model({ inputs: x, outputs: y, name: 'bigdense' });
  const json = model.toJSON(null, false) as {
    config: { layers: { class_name: string; config: Record<string, unknown> }[] };
  };
  model.dispose();
  for (const layer of json.config.layers) {
    if (layer.class_name === 'InputLayer') layer.config.batch_input_shape = [null, spec.width];
    if (layer.class_name === 'Dense' && layer.config.name !== 'head') layer.config.units = spec.width;
  }
  return json;
}

/** Writes bytes across shard files of a fixed size. */
class ShardWriter {
  readonly #dir: string;
  readonly #shardBytes: number;
  readonly names: string[] = [];
  #stream: WriteStream | undefined;
  #left = 0;

  constructor(dir: string, shardBytes: number) {
    this.#dir = dir;
    this.#shardBytes = shardBytes;
  }

  async write(bytes: Uint8Array): Promise<void> {
    let at = 0;
    while (at < bytes.byteLength) {
      if (this.#stream === undefined || this.#left === 0) await this.#next();
      const piece = bytes.subarray(at, at + Math.min(this.#left, bytes.byteLength - at));
      if (!this.#stream!.write(piece))
        await new Promise<void>((resolve) => this.#stream!.once('drain', () => resolve()));
      this.#left -= piece.byteLength;
      at += piece.byteLength;
    }
  }

  async #next(): Promise<void> {
    await this.close();
    const name = `group1-shard${this.names.length + 1}.bin`;
    this.names.push(name);
    this.#stream = createWriteStream(path.join(this.#dir, name));
    this.#left = this.#shardBytes;
  }

  async close(): Promise<void> {
    const stream = this.#stream;
    this.#stream = undefined;
    if (stream)
      await new Promise<void>((resolve, reject) =>
        stream.end((error?: Error | null) => (error ? reject(error) : resolve())),
      );
  }
}

const CHUNK_VALUES = 1 << 22; // 16 MiB of float32 per write

function resolveSpec(spec: BigDenseSpec): ResolvedSpec {
  const shardBytes = spec.shardBytes ?? 64 * 1024 * 1024;
  for (const [key, value] of Object.entries({
    width: spec.width,
    blocks: spec.blocks,
    classes: spec.classes,
    shardBytes,
  })) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new DinferError(
        DinferErrorCode.INVALID_ARGUMENT,
        `${key} must be a positive integer, got ${value}`,
      );
    }
  }
  return { width: spec.width, blocks: spec.blocks, classes: spec.classes, seed: spec.seed, shardBytes };
}

/**
 * Writes the tower's artifacts to `dir` (`model.json`, shards and `layout.json`; the old
 * contents are replaced), into a temporary directory renamed into place at the end. Reuses
 * artifacts already there for the same spec.
 *
 * @returns the layout and whether it was generated now.
 */
export async function writeBigDenseModel(
  dir: string,
  spec: BigDenseSpec,
  onProgress?: (writtenBytes: number, totalBytes: number) => void,
): Promise<{ layout: BigDenseLayout; generated: boolean }> {
  const full = resolveSpec(spec);
  const existing = await readBigDenseLayout(dir).catch(() => undefined);
  if (existing !== undefined && JSON.stringify(existing.spec) === JSON.stringify(full)) {
    return { layout: existing, generated: false };
  }
  const temporary = `${dir}.tmp-${process.pid}`;
  await rm(temporary, { recursive: true, force: true });
  await mkdir(temporary, { recursive: true });
  const list = weightList(full);
  const totalBytes = list.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 4), 0);
  const writer = new ShardWriter(temporary, full.shardBytes);
  const weights: BigDenseWeight[] = [];
  const chunk = new Float32Array(CHUNK_VALUES);
  let offset = 0;
  try {
    for (const w of list) {
      const random = seededRandom(deriveSeed(full.seed, w.name));
      const count = w.shape.reduce((a, b) => a * b, 1);
      for (let done = 0; done < count; done += CHUNK_VALUES) {
        const values = chunk.subarray(0, Math.min(CHUNK_VALUES, count - done));
        random.fillUniform(values, w.low, w.high);
        await writer.write(new Uint8Array(values.buffer, 0, values.byteLength));
        onProgress?.(offset + (done + values.length) * 4, totalBytes);
      }
      weights.push({ name: w.name, shape: w.shape, offset, byteLength: count * 4 });
      offset += count * 4;
    }
  } finally {
    await writer.close();
  }
  const modelJson = {
    format: 'layers-model',
    generatedBy: 'dinfer examples (big-dense)',
    convertedBy: null,
    modelTopology: topologyOf(full),
    weightsManifest: [
      { paths: writer.names, weights: list.map((w) => ({ name: w.name, shape: w.shape, dtype: 'float32' })) },
    ],
  };
  const layout: BigDenseLayout = {
    spec: full,
    shards: writer.names,
    shardBytes: full.shardBytes,
    weights,
    weightBytes: offset,
  };
  await writeFile(path.join(temporary, 'model.json'), JSON.stringify(modelJson));
  await writeFile(path.join(temporary, LAYOUT_FILE), JSON.stringify(layout));
  await rm(dir, { recursive: true, force: true });
  await rename(temporary, dir);
  return { layout, generated: true };
}

/** Reads the `layout.json` of a tower written by {@link writeBigDenseModel}. */
export async function readBigDenseLayout(dir: string): Promise<BigDenseLayout> {
  return JSON.parse(await readFile(path.join(dir, LAYOUT_FILE), 'utf8')) as BigDenseLayout;
}
