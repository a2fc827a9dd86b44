/**
 * `pnpm bench:plan`: how well the planner balances ResNet50 (224x224) on the active backend.
 *
 * Profiles every layer, plans 2 and 4 stages, then splits the model at the planned cuts and
 * MEASURES each stage on its real inputs (median of several runs, interleaved with whole-model
 * runs so that machine noise hits both alike). Prints planned vs measured ms per stage and the
 * balance ratio `slowest measured stage / (measured whole-model time / N)`: 1.0 is a perfect
 * split. Targets: <= 1.10 for 2 stages, <= 1.25 for 4.
 *
 * Options: `--runs N` timed runs per measurement (default 9), `--profile-runs N` (default 5),
 * `--stages 2,4`, `--clock cpu|wall` (default cpu: the process' CPU time, which on a shared
 * machine is not inflated by other processes; wasm runs on one thread, so CPU time is its
 * compute time. Wall-clock figures are printed too).
 *
 * @module
 */

import {
  analyzeModel,
  clockReader,
  describeBackend,
  type PlanResult,
  type ProfileClock,
  partitionModel,
  planCuts,
  profileLayers,
} from '@dinfer/core';
import { resnet50 } from '@dinfer/core/models';
import { initBackend } from '@dinfer/core/node';
import * as tf from '@tensorflow/tfjs';
import { Command, InvalidArgumentError } from 'commander';

/** Balance targets by stage count. */
const TARGETS: Readonly<Record<number, number>> = { 2: 1.1, 4: 1.25 };

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const cpuClock = clockReader('cpu');

/** One timing on both clocks, in ms. */
interface Timing {
  readonly wall: number;
  readonly cpu: number;
}

/** Runs `model` on `inputs`, reads every output back (as a pipeline stage must), times it. */
function timePredict(model: tf.LayersModel, inputs: tf.Tensor[]): Timing {
  const wall = performance.now();
  const cpu = cpuClock();
  const result = model.predict(inputs.length === 1 ? inputs[0]! : inputs);
  const outputs = Array.isArray(result) ? result : [result];
  for (const out of outputs) out.dataSync();
  const timing = { wall: performance.now() - wall, cpu: cpuClock() - cpu };
  for (const out of outputs) out.dispose();
  return timing;
}

function medianTiming(timings: readonly Timing[]): Timing {
  return { wall: median(timings.map((t) => t.wall)), cpu: median(timings.map((t) => t.cpu)) };
}

interface StageMeasurement {
  readonly plannedMs: number;
  readonly measured: Timing;
}

interface Measured {
  readonly whole: Timing;
  readonly stages: StageMeasurement[];
}

/** Splits at the plan's cuts and measures each stage and the whole model, interleaved. */
function measurePlan(model: tf.LayersModel, plan: PlanResult, input: tf.Tensor, runs: number): Measured {
  const partition = partitionModel(model, plan.cuts);
  // Real inputs of every stage: run the chain once and keep each stage's inputs.
  const values = new Map<string, tf.Tensor>();
  partition.inputs.forEach((spec) => {
    values.set(spec.name, input);
  });
  const stageInputs: tf.Tensor[][] = [];
  const produced: tf.Tensor[] = [];
  for (const stage of partition.stages) {
    const args = stage.inputs.map((spec) => values.get(spec.name)!);
    stageInputs.push(args);
    const result = stage.model.predict(args.length === 1 ? args[0]! : args);
    const outputs = Array.isArray(result) ? result : [result];
    stage.outputs.forEach((spec, i) => {
      values.set(spec.name, outputs[i]!);
    });
    produced.push(...outputs);
  }
  // Warm every stage model once (first calls allocate and compile).
  partition.stages.forEach((stage, s) => {
    timePredict(stage.model, stageInputs[s]!);
  });
  const whole: Timing[] = [];
  const perStage: Timing[][] = partition.stages.map(() => []);
  for (let r = 0; r < runs; r++) {
    whole.push(timePredict(model, [input]));
    partition.stages.forEach((stage, s) => {
      perStage[s]!.push(timePredict(stage.model, stageInputs[s]!));
    });
  }
  for (const t of new Set(produced)) if (t !== input) t.dispose();
  return {
    whole: medianTiming(whole),
    stages: plan.stages.map((s, i) => ({ plannedMs: s.totalMs, measured: medianTiming(perStage[i]!) })),
  };
}

