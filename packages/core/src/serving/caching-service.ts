/**
 * A result cache as an {@link InferenceService} decorator: identical requests (same model,
 * version and input bytes) are answered from memory, least recently used entries evicted
 * beyond a byte budget.
 *
 * @module
 */
import { LRUCache } from 'lru-cache';
import { DinferError, DinferErrorCode, isDinferError } from '../errors.js';
import { type Metrics, noopMetrics } from '../metrics.js';
import type { TensorData } from '../tensor/types.js';
import { resultCacheKey } from './cache-key.js';
import type {
  InferenceService,
  InferOptions,
  InferResult,
  ServedModel,
  ServiceHealth,
} from './inference-service.js';

/** Options of {@link cachingService}. */
export interface CachingOptions {
  /** Most bytes of stored outputs (tensor data) kept; least recently used entries go first. */
  readonly maxBytes: number;
  /** Receives `dinfer_cache_hits_total` and `dinfer_cache_misses_total`, labelled with the model. */
  readonly metrics?: Metrics | undefined;
}

/** Counters and size of a result cache. */
export interface ResultCacheStats {
  /** Stored results. */
  readonly entries: number;
  /** Bytes of stored output data. */
  readonly bytes: number;
  /** Requests answered without their own inner call (from the cache, or sharing an identical call in flight). */
  readonly hits: number;
  /** Requests that ran on the inner service. */
  readonly misses: number;
  /** Entries dropped to stay within the byte budget. */
  readonly evictions: number;
}

/** An {@link InferenceService} with a result cache in front of it. */
export interface CachingService extends InferenceService {
  /** A snapshot of the cache's counters and size. */
  stats(): ResultCacheStats;
  /** Drops every stored result (counters are kept). */
  clear(): void;
}

interface Entry {
  readonly model: string;
  readonly version: string;
  readonly outputs: readonly TensorData[];
  readonly bytes: number;
}

function copyTensor(t: TensorData): TensorData {
  return { ...t, shape: [...t.shape], data: t.data.slice() } as TensorData;
}

function abortError(reason: unknown): DinferError {
  return new DinferError(DinferErrorCode.ABORTED, 'the request was aborted', { cause: reason });
}

/** Waits for `shared` (another request's inner call) within this request's own signal and deadline. */
function follow(shared: Promise<InferResult>, options: InferOptions): Promise<InferResult> {
  const { signal, deadline } = options;
  if (!signal && deadline === undefined) return shared;
  return new Promise<InferResult>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onAbort = () => finish(() => reject(abortError(signal?.reason)));
    const finish = (settle: () => void) => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      settle();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (deadline !== undefined) {
      timer = setTimeout(
        () =>
          finish(() =>
            reject(
              new DinferError(DinferErrorCode.TIMEOUT, 'the request passed its deadline', {
                details: { deadline },
              }),
            ),
          ),
        Math.max(0, deadline - Date.now()),
      );
    }
    shared.then(
      (result) => finish(() => resolve(result)),
      (error: unknown) => finish(() => reject(error)),
    );
  });
}

/** True when `error` ended a call because of that call's own signal or deadline. */
function endedByCaller(error: unknown): boolean {
  return isDinferError(error, DinferErrorCode.ABORTED) || isDinferError(error, DinferErrorCode.TIMEOUT);
}

/**
 * Wraps `inner` with an LRU result cache bounded by `maxBytes` of output data. The key is
 * the SHA-256 of the model name, the version `inner.models()` lists for it, and each input's
 * dtype, shape and bytes ({@link resultCacheKey}), so different shapes over the same bytes
 * never collide.
 *
 * - A hit skips the inner service: the answer carries `cached: true`, copies of the stored
 *   outputs, an empty stage trace, and `processingTimeMs` of the lookup.
 * - A miss runs `inner.infer` and stores the outputs (copies) under the version that
 *   computed them; results larger than `maxBytes` are not stored.
 * - When a model's version changes, the entries of its other versions are dropped at the
 *   next request for it (the version is also part of the key).
 * - Single flight: a request identical to one already running waits for that call instead
 *   of starting its own (within its own signal and deadline) and answers `cached: true`. If
 *   the running call ends by its own caller's abort or deadline, the waiting request runs
 *   its own call.
 * - Models `inner` does not list pass straight through (the inner service answers with its
 *   own error). `models()` and `health()` are the inner service's.
 *
 * @throws DinferError INVALID_ARGUMENT when `maxBytes` is not a positive integer.
 */
