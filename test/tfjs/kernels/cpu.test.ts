import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setupTfjs } from '../../../src/tfjs/backend.js';

test('the gradient of nearest x2 upsampling on the cpu backend is the sum over each 2x2 block (tfjs 4.22\'s is not)', async () => {
  await setupTfjs({ backend: 'cpu' });
  let s = 7;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const [N, H, W, C] = [2, 8, 8, 8];
  const x = tf.tensor4d(Float32Array.from({ length: N * H * W * C }, rnd), [N, H, W, C]);
  const dyv = Float32Array.from({ length: N * 4 * H * W * C }, rnd);
  const dy = tf.tensor4d(dyv, [N, 2 * H, 2 * W, C]);
  const g = tf.grad((v) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(v as tf.Tensor4D, [2 * H, 2 * W]), dy)))(x).dataSync();
  let worst = 0;
  for (let n = 0; n < N; n++) for (let i = 0; i < H; i++) for (let j = 0; j < W; j++) for (let c = 0; c < C; c++) {
    let e = 0;
    for (const [a, b] of [[0, 0], [0, 1], [1, 0], [1, 1]] as const) e += dyv[((n * 2 * H + 2 * i + a) * 2 * W + 2 * j + b) * C + c]!;
    worst = Math.max(worst, Math.abs(e - g[((n * H + i) * W + j) * C + c]!));
  }
  assert.ok(worst < 1e-5, `off by ${worst}`);
  tf.dispose([x, dy]);
});