function parseStages(value: string): number[] {
  const stages = value.split(',').map(Number);
  if (stages.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new InvalidArgumentError(`expected stage counts like 2,4, got "${value}"`);
  }
  return stages;
}

function parseClock(value: string): ProfileClock {
  if (value !== 'cpu' && value !== 'wall')
    throw new InvalidArgumentError(`expected cpu or wall, got "${value}"`);
  return value;
}

async function main(): Promise<void> {
  const options = new Command('bench:plan')
    .option('--runs <n>', 'timed runs per measurement', (v) => Number.parseInt(v, 10), 9)
    .option('--profile-runs <n>', 'profiling runs per layer (median)', (v) => Number.parseInt(v, 10), 5)
    .option('--stages <list>', 'stage counts to plan', parseStages, [2, 4])
    .option('--clock <cpu|wall>', 'clock that profiles and judges the targets', parseClock, 'cpu')
    .parse(process.argv)
    .opts<{ runs: number; profileRuns: number; stages: number[]; clock: ProfileClock }>();
  const clock = options.clock;

  const backend = await initBackend();
  console.log(describeBackend(backend));
  console.log(
    `clock: ${clock} (${clock === 'cpu' ? 'process CPU time: immune to other processes on a shared machine; wall-clock figures shown too' : 'elapsed time'})`,
  );
  let start = performance.now();
  const model = resnet50();
  const analysis = analyzeModel(model);
  console.log(
    `model: ${analysis.name} 224x224, ${analysis.layers.length} layers, ${analysis.totalParams.toLocaleString('en-US')} params (built in ${((performance.now() - start) / 1000).toFixed(1)} s)`,
  );
  const input = tf.randomUniform([1, 224, 224, 3], -1, 1);
  for (let i = 0; i < 2; i++) timePredict(model, [input]);

  start = performance.now();
  const costs = await profileLayers(model, { runs: options.profileRuns, warmup: 1, clock });
  const profiledSum = costs.reduce((a, b) => a + b, 0);
  console.log(
    `profiled ${costs.length} layers (${options.profileRuns} runs, median) in ${((performance.now() - start) / 1000).toFixed(1)} s: sum ${profiledSum.toFixed(1)} ms`,
  );

  let allMet = true;
  for (const n of options.stages) {
    const plan = planCuts(analysis, { stages: n, layerCostsMs: costs });
    const measured = measurePlan(model, plan, input, options.runs);
    const ratioOf = (key: keyof Timing): number =>
      Math.max(...measured.stages.map((s) => s.measured[key])) / (measured.whole[key] / n);
    const ratio = ratioOf(clock);
    const target = TARGETS[n];
    const met = target === undefined || ratio <= target;
    allMet &&= met;
    const cutNames = plan.cuts.map((k) => `${k} (after ${analysis.layers[k - 1]!.name})`);
    console.log(`\n${n} stages: cuts ${cutNames.join(', ') || 'none'}`);
    console.log('stage  layers        planned ms  measured ms (cpu)  measured ms (wall)  measured/planned');
    plan.stages.forEach((stage, i) => {
      const m = measured.stages[i]!;
      const range = `[${stage.layers[0]}, ${stage.layers[1]})`;
      console.log(
        [
          String(i).padEnd(5),
          range.padEnd(12),
          m.plannedMs.toFixed(1).padStart(10),
          m.measured.cpu.toFixed(1).padStart(17),
          m.measured.wall.toFixed(1).padStart(18),
          (m.measured[clock] / m.plannedMs).toFixed(2).padStart(16),
        ].join('  '),
      );
    });
    console.log(
      `whole model: ${measured.whole.cpu.toFixed(1)} ms cpu, ${measured.whole.wall.toFixed(1)} ms wall; ` +
        `balance ratio slowest / (whole / ${n}): ${ratioOf('cpu').toFixed(3)} cpu, ${ratioOf('wall').toFixed(3)} wall`,
    );
    console.log(
      `${n} stages: ratio ${ratio.toFixed(3)} (${clock}) vs target <= ${target?.toFixed(2) ?? 'none'}: ${met ? 'TARGET MET' : 'TARGET MISSED'}`,
    );
  }
  input.dispose();
  model.dispose();
  console.log(`\n${allMet ? 'all targets met' : 'some targets missed'}`);
}

await main();
