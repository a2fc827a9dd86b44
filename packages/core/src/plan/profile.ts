/**
 * The layer profiler: measures each layer's time on the active TF.js backend by running a
 * LayersModel layer by layer on a random input.
 *
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { DinferError, DinferErrorCode } from '../errors.js';

/** Options of {@link profileLayers}. */
export interface ProfileOptions {
  /** Timed runs; each layer's result is the median over them. Default 3. */
  readonly runs?: number;
  /** Untimed runs first (kernel compilation, allocator warm-up). Default 1. */
  readonly warmup?: number;
  /** Batch size of the random input. Default 1. */
  readonly batchSize?: number;
  /**
   * What to time with. `'wall'` (default): elapsed time, right for every backend. `'cpu'`:
   * this process' CPU time (Node only), which ignores time lost to other processes on a busy
   * machine; right only for backends that compute on the calling thread (wasm with one
   * thread, cpu), not for GPU backends or thread pools.
   */
  readonly clock?: ProfileClock;
  /**
   * When to wait for each layer's outputs with a `dataSync()`: `'auto'` (default) only on
   * backends that compute off the calling thread (not wasm or cpu, whose kernels are done when
   * `apply` returns); `'always'` on every backend.
   */
  readonly sync?: 'auto' | 'always';
  /** Aborts between layers; the promise rejects with an `ABORTED` DinferError. */
  readonly signal?: AbortSignal;
}

/** The clocks {@link profileLayers} can time with. */
export type ProfileClock = 'wall' | 'cpu';

/**
 * Returns a function reading the given clock in milliseconds.
 *
 * @throws DinferError `INVALID_ARGUMENT` for an unknown clock, or `'cpu'` outside Node.
 */
export function clockReader(clock: ProfileClock): () => number {
  if (clock === 'wall') return () => performance.now();
  if (clock === 'cpu' && typeof process !== 'undefined' && typeof process.cpuUsage === 'function') {
    return () => {
      const usage = process.cpuUsage();
      return (usage.user + usage.system) / 1000;
    };
  }
  throw new DinferError(
    DinferErrorCode.INVALID_ARGUMENT,
    clock === 'cpu' ? 'the cpu clock needs Node (process.cpuUsage)' : `unknown clock "${String(clock)}"`,
    { details: { clock } },
  );
}

type Layer = tf.layers.Layer;
type LayerNode = Layer['inboundNodes'][number];
type Symbolic = tf.SymbolicTensor;

interface Step {
  /** Position of the layer in `model.layers`, -1 for a layer outside it (a Sequential's input). */
  readonly layerIndex: number;
  readonly node: LayerNode;
}

function positiveInt(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `${name} must be an integer >= ${min}, got ${value}`,
      {
        details: { [name]: value },
      },
    );
  }
  return value;
}

/**
 * The nodes that compute the model's outputs from its inputs, in an executable order:
 * `model.layers` order (topological), each layer's nodes by index, postponing a node until
 * its inputs exist (shared layers used at several depths).
 */
function executionOrder(model: tf.LayersModel): Step[] {
  const inputIds = new Set(model.inputs.map((t) => t.id));
  const wanted = new Set<LayerNode>();
  const visit = (tensor: Symbolic): void => {
    if (inputIds.has(tensor.id)) return;
    const node = tensor.sourceLayer.inboundNodes[tensor.nodeIndex];
    if (node === undefined) {
      throw new DinferError(
        DinferErrorCode.MODEL_UNSUPPORTED,
        `tensor "${tensor.name}" has no producing node in layer "${tensor.sourceLayer.name}"`,
      );
    }
    if (wanted.has(node)) return;
    wanted.add(node);
    for (const input of node.inputTensors) visit(input);
  };
  for (const output of model.outputs) visit(output);

  const layerIndex = new Map<Layer, number>();
  model.layers.forEach((layer, i) => {
    layerIndex.set(layer, i);
  });
  const pending: Step[] = [];
  const seen = new Set<LayerNode>();
  for (const layer of model.layers) {
    for (const node of layer.inboundNodes) {
      if (wanted.has(node)) {
        pending.push({ layerIndex: layerIndex.get(layer)!, node });
        seen.add(node);
      }
    }
  }
  for (const node of wanted) {
    if (!seen.has(node)) pending.push({ layerIndex: layerIndex.get(node.outboundLayer) ?? -1, node });
  }

  const available = new Set(inputIds);
  const order: Step[] = [];
  let remaining = pending;
  while (remaining.length > 0) {
    const blocked: Step[] = [];
    for (const step of remaining) {
      if (step.node.inputTensors.every((t) => available.has(t.id))) {
        order.push(step);
        for (const out of step.node.outputTensors) available.add(out.id);
      } else {
        blocked.push(step);
      }
    }
    if (blocked.length === remaining.length) {
      throw new DinferError(
        DinferErrorCode.MODEL_UNSUPPORTED,
        `cannot order the layers of model "${model.name}": layer "${blocked[0]!.node.outboundLayer.name}" waits on tensors never produced`,
      );
    }
    remaining = blocked;
  }
  return order;
}

function randomInput(spec: Symbolic, batchSize: number, modelName: string): tf.Tensor {
  const shape = spec.shape.map((d, i) => {
    if (d !== null) return d;
    if (i === 0) return batchSize;
    throw new DinferError(
      DinferErrorCode.MODEL_UNSUPPORTED,
      `cannot profile model "${modelName}": input "${spec.name}" has an unknown dimension ${i} (shape [${spec.shape.join(', ')}])`,
      { details: { input: spec.name, shape: spec.shape } },
    );
  });
  return spec.dtype === 'int32'
    ? tf.randomUniform(shape, 0, 10, 'int32')
    : tf.randomUniform(shape, -1, 1, spec.dtype === 'bool' ? 'bool' : 'float32');
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new DinferError(DinferErrorCode.ABORTED, 'layer profiling was aborted', { cause: signal.reason });
  }
}

