/**
 * `dinfer bench --url http://HOST:PORT`: load-tests a running master with autocannon. It reads
 * the model's metadata (`GET /v2/models/{name}`), builds one valid request for its input
 * shape (batch 1), checks that the server answers it, then replays it on many connections and
 * prints throughput, latency percentiles, errors and non-2xx answers.
 *
 * Bodies: `POST /api/infer` JSON for a single-input model, the KServe v2 JSON body for
 * several inputs, or with `--binary` the KServe v2 binary tensor data extension (falling back
 * to v2 JSON, with a warning, when the server refuses it).
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '@dinfer/core';
import { seededRandom } from '@dinfer/core/models';
import autocannon from 'autocannon';
import { Command, InvalidArgumentError, Option } from 'commander';
import { parsePositiveInt } from './arguments.js';
import { type CliIo, table } from './common.js';

/** Options of `dinfer bench`. */
export interface BenchOptions {
  readonly url: string;
  readonly model?: string;
  readonly connections: number;
  /** Seconds to run; ignored when `requests` is given. */
  readonly duration: number;
  /** Total requests to send (instead of a duration). */
  readonly requests?: number;
  readonly input: 'random' | 'zeros';
  readonly binary: boolean;
  readonly json: boolean;
  /** Per-request timeout in seconds. */
  readonly timeout: number;
}

/** One input of the model metadata (`GET /v2/models/{name}`). */
interface TensorMetadata {
  readonly name: string;
  readonly datatype: string;
  readonly shape: readonly number[];
}

/** What was measured. Latencies in ms. */
export interface BenchReport {
  readonly url: string;
  readonly model: string;
  /** `simple` (`/api/infer`), `v2-json` or `v2-binary`. */
  readonly protocol: 'simple' | 'v2-json' | 'v2-binary';
  readonly path: string;
  readonly inputShape: readonly number[];
  readonly bodyBytes: number;
  readonly connections: number;
  readonly durationSeconds: number;
  /** Requests sent and answered (any status). */
  readonly requests: number;
  /** 2xx answers per second over the whole run. */
  readonly throughputPerSecond: number;
  readonly latencyMs: {
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly max: number;
    readonly mean: number;
  };
  /** Connection errors (timeouts included). */
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly status: { readonly '2xx': number; readonly '4xx': number; readonly '5xx': number };
}

/** A request body and the headers it travels with. */
interface PreparedRequest {
  readonly protocol: BenchReport['protocol'];
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
}

function fail(message: string, code: DinferErrorCode = DinferErrorCode.INVALID_ARGUMENT): DinferError {
  return new DinferError(code, message);
}

/** Values for one input: uniform [0, 1) floats, 0/1 integers and booleans (safe for embeddings), or zeros. */
function inputValues(datatype: string, count: number, kind: BenchOptions['input'], seed: number): number[] {
  const random = seededRandom(seed);
  const values = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    if (kind === 'zeros') values[i] = 0;
    else if (datatype === 'FP32' || datatype === 'FP16' || datatype === 'FP64') values[i] = random.next();
    else if (datatype === 'UINT8') values[i] = Math.floor(random.next() * 256);
    else values[i] = random.next() < 0.5 ? 0 : 1;
  }
  return values;
}

function nest(flat: readonly number[], shape: readonly number[], offset = 0): unknown {
  if (shape.length <= 1) return flat.slice(offset, offset + (shape[0] ?? 1));
  const [first, ...rest] = shape;
  const step = rest.reduce((a, b) => a * b, 1);
  return Array.from({ length: first! }, (_, i) => nest(flat, rest, offset + i * step));
}

/** The bytes of `values` as the binary extension carries `datatype` (little-endian). */
function binaryBytes(datatype: string, values: readonly number[]): Buffer {
  switch (datatype) {
    case 'FP32':
      return Buffer.from(new Float32Array(values).buffer);
    case 'INT32':
      return Buffer.from(new Int32Array(values).buffer);
    case 'UINT8':
    case 'BOOL':
      return Buffer.from(Uint8Array.from(values));
    default:
      throw fail(`cannot send ${datatype} inputs as binary data`);
  }
}

