import { mobilenetV2 } from '@dinfer/core/models';
import { partitionSuite } from './partition-suite.js';

partitionSuite({
  name: 'MobileNetV2',
  build: (size) => mobilenetV2({ inputShape: [size, size, 3], seed: 3 }),
  // Every cut between two computing layers: 155 layers after the input.
  minValidCuts: 150,
  // Cuts inside a block with a residual Add carry the block input too (10 such blocks).
  minTwoTensorCuts: 50,
  cutSets: (after) => [
    [after('block_5_add'), after('block_12_add')],
    [after('block_2_expand_relu'), after('block_6_pad'), after('block_15_depthwise')],
    [after('Conv1_relu'), after('block_4_project_BN'), after('block_11_add'), after('Conv_1_bn')],
  ],
  boundary: { layer: 'block_5_add', channels: 32 },
});
