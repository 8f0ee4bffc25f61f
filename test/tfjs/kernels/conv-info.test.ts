import { test } from 'node:test';
import assert from 'node:assert/strict';
import { convInfoOf } from '../../../src/tfjs/kernels/conv-info.js';

test("convInfoOf: TF's 'same' padding (stride 2 on an even size pads 0 before, 1 after), NHWC by default", () => {
  const s2 = convInfoOf([2, 8, 8, 3], [3, 3, 3, 16], { strides: [2, 2], pad: 'same', dataFormat: 'NHWC' });
  assert.deepEqual([s2.outHeight, s2.outWidth, s2.outChannels, s2.batchSize], [4, 4, 16, 2]);
  assert.deepEqual([s2.padInfo.top, s2.padInfo.bottom, s2.padInfo.left, s2.padInfo.right], [0, 1, 0, 1]);
  const s1 = convInfoOf([1, 7, 5, 2], [3, 3, 2, 4], { strides: 1, pad: 'same' } as never);
  assert.deepEqual([s1.outHeight, s1.outWidth, s1.padInfo.top, s1.padInfo.bottom], [7, 5, 1, 1]);
  assert.equal(s1.dataFormat, 'channelsLast');
});