/**
 * Backends whose kernels finish before the op returns (they compute on the calling thread):
 * timing `apply` alone is exact, and a read-back would only add a copy that a fused
 * `predict` never makes.
 */
const SYNCHRONOUS_BACKENDS: ReadonlySet<string> = new Set(['cpu', 'wasm']);

/**
 * Time of `run()` until its outputs are computed. On a synchronous backend that is when it
 * returns. Otherwise the outputs are read back with `dataSync()` (which waits for the device)
 * and the time of a second read, the bare copy, is subtracted.
 */
function timeLayer(run: () => tf.Tensor[], now: () => number, synchronous: boolean): [number, tf.Tensor[]] {
  const start = now();
  const outputs = run();
  if (synchronous) return [now() - start, outputs];
  for (const out of outputs) out.dataSync();
  const synced = now();
  for (const out of outputs) out.dataSync();
  const copyMs = now() - synced;
  return [Math.max(0, synced - start - copyMs), outputs];
}

/** Runs every step once, returning each `model.layers` entry's time in ms. Disposes everything. */
function runOnce(
  model: tf.LayersModel,
  order: readonly Step[],
  inputs: readonly tf.Tensor[],
  now: () => number,
  synchronous: boolean,
  signal: AbortSignal | undefined,
): number[] {
  const times = new Array<number>(model.layers.length).fill(0);
  const values = new Map<number, tf.Tensor>();
  const uses = new Map<number, number>();
  for (const step of order) {
    for (const t of step.node.inputTensors) uses.set(t.id, (uses.get(t.id) ?? 0) + 1);
  }
  const keep = new Set(model.outputs.map((t) => t.id));
  const inputIds = new Set(model.inputs.map((t) => t.id));
  model.inputs.forEach((spec, i) => {
    values.set(spec.id, inputs[i]!);
  });
  const release = (id: number): void => {
    if (keep.has(id) || inputIds.has(id)) return;
    values.get(id)?.dispose();
    values.delete(id);
  };
  try {
    for (const step of order) {
      throwIfAborted(signal);
      const { node } = step;
      if (node.inputTensors.length === 0) continue; // an InputLayer: its output is a model input
      const args = node.inputTensors.map((t) => values.get(t.id)!);
      const { mask: _mask, ...kwargs } = node.callArgs ?? {};
      const [elapsed, outputs] = timeLayer(
        () => {
          const result = tf.tidy(
            () =>
              node.outboundLayer.apply(args.length === 1 ? args[0]! : args, kwargs) as
                | tf.Tensor
                | tf.Tensor[],
          );
          return Array.isArray(result) ? result : [result];
        },
        now,
        synchronous,
      );
      if (step.layerIndex >= 0) times[step.layerIndex]! += elapsed;
      node.outputTensors.forEach((symbolic, i) => {
        const out = outputs[i];
        if (out === undefined) return;
        values.set(symbolic.id, out);
        if (!uses.has(symbolic.id)) release(symbolic.id);
      });
      for (const t of node.inputTensors) {
        const left = uses.get(t.id)! - 1;
        uses.set(t.id, left);
        if (left === 0) release(t.id);
      }
    }
  } finally {
    for (const [id, tensor] of values) if (!inputIds.has(id)) tensor.dispose();
  }
  return times;
}

/**
 * Measures each layer's time in ms on the active backend: the model runs layer by layer in
 * topological order on a random input and each layer's `apply` is timed until its outputs are
 * computed: on backends that compute on the calling thread (wasm, cpu) until `apply` returns;
 * on the others (tfjs-node, webgl, webgpu) until a `dataSync()` of its outputs returns, minus
 * the time of a second `dataSync()` (the bare copy of the values, which a fused `predict`
 * never makes for intermediate tensors). Each layer's result is the median over `runs`. Returns
 * one entry per `model.layers` entry (0 for input layers; a shared layer sums its calls).
 * Every tensor it creates is disposed.
 *
 * The sum over layers approximates a whole-model `predict`.
 */
export async function profileLayers(model: tf.LayersModel, options: ProfileOptions = {}): Promise<number[]> {
  const runs = positiveInt('runs', options.runs ?? 3, 1);
  const warmup = positiveInt('warmup', options.warmup ?? 1, 0);
  const batchSize = positiveInt('batchSize', options.batchSize ?? 1, 1);
  const { signal } = options;
  const now = clockReader(options.clock ?? 'wall');
  const sync = options.sync ?? 'auto';
  if (sync !== 'auto' && sync !== 'always') {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `sync must be 'auto' or 'always', got "${String(sync)}"`,
    );
  }
  const synchronous = sync === 'auto' && SYNCHRONOUS_BACKENDS.has(tf.getBackend());
  throwIfAborted(signal);
  const order = executionOrder(model);
  const inputs = model.inputs.map((spec) => randomInput(spec, batchSize, model.name));
  const samples: number[][] = model.layers.map(() => []);
  try {
    for (let run = 0; run < warmup + runs; run++) {
      const times = runOnce(model, order, inputs, now, synchronous, signal);
      if (run >= warmup) {
        times.forEach((t, i) => {
          samples[i]!.push(t);
        });
      }
      // Let timers and abort events through between runs.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } finally {
    for (const input of inputs) input.dispose();
  }
  return samples.map(median);
}