/** Builds the request for `inputs` (batch 1: free dimensions become 1). */
function prepareRequest(
  model: string,
  inputs: readonly TensorMetadata[],
  kind: BenchOptions['input'],
  protocol: BenchReport['protocol'],
): PreparedRequest {
  const tensors = inputs.map((spec, i) => {
    const shape = spec.shape.map((d) => (d < 0 ? 1 : d));
    const count = shape.reduce((a, b) => a * b, 1);
    return { spec, shape, values: inputValues(spec.datatype, count, kind, 1 + i) };
  });
  const v2Path = `/v2/models/${encodeURIComponent(model)}/infer`;
  const json = { 'content-type': 'application/json' };
  if (protocol === 'simple') {
    const only = tensors[0]!;
    const body = JSON.stringify({ model, input: nest(only.values, only.shape) });
    return { protocol, path: '/api/infer', headers: json, body: Buffer.from(body) };
  }
  const asBool = (spec: TensorMetadata, values: readonly number[]) =>
    spec.datatype === 'BOOL' ? values.map((v) => v !== 0) : values;
  if (protocol === 'v2-json') {
    const body = JSON.stringify({
      inputs: tensors.map(({ spec, shape, values }) => ({
        name: spec.name,
        shape,
        datatype: spec.datatype,
        data: asBool(spec, values),
      })),
    });
    return { protocol, path: v2Path, headers: json, body: Buffer.from(body) };
  }
  const parts = tensors.map(({ spec, values }) => binaryBytes(spec.datatype, values));
  const header = Buffer.from(
    JSON.stringify({
      inputs: tensors.map(({ spec, shape }, i) => ({
        name: spec.name,
        shape,
        datatype: spec.datatype,
        parameters: { binary_data_size: parts[i]!.byteLength },
      })),
    }),
  );
  return {
    protocol,
    path: v2Path,
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.byteLength),
    },
    body: Buffer.concat([header, ...parts]),
  };
}

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (cause) {
    const reason = (cause as Error).cause ?? (cause as Error).message;
    throw new DinferError(DinferErrorCode.TRANSPORT_CONNECT, `cannot reach ${url}: ${String(reason)}`, {
      cause,
    });
  }
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) as unknown };
  } catch {
    return { status: response.status, body: text };
  }
}

function errorText(body: unknown): string {
  const error = (body as { error?: unknown } | null)?.error;
  return typeof error === 'string' ? error : JSON.stringify(body).slice(0, 200);
}

/** The model to load-test: `--model`, or the only model `/api/status` lists. */
async function pickModel(base: string, model: string | undefined): Promise<string> {
  if (model !== undefined) return model;
  const { status, body } = await getJson(`${base}/api/status`);
  const models = (body as { models?: { name?: unknown }[] } | null)?.models;
  if (status !== 200 || !Array.isArray(models)) {
    throw fail(`${base} does not list its models (GET /api/status answered ${status}); pass --model`);
  }
  const names = models.map((m) => m.name).filter((n): n is string => typeof n === 'string');
  if (names.length !== 1) {
    throw fail(
      `${base} serves ${names.length === 0 ? 'no models' : `several models (${names.join(', ')})`}; pass --model`,
    );
  }
  return names[0]!;
}

async function fetchInputs(base: string, model: string): Promise<TensorMetadata[]> {
  const { status, body } = await getJson(`${base}/v2/models/${encodeURIComponent(model)}`);
  if (status !== 200) {
    const code = status === 404 ? DinferErrorCode.UNKNOWN_MODEL : DinferErrorCode.REMOTE;
    throw fail(`GET /v2/models/${model} answered ${status}: ${errorText(body)}`, code);
  }
  const inputs = (body as { inputs?: unknown } | null)?.inputs;
  const valid =
    Array.isArray(inputs) &&
    inputs.length > 0 &&
    inputs.every(
      (t: Partial<TensorMetadata>) =>
        typeof t?.name === 'string' &&
        typeof t.datatype === 'string' &&
        Array.isArray(t.shape) &&
        t.shape.every((d) => Number.isInteger(d)),
    );
  if (!valid) throw fail(`GET /v2/models/${model} returned no usable input metadata`);
  return inputs as TensorMetadata[];
}

