import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DinferErrorCode, isDinferError } from '@dinfer/core';
import type { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliIo } from '../src/cli/common.js';
import { masterCommand } from '../src/cli/master.js';
import { runCli } from '../src/cli/program.js';
import { upCommand } from '../src/cli/up.js';
import { workerCommand } from '../src/cli/worker.js';
import {
  type ConfigBinding,
  environmentVariables,
  MASTER_BINDINGS,
  UP_BINDINGS,
  WORKER_BINDINGS,
} from '../src/config/bindings.js';
import { loadConfigFile, parseConfig } from '../src/config/load-config.js';
import {
  preprocessSettings,
  type ResolvedOptions,
  readEnvValue,
  resolveCommandOptions,
} from '../src/config/resolve.js';

let dir: string;
const silent: CliIo = { out: () => {}, err: () => {} };

async function write(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

/** Parses `args` with a real command definition and returns what the config layer resolves. */
async function resolve(
  make: (io: CliIo) => Command,
  bindings: readonly ConfigBinding[],
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<ResolvedOptions> {
  const command = make(silent).exitOverride();
  let resolved: ResolvedOptions | undefined;
  command.action(async (_flags: unknown, self: Command) => {
    resolved = await resolveCommandOptions(self, bindings, env);
  });
  await command.parseAsync(args, { from: 'user' });
  if (resolved === undefined) throw new Error('the action did not run');
  return resolved;
}

async function configError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (isDinferError(error, DinferErrorCode.CONFIG_INVALID)) return error.message;
    throw error;
  }
  throw new Error('expected a CONFIG_INVALID error');
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'dinfer-config-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('config file', () => {
  it('reads YAML and JSON by extension into the same document, byte counts converted', async () => {
    const yaml = await write(
      'a.yaml',
      [
        'backend: wasm',
        'logLevel: info',
        'master:',
        '  model: models/m/model.json',
        '  cuts: [3, 7]',
        '  http: { port: 9001, bodyLimitBytes: 2MiB }',
        '  cluster: { transport: socketio, scheduler: load, startDegraded: true }',
        '  batching: { maxBatchSize: 8, maxDelayMs: 0, maxQueue: 64 }',
        '  cache: { enabled: true, maxBytes: 64MB }',
        '  preprocess: { scale: 0.5, mean: [0.4, 0.5, 0.6], std: 0.25 }',
        'worker:',
        '  master: 10.0.0.5:7070',
        '  cacheDir: ./shards',
        '  memoryBytes: 1.5GiB',
      ].join('\n'),
    );
    const json = await write(
      'a.json',
      JSON.stringify({
        backend: 'wasm',
        logLevel: 'info',
        master: {
          model: 'models/m/model.json',
          cuts: [3, 7],
          http: { port: 9001, bodyLimitBytes: 2 * 2 ** 20 },
          cluster: { transport: 'socketio', scheduler: 'load', startDegraded: true },
          batching: { maxBatchSize: 8, maxDelayMs: 0, maxQueue: 64 },
          cache: { enabled: true, maxBytes: 64e6 },
          preprocess: { scale: 0.5, mean: [0.4, 0.5, 0.6], std: [0.25] },
        },
        worker: { master: '10.0.0.5:7070', cacheDir: './shards', memoryBytes: 1.5 * 2 ** 30 },
      }),
    );
    const fromYaml = (await loadConfigFile(yaml)).config;
    const fromJson = (await loadConfigFile(json)).config;
    expect(fromYaml).toEqual(fromJson);
    expect(fromYaml.master?.http?.bodyLimitBytes).toBe(2_097_152);
    expect(fromYaml.master?.cache?.maxBytes).toBe(64_000_000);
    expect(fromYaml.worker?.memoryBytes).toBe(1_610_612_736);
    expect(fromYaml.master?.preprocess?.std).toEqual([0.25]);
    // Relative paths are relative to the file's folder.
    expect(fromYaml.master?.model).toBe(path.join(dir, 'models/m/model.json'));
    expect(fromYaml.worker?.cacheDir).toBe(path.join(dir, 'shards'));
  });

  it('names the file, the path, what was expected and what was given', async () => {
    const file = await write('bad.yaml', 'master:\n  http:\n    port: "80a"\n');
    const message = await configError(loadConfigFile(file));
    expect(message).toBe(`${file}: master.http.port: expected an integer between 0 and 65535, got "80a"`);

    const many = () =>
      parseConfig(
        {
          backend: 'gpu',
          master: {
            stages: 0,
            cuts: [3, -1],
            cluster: { transport: 'udp' },
            cache: { maxBytes: '12 parsecs' },
          },
          worker: { queueLimit: 2.5 },
        },
        'config.yaml',
      );
    const lines = (await configError(Promise.resolve().then(many))).split('\n').map((l) => l.trim());
    expect(lines).toEqual(
      expect.arrayContaining([
        'config.yaml: backend: expected one of tensorflow, wasm, cpu, got "gpu"',
        'config.yaml: master.stages: expected a positive integer, got 0',
        'config.yaml: master.cuts[1]: expected a positive integer, got -1',
        'config.yaml: master.cluster.transport: expected one of tcp, socketio, got "udp"',
        'config.yaml: master.cache.maxBytes: expected a byte count like 50000000, "50MB" or "1.5GiB", got "12 parsecs"',
        'config.yaml: worker.queueLimit: expected a positive integer, got 2.5',
      ]),
    );
    expect(lines).toHaveLength(6);
  });

  it('refuses unknown keys, suggesting the closest allowed one', async () => {
    const message = await configError(
      Promise.resolve().then(() => parseConfig({ master: { http: { prot: 80 } }, wrker: {} }, 'c.json')),
    );
    expect(message).toContain(
      'c.json: master.http.prot: unknown key (did you mean "port"?); expected one of host, port, bodyLimitBytes, requestTimeoutMs',
    );
    expect(message).toContain('c.json: wrker: unknown key (did you mean "worker"?)');
  });

  it('reports syntax errors, unknown extensions and missing files as CONFIG_INVALID', async () => {
    const yaml = await write('broken.yaml', 'master:\n  http: { port: 80\n');
    expect(await configError(loadConfigFile(yaml))).toMatch(
      /broken\.yaml: not valid YAML: line \d+, column \d+/,
    );
    const dup = await write('dup.yaml', 'backend: wasm\nbackend: cpu\n');
    expect(await configError(loadConfigFile(dup))).toMatch(
      /dup\.yaml: not valid YAML: .*[Mm]ap keys must be unique/,
    );
    const json = await write('broken.json', '{"master": {');
    expect(await configError(loadConfigFile(json))).toMatch(/broken\.json: not valid JSON/);
    const toml = await write('c.toml', 'a = 1');
    expect(await configError(loadConfigFile(toml))).toContain('unknown config file type ".toml"');
    expect(await configError(loadConfigFile(path.join(dir, 'missing.yaml')))).toContain(
      'config file not found',
    );
    // An empty YAML file is an empty config.
    expect((await loadConfigFile(await write('empty.yaml', ''))).config).toEqual({});
  });
});