export function cachingService(inner: InferenceService, options: CachingOptions): CachingService {
  const maxBytes = options.maxBytes;
  if (typeof maxBytes !== 'number' || !Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new DinferError(
      DinferErrorCode.INVALID_ARGUMENT,
      `cache option maxBytes must be a positive integer; got ${String(maxBytes)}`,
      { details: { option: 'maxBytes', value: maxBytes } },
    );
  }
  const metrics = options.metrics ?? noopMetrics;
  let hits = 0;
  let misses = 0;
  let evictions = 0;
  const cache = new LRUCache<string, Entry>({
    maxSize: maxBytes,
    sizeCalculation: (entry) => Math.max(1, entry.bytes),
    dispose: (_entry, _key, reason) => {
      if (reason === 'evict') evictions++;
    },
  });
  /** Last version seen per model, to drop other versions' entries when it changes. */
  const versions = new Map<string, string>();
  const running = new Map<string, Promise<InferResult>>();

  const noteVersion = (model: string, version: string): void => {
    const previous = versions.get(model);
    versions.set(model, version);
    if (previous === undefined || previous === version) return;
    const stale: string[] = [];
    for (const [key, entry] of cache.entries()) {
      if (entry.model === model && entry.version !== version) stale.push(key);
    }
    for (const key of stale) cache.delete(key);
  };

  const store = (key: string, result: InferResult): void => {
    let bytes = 0;
    for (const t of result.outputs) bytes += t.data.byteLength;
    if (bytes > maxBytes || versions.get(result.model) !== result.version) return;
    cache.set(key, {
      model: result.model,
      version: result.version,
      outputs: result.outputs.map(copyTensor),
      bytes,
    });
  };

  const lead = (
    model: string,
    version: string,
    key: string,
    inputs: readonly TensorData[],
    infer: InferOptions,
  ): Promise<InferResult> => {
    misses++;
    metrics.increment('dinfer_cache_misses_total', { model });
    const call = inner.infer(model, inputs, infer).then((result) => {
      noteVersion(result.model, result.version);
      store(result.version === version ? key : resultCacheKey(model, result.version, inputs), result);
      return result;
    });
    running.set(key, call);
    void call.then(
      () => running.delete(key),
      () => running.delete(key),
    );
    return call;
  };

  const service: CachingService = {
    models: (): readonly ServedModel[] => inner.models(),
    health: (): ServiceHealth => inner.health(),
    stats: () => ({ entries: cache.size, bytes: cache.calculatedSize, hits, misses, evictions }),
    clear: () => cache.clear(),
    async infer(
      model: string,
      inputs: readonly TensorData[],
      infer: InferOptions = {},
    ): Promise<InferResult> {
      const started = performance.now();
      if (infer.signal?.aborted) throw abortError(infer.signal.reason);
      const served = inner.models().find((m) => m.name === model);
      // Unknown models, and requests pinned to another version than the active one, bypass
      // the cache (its keys carry the active version).
      if (!served || (infer.version !== undefined && infer.version !== served.version)) {
        return inner.infer(model, inputs, infer);
      }
      noteVersion(model, served.version);
      const key = resultCacheKey(model, served.version, inputs);
      const entry = cache.get(key);
      if (entry) {
        hits++;
        metrics.increment('dinfer_cache_hits_total', { model });
        return {
          model: entry.model,
          version: entry.version,
          outputs: entry.outputs.map(copyTensor),
          nodes: [],
          degraded: false,
          processingTimeMs: performance.now() - started,
          cached: true,
        };
      }
      const shared = running.get(key);
      if (!shared) return lead(model, served.version, key, inputs, infer);
      let result: InferResult;
      try {
        result = await follow(shared, infer);
      } catch (error) {
        const own = infer.signal?.aborted || (infer.deadline !== undefined && Date.now() >= infer.deadline);
        if (own || !endedByCaller(error)) throw error;
        // The call we waited on was ended by its own caller: run ours.
        return service.infer(model, inputs, infer);
      }
      hits++;
      metrics.increment('dinfer_cache_hits_total', { model });
      return {
        ...result,
        outputs: result.outputs.map(copyTensor),
        processingTimeMs: performance.now() - started,
        cached: true,
      };
    },
  };
  return service;
}