async function tryRequest(
  base: string,
  request: PreparedRequest,
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${base}${request.path}`, {
    method: 'POST',
    headers: request.headers,
    body: new Uint8Array(request.body),
    signal: AbortSignal.timeout(120_000),
  });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) as unknown };
  } catch {
    return { status: response.status, body: text };
  }
}

/**
 * Builds a valid request for the model at `options.url`, checks it once, then load-tests with
 * autocannon. `onWarning` hears about fallbacks (binary refused).
 *
 * @throws DinferError TRANSPORT_CONNECT when the server is unreachable, UNKNOWN_MODEL for an
 *   unknown model, REMOTE when the probe request fails, INVALID_ARGUMENT for a bad URL.
 */
export async function runBench(
  options: BenchOptions,
  onWarning: (message: string) => void = () => {},
): Promise<BenchReport> {
  let base: string;
  try {
    base = new URL(options.url).origin;
  } catch {
    throw fail(`--url "${options.url}" is not a URL like http://127.0.0.1:8080`);
  }
  const model = await pickModel(base, options.model);
  const inputs = await fetchInputs(base, model);
  const protocols: BenchReport['protocol'][] = options.binary
    ? ['v2-binary', 'v2-json']
    : inputs.length === 1
      ? ['simple']
      : ['v2-json'];
  let request: PreparedRequest | undefined;
  for (const protocol of protocols) {
    const candidate = prepareRequest(model, inputs, options.input, protocol);
    const probe = await tryRequest(base, candidate);
    if (probe.status >= 200 && probe.status < 300) {
      request = candidate;
      break;
    }
    const why = `POST ${candidate.path} (${protocol}) answered ${probe.status}: ${errorText(probe.body)}`;
    if (protocol === 'v2-binary' && probe.status >= 400 && probe.status < 500) {
      onWarning(`the server refused the binary extension (${why}); using v2 JSON`);
      continue;
    }
    throw fail(`the probe request failed: ${why}`, DinferErrorCode.REMOTE);
  }
  if (request === undefined)
    throw fail('no request format was accepted by the server', DinferErrorCode.REMOTE);

  const result = await autocannon({
    url: `${base}${request.path}`,
    method: 'POST',
    headers: request.headers,
    body: request.body,
    connections: options.connections,
    timeout: options.timeout,
    ...(options.requests === undefined ? { duration: options.duration } : { amount: options.requests }),
  });
  const ok = result['2xx'];
  const answered = ok + result.non2xx;
  const seconds = Math.max(result.duration, 1e-9);
  const round = (x: number) => Math.round(x * 100) / 100;
  return {
    url: base,
    model,
    protocol: request.protocol,
    path: request.path,
    inputShape: inputs[0]!.shape.map((d) => (d < 0 ? 1 : d)),
    bodyBytes: request.body.byteLength,
    connections: options.connections,
    durationSeconds: round(result.duration),
    requests: answered,
    throughputPerSecond: round(ok / seconds),
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
      mean: round(result.latency.mean),
    },
    errors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    status: { '2xx': ok, '4xx': result['4xx'], '5xx': result['5xx'] },
  };
}

/** The report as a few lines for people. */
export function formatBenchReport(report: BenchReport): string {
  const l = report.latencyMs;
  return [
    `${report.model} at ${report.url}${report.path} (${report.protocol}, input ${JSON.stringify(report.inputShape)}, ${report.bodyBytes} bytes per request)`,
    `${report.connections} connection(s), ${report.durationSeconds} s, ${report.requests} requests`,
    '',
    table(
      ['throughput', 'p50', 'p90', 'p99', 'max', 'errors', 'non-2xx'],
      [
        [
          `${report.throughputPerSecond} req/s`,
          `${l.p50} ms`,
          `${l.p90} ms`,
          `${l.p99} ms`,
          `${l.max} ms`,
          String(report.errors),
          String(report.non2xx),
        ],
      ],
      [0, 1, 2, 3, 4, 5, 6],
    ),
  ].join('\n');
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) {
    throw new InvalidArgumentError(`expected a positive number of seconds, got "${value}"`);
  }
  return n;
}

/** Runs `dinfer bench`; exits 1 (through the thrown error) when the probe request fails. */
export async function benchAction(options: BenchOptions, io: CliIo): Promise<void> {
  const report = await runBench(options, (message) => io.err(`warning: ${message}`));
  io.out(options.json ? JSON.stringify(report) : formatBenchReport(report));
}

/** The `dinfer bench` command. */
export function benchCommand(io: CliIo): Command {
  return new Command('bench')
    .description('load-test a running master (autocannon) and print throughput and latency')
    .requiredOption('--url <url>', 'the master HTTP API, e.g. http://127.0.0.1:8080')
    .option('--model <name>', 'model to call (default: the only model the server serves)')
    .option('--connections <n>', 'concurrent connections', parsePositiveInt, 8)
    .addOption(
      new Option('--duration <seconds>', 'how long to run')
        .argParser(parseSeconds)
        .default(10)
        .conflicts('requests'),
    )
    .option('--requests <n>', 'send this many requests instead of running for a duration', parsePositiveInt)
    .addOption(new Option('--input <kind>', 'input values').choices(['random', 'zeros']).default('random'))
    .option('--binary', 'send tensors with the KServe v2 binary data extension', false)
    .option('--timeout <seconds>', 'per-request timeout', parseSeconds, 120)
    .option('--json', 'print one JSON object', false)
    .action(async (options: BenchOptions) => benchAction(options, io));
}