describe('precedence: flags > DINFER_* > file > defaults', () => {
  it('takes each setting from the highest layer that has it', async () => {
    const file = await write(
      'master.yaml',
      [
        'logLevel: info',
        'master:',
        '  model: /m/model.json',
        '  name: from-file',
        '  http: { host: 127.0.0.1, port: 9001, requestTimeoutMs: 5000 }',
        '  cluster: { port: 7100, token: file-token, scheduler: load, heartbeatTimeoutMs: 900 }',
      ].join('\n'),
    );
    const resolved = await resolve(
      masterCommand,
      MASTER_BINDINGS,
      ['--config', file, '--http-port', '9003'],
      {
        DINFER_HTTP_PORT: '9002',
        DINFER_CLUSTER_PORT: '7200',
        DINFER_TOKEN: 'env-token',
      },
    );
    const o = resolved.options;
    expect(o.httpPort).toBe(9003); // flag beats env and file
    expect(resolved.sources.httpPort).toBe('flag');
    expect(o.clusterPort).toBe(7200); // env beats file
    expect(o.token).toBe('env-token');
    expect(resolved.sources.clusterPort).toBe('env');
    expect(o.httpHost).toBe('127.0.0.1'); // file beats the option default 0.0.0.0
    expect(o.scheduler).toBe('load'); // file beats the option default round-robin
    expect(o.heartbeatTimeout).toBe(900);
    expect(o.requestTimeout).toBe(5000);
    expect(o.name).toBe('from-file');
    expect(o.logLevel).toBe('info');
    expect(resolved.sources.name).toBe('file');
    expect(o.transport).toBe('tcp'); // nowhere given: the option default
    expect(resolved.sources.transport).toBe('default');
    expect(o.profile).toBe(true);
  });

  it('finds the file through DINFER_CONFIG, and an explicit default-valued flag still wins', async () => {
    const file = await write('w.json', JSON.stringify({ worker: { master: 'h:1', transport: 'socketio' } }));
    const resolved = await resolve(workerCommand, WORKER_BINDINGS, ['--transport', 'tcp'], {
      DINFER_CONFIG: file,
      DINFER_MAX_MEMORY: '2GB',
      DINFER_QUEUE_LIMIT: '4',
    });
    expect(resolved.configFile).toBe(file);
    expect(resolved.options.master).toBe('h:1');
    expect(resolved.options.transport).toBe('tcp');
    expect(resolved.options.maxMemory).toBe(2e9);
    expect(resolved.options.queueLimit).toBe(4);
  });

  it('reads booleans and lists from the environment, and negated flags beat the file', async () => {
    const file = await write('p.yaml', 'master:\n  profile: true\n  cluster: { startDegraded: false }\n');
    const resolved = await resolve(masterCommand, MASTER_BINDINGS, ['--config', file, '--no-profile'], {
      DINFER_START_DEGRADED: 'yes',
      DINFER_CUTS: '4, 9',
      DINFER_MODEL: '/x/model.json',
    });
    expect(resolved.options.profile).toBe(false);
    expect(resolved.options.degraded).toBe(true);
    expect(resolved.options.cuts).toEqual([4, 9]);
    expect(readEnvValue('nope', 'boolean')).toBe('nope');
    expect(readEnvValue(' WASM ', 'name')).toBe('wasm');
    expect(preprocessSettings(resolved.options)).toBeUndefined();
  });

  it('carries batching and result cache settings, flags first', async () => {
    const file = await write(
      'serve.yaml',
      'master:\n  batching: { maxBatchSize: 16, maxDelayMs: 2.5, maxQueue: 99 }\n  cache: { enabled: false, maxBytes: 1MiB }\n',
    );
    const resolved = await resolve(upCommand, UP_BINDINGS, ['--config', file, '--max-batch-delay-ms', '7'], {
      DINFER_MAX_QUEUE: '12',
    });
    expect(resolved.options.maxBatchSize).toBe(16);
    expect(resolved.options.maxBatchDelayMs).toBe(7);
    expect(resolved.options.maxQueue).toBe(12);
    expect(resolved.options.cache).toBe(false);
    expect(resolved.options.cacheBytes).toBe(2 ** 20);
  });

  it('assembles the image preprocessing from the file and the environment', async () => {
    const file = await write(
      'pre.yaml',
      'master:\n  preprocess: { scale: 0.5, std: [0.2, 0.3, 0.4], fit: cover }\n',
    );
    const resolved = await resolve(masterCommand, MASTER_BINDINGS, ['--config', file, '--model', 'm'], {
      DINFER_PREPROCESS_MEAN: '0.485,0.456,0.406',
    });
    expect(preprocessSettings(resolved.options)).toEqual({
      scale: 0.5,
      mean: [0.485, 0.456, 0.406],
      std: [0.2, 0.3, 0.4],
      fit: 'cover',
    });
    expect(readEnvValue('1,x', 'numbers')).toEqual([1, 'x']);
  });

  it('names the variable or the flag that holds a bad value', async () => {
    expect(
      await configError(
        resolve(masterCommand, MASTER_BINDINGS, ['--model', 'm'], { DINFER_HTTP_PORT: '80a' }),
      ),
    ).toBe('DINFER_HTTP_PORT: expected an integer between 0 and 65535, got "80a"');
    expect(
      await configError(resolve(masterCommand, MASTER_BINDINGS, ['--model', 'm'], { DINFER_CUTS: '3,x' })),
    ).toBe('DINFER_CUTS ([1]): expected a positive integer, got "x"');
    expect(await configError(resolve(masterCommand, MASTER_BINDINGS, ['--http-port', '80a']))).toBe(
      '--http-port: expected an integer between 0 and 65535, got NaN',
    );
    expect(await configError(resolve(upCommand, UP_BINDINGS, [], { DINFER_BACKEND: 'gpu' }))).toBe(
      'DINFER_BACKEND: expected one of tensorflow, wasm, cpu, got "gpu"',
    );
  });

  it('binds only options the commands declare, and documents every variable once', () => {
    const optionNames = (command: Command) => new Set(command.options.map((o) => o.attributeName()));
    const check = (command: Command, bindings: readonly ConfigBinding[]) => {
      const names = optionNames(command);
      expect(names.has('config')).toBe(true);
      return bindings.filter((b) => !names.has(b.option)).map((b) => b.option);
    };
    // Settings without a flag are set by the file or the environment only.
    const configOnly = ['preprocessScale', 'preprocessMean', 'preprocessStd', 'preprocessFit'];
    expect(check(masterCommand(silent), MASTER_BINDINGS).filter((o) => !configOnly.includes(o))).toEqual([]);
    expect(check(upCommand(silent), UP_BINDINGS).filter((o) => !configOnly.includes(o))).toEqual([]);
    expect(check(workerCommand(silent), WORKER_BINDINGS)).toEqual([]);
    const vars = environmentVariables().map((v) => v.env);
    expect(new Set(vars).size).toBe(vars.length);
    expect(vars).toEqual(
      expect.arrayContaining(['DINFER_CONFIG', 'DINFER_HTTP_PORT', 'DINFER_TOKEN', 'DINFER_MASTER']),
    );
  });
});

describe('dinfer master|worker|up --config', () => {
  const run = async (args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(['node', 'dinfer', ...args], {
      out: (t) => out.push(t),
      err: (t) => err.push(t),
    });
    return { code, stdout: out.join(''), stderr: err.join('') };
  };

  it('exits 1 with DINFER_ERR_CONFIG_INVALID before starting anything', async () => {
    const file = await write('config.yaml', 'master:\n  http:\n    port: "80a"\n');
    for (const command of ['master', 'up', 'worker']) {
      const result = await run([command, '--config', file]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `error: DINFER_ERR_CONFIG_INVALID: ${file}: master.http.port: expected an integer between 0 and 65535, got "80a"`,
      );
    }
  });

  it('says where a required setting can come from', async () => {
    const empty = await write('empty.json', '{}');
    const master = await run(['master', '--config', empty]);
    expect(master.code).toBe(1);
    expect(master.stderr).toContain(
      'error: DINFER_ERR_CONFIG_INVALID: no model given: pass --model, set DINFER_MODEL or set master.model in the config file',
    );
    const worker = await run(['worker', '--config', empty]);
    expect(worker.stderr).toContain('no master given: pass --master, set DINFER_MASTER or set worker.master');
  });
});
