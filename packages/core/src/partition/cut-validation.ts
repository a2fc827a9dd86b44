/**
 * Checks the cut indices given to a partitioner against a model's graph: integers in
 * `1..L-1`, strictly increasing, and no stage that computes nothing. Internal module.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';
import type { CutGraph } from '../model/cut-graph.js';
import { idleStageReason } from '../model/graph-analysis.js';
import type { ModelAnalysis } from '../model/types.js';

function describeValidCuts(valid: readonly number[]): string {
  if (valid.length === 0) return 'none';
  const ranges: string[] = [];
  let start = valid[0]!;
  let prev = start;
  for (const k of [...valid.slice(1), Number.NaN]) {
    if (k === prev + 1) {
      prev = k;
      continue;
    }
    ranges.push(start === prev ? `${start}` : `${start}-${prev}`);
    start = k;
    prev = k;
  }
  return ranges.join(', ');
}

/**
 * Throws PARTITION_INVALID_CUT naming the first bad cut and listing the valid positions.
 * @internal
 */
export function validateCuts(graph: CutGraph, analysis: ModelAnalysis, cuts: readonly number[]): void {
  const count = graph.layers.length;
  const validCuts = analysis.cuts.filter((c) => c.valid).map((c) => c.index);
  const allowed = `cuts must be integers in 1..${count - 1}, strictly increasing, each stage running at least one computing layer; valid cut positions for "${graph.name}": ${describeValidCuts(validCuts)}`;
  const fail = (cut: unknown, position: number, why: string) =>
    new DinferError(
      DinferErrorCode.PARTITION_INVALID_CUT,
      `invalid cut ${String(cut)} at position ${position}: ${why}; ${allowed}`,
      {
        details: { cut, position, cuts: [...cuts], layers: count, validCuts },
      },
    );
  if (!Array.isArray(cuts)) throw fail(cuts, 0, 'cuts must be an array');
  let previous = 0;
  cuts.forEach((cut, position) => {
    if (typeof cut !== 'number' || !Number.isInteger(cut)) throw fail(cut, position, 'not an integer');
    if (cut < 1 || cut > count - 1) throw fail(cut, position, `out of range 1..${count - 1}`);
    if (cut <= previous) throw fail(cut, position, `not greater than the previous cut ${previous}`);
    const idle = idleStageReason(graph, previous, cut);
    if (idle !== undefined) throw fail(cut, position, idle);
    previous = cut;
  });
  if (cuts.length > 0) {
    const idle = idleStageReason(graph, previous, count);
    if (idle !== undefined) throw fail(cuts[cuts.length - 1], cuts.length - 1, `the last ${idle}`);
  }
}
