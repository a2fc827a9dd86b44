import { resnet50 } from '@dinfer/core/models';
import { partitionSuite } from './partition-suite.js';

partitionSuite({
  name: 'ResNet50',
  build: (size) => resnet50({ inputShape: [size, size, 3], seed: 3 }),
  // Every cut between two computing layers: 176 layers after the input, ~174 positions.
  minValidCuts: 170,
  // Cuts inside a residual block carry the shortcut too.
  minTwoTensorCuts: 50,
  cutSets: (after) => [
    [after('conv3_block4_out'), after('conv4_block6_out')],
    [after('conv2_block2_1_relu'), after('conv3_block1_add'), after('conv5_block1_2_conv')],
    [
      after('pool1_pool'),
      after('conv3_block2_out'),
      after('conv4_block3_2_bn'),
      after('conv5_block3_3_conv'),
    ],
  ],
  boundary: { layer: 'conv3_block4_out', channels: 512 },
});
