/**
 * The naming scheme for tensors that cross stage boundaries.
 *
 * - A model input is named as in `model.inputNames` (its `InputLayer`'s name).
 * - A model output is named as in `model.outputNames` (its producing layer's name).
 * - Any other tensor is named `<layerName>/<nodeIndex>:<outputIndex>`: the layer that produced
 *   it, the index of the producing node in `layer.inboundNodes` of the ORIGINAL model (a shared
 *   layer applied twice has nodes 0 and 1; a nested model's own node is 0, so its first use
 *   inside an outer model is node 1), and the index of the tensor among that node's outputs.
 *   The name is stable across save/load because TF.js rebuilds nodes in the saved order.
 *
 * Keras layer (and tensor) names may only contain `[A-Za-z0-9._/-]`, so stage models name
 * their `InputLayer`s with {@link kerasSafeName}; the scheme name is what signatures, the
 * manifest and the wire use, and the stage model's input order maps one to the other.
 *
 * @module
 */

/** Name of an intermediate tensor: `<layerName>/<nodeIndex>:<outputIndex>`. */
export function intermediateTensorName(layerName: string, nodeIndex: number, outputIndex: number): string {
  return `${layerName}/${nodeIndex}:${outputIndex}`;
}

/**
 * Parses an intermediate tensor name back into its parts, or returns `undefined` when `name`
 * does not follow `<layerName>/<nodeIndex>:<outputIndex>`.
 */
export function parseIntermediateTensorName(
  name: string,
): { layerName: string; nodeIndex: number; outputIndex: number } | undefined {
  const match = /^(.+)\/(\d+):(\d+)$/.exec(name);
  if (!match) return undefined;
  return { layerName: match[1]!, nodeIndex: Number(match[2]), outputIndex: Number(match[3]) };
}

/**
 * Turns any tensor name into a valid Keras layer name (`^[A-Za-z0-9][A-Za-z0-9._-]*$`):
 * `/` becomes `__`, `:` becomes `_`, anything else invalid becomes `_`, and a leading
 * non-alphanumeric character gets an `x` prefix.
 */
export function kerasSafeName(name: string): string {
  let safe = name
    .replaceAll('/', '__')
    .replaceAll(':', '_')
    .replace(/[^A-Za-z0-9._-]/g, '_');
  if (!/^[A-Za-z0-9]/.test(safe)) safe = `x${safe}`;
  return safe;
}
