/**
 * The order TF.js gives `model.layers` of a functional model (the `Container` constructor of
 * tfjs-layers, itself Keras's `_map_graph_network`), computed from a graph description: a
 * depth-first walk back from the outputs numbers the layers and the nodes; a node's depth is
 * one more than the deepest node reading it; layers go by decreasing depth (a shared layer at
 * its deepest node), ties in walk order. A cut index means a position in this order, so the
 * topology partitioner must use it to agree with a model TF.js builds from the same
 * `model.json`. Internal module.
 *
 * @module
 */
import { DinferError, DinferErrorCode } from '../errors.js';

/** A node (one layer call) of the graph being ordered. */
export interface OrderedNode {
  readonly layer: string;
  /** The nodes whose outputs it reads, in input order. */
  readonly inbound: readonly { readonly layer: string; readonly nodeIndex: number }[];
}

/**
 * Layer names in `model.layers` order.
 *
 * @param outputs The model's output nodes, in output order.
 * @param nodeOf The node `nodeIndex` of `layer`; undefined when it does not exist.
 * @throws DinferError PARTITION_UNSUPPORTED for a cycle or a reference to a missing node.
 */
export function functionalLayerOrder(
  outputs: readonly { readonly layer: string; readonly nodeIndex: number }[],
  nodeOf: (layer: string, nodeIndex: number) => OrderedNode | undefined,
  where: string,
): string[] {
  const layerIndices = new Map<string, number>();
  const finished = new Set<string>();
  const inProgress = new Set<string>();
  const walkOrder: { key: string; node: OrderedNode }[] = [];
  const visit = (layer: string, nodeIndex: number): void => {
    const key = `${layer}\u0000${nodeIndex}`;
    if (inProgress.has(key)) {
      throw new DinferError(
        DinferErrorCode.PARTITION_UNSUPPORTED,
        `${where}: layer "${layer}" is part of a cycle`,
        {
          details: { layer },
        },
      );
    }
    if (finished.has(key)) return;
    const node = nodeOf(layer, nodeIndex);
    if (node === undefined) {
      throw new DinferError(
        DinferErrorCode.MODEL_CORRUPT,
        `${where}: a call reads node ${nodeIndex} of layer "${layer}", which does not exist`,
        { details: { layer, nodeIndex } },
      );
    }
    if (!layerIndices.has(layer)) layerIndices.set(layer, layerIndices.size);
    inProgress.add(key);
    for (const input of node.inbound) visit(input.layer, input.nodeIndex);
    inProgress.delete(key);
    finished.add(key);
    walkOrder.push({ key, node });
  };
  for (const output of outputs) visit(output.layer, output.nodeIndex);

  const nodeDepth = new Map<string, number>();
  const layerDepth = new Map<string, number>();
  for (let i = walkOrder.length - 1; i >= 0; i--) {
    const { key, node } = walkOrder[i]!;
    const depth = Math.max(nodeDepth.get(key) ?? 0, layerDepth.get(node.layer) ?? 0);
    layerDepth.set(node.layer, depth);
    nodeDepth.set(key, depth);
    for (const input of node.inbound) {
      const inputKey = `${input.layer}\u0000${input.nodeIndex}`;
      nodeDepth.set(inputKey, Math.max(depth + 1, nodeDepth.get(inputKey) ?? 0));
    }
  }
  return [...layerDepth.keys()].sort(
    (a, b) => layerDepth.get(b)! - layerDepth.get(a)! || layerIndices.get(a)! - layerIndices.get(b)!,
  );
}
