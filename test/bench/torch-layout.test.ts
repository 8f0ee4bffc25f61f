import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setupEngine } from '../../src/tfjs/backend.js';
import { buildColorizer, disposeColorizer } from '../../src/tfjs/network.js';
import { layerTable } from '../../src/network/table.js';
import { exportTorchWeights, flattenInputs, fromTorch, importTorchWeights, permute, toTorch } from '../../bench/torch-layout.js';
import { rand } from '../tfjs/reference.js';

test('permute: numpy transpose of a known 2x3 and of a rank-4 array', () => {
  const t = permute(Float32Array.of(1, 2, 3, 4, 5, 6), [2, 3], [1, 0]);
  assert.deepEqual(t.shape, [3, 2]);
  assert.deepEqual([...t.data], [1, 4, 2, 5, 3, 6]);
  const shape = [2, 3, 4, 5];
  const x = rand(120, 1);
  const p = permute(x, shape, [3, 2, 0, 1]);
  assert.deepEqual(p.shape, [5, 4, 2, 3]);
  for (let a = 0; a < 2; a++) for (let b = 0; b < 3; b++) for (let c = 0; c < 4; c++) for (let d = 0; d < 5; d++) {
    assert.equal(p.data[((d * 4 + c) * 2 + a) * 3 + b], x[((a * 3 + b) * 4 + c) * 5 + d]);
  }
  assert.throws(() => permute(x, shape, [0, 0, 1, 2]), RangeError);
});

test('conv and dense kernels: tfjs [kh, kw, in, out] -> torch [out, in, kh, kw], [in, out] -> [out, in], and back', () => {
  const conv = { name: 'c/kernel', shape: [3, 3, 2, 4], data: rand(72, 2) };
  const t = toTorch(conv);
  assert.deepEqual(t.shape, [4, 2, 3, 3]);
  // tfjs element (i, j, c, o) is torch element (o, c, i, j).
  const [i, j, c, o] = [2, 0, 1, 3];
  assert.equal(t.data[((o * 2 + c) * 3 + i) * 3 + j], conv.data[((i * 3 + j) * 2 + c) * 4 + o]);
  assert.deepEqual(fromTorch(t, conv.shape), conv);
  const dense = { name: 'd/kernel', shape: [3, 2], data: Float32Array.of(1, 2, 3, 4, 5, 6) };
  assert.deepEqual([...toTorch(dense).data], [1, 3, 5, 2, 4, 6]);
  assert.deepEqual(fromTorch(toTorch(dense), dense.shape), dense);
  const bias = { name: 'd/bias', shape: [2], data: Float32Array.of(7, 8) };
  assert.deepEqual(toTorch(bias), bias);
});

test('the dense layer after the flatten: torch weights on an NCHW flatten compute what tfjs computes on NHWC', () => {
  const [H, W, C, out] = [2, 3, 4, 5];
  const x = rand(H * W * C, 3); // one NHWC map, flattened as tfjs does: index (h * W + w) * C + c
  const kernel = { name: 'gl_fc1/kernel', shape: [H * W * C, out], data: rand(H * W * C * out, 4) };
  const tfjs = new Float64Array(out);
  for (let k = 0; k < H * W * C; k++) for (let u = 0; u < out; u++) tfjs[u]! += x[k]! * kernel.data[k * out + u]!;
  const xNchw = permute(x, [H, W, C], [2, 0, 1]).data; // torch's flatten of the same map: (c * H + h) * W + w
  const t = toTorch(kernel, [H, W, C]);
  assert.deepEqual(t.shape, [out, C * H * W]);
  for (let u = 0; u < out; u++) {
    let y = 0;
    for (let k = 0; k < C * H * W; k++) y += t.data[u * C * H * W + k]! * xNchw[k]!;
    assert.ok(Math.abs(y - tfjs[u]!) < 1e-5, `unit ${u}: ${y} vs ${tfjs[u]}`);
  }
  assert.deepEqual(fromTorch(t, kernel.shape, [H, W, C]), kernel);
  assert.throws(() => toTorch({ ...kernel, shape: [7, out] }, [H, W, C]), RangeError);
});

test('flattenInputs: gl_fc1 sees the global convolutions output (the demo: 64 px -> 2x2x64)', () => {
  const m = flattenInputs(layerTable({ inputSize: 64, width: 0.125, numClasses: 0 }));
  assert.deepEqual([...m.entries()], [['gl_fc1', [2, 2, 64]]]);
  assert.deepEqual(flattenInputs(layerTable({ inputSize: 224, width: 1, numClasses: 205 })).get('gl_fc1'), [7, 7, 512]);
});

test('exportTorchWeights / importTorchWeights: a round trip reproduces every weight and the predictions', async () => {
  await setupEngine({ backend: 'wasm' });
  const cfg = { inputSize: 32, width: 0.125, numClasses: 3 };
  const a = buildColorizer(cfg, { seed: 5 });
  const b = buildColorizer(cfg, { seed: 6 });
  const before = tf.memory().numTensors;
  const exported = await exportTorchWeights(a.infer, a.table);
  assert.equal(exported.length, a.infer.weights.length, 'every weight, batch-norm moving statistics included');
  assert.ok(exported.some((w) => w.name === 'll_conv1_bn/moving_variance'));
  assert.deepEqual(exported.find((w) => w.name === 'll_conv2/kernel')!.shape, [16, 8, 3, 3]);
  importTorchWeights(b.infer, b.table, exported);
  assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
  const wa = a.infer.getWeights();
  const wb = b.infer.getWeights();
  for (let i = 0; i < wa.length; i++) assert.deepEqual(await wb[i]!.data(), await wa[i]!.data(), a.infer.weights[i]!.originalName);
  const L = tf.tensor4d(rand(2 * 32 * 32, 7, 0.5).map((v) => v + 0.5), [2, 32, 32, 1]);
  const pa = a.train.predict(L) as tf.Tensor[];
  const pb = b.train.predict(L) as tf.Tensor[];
  assert.deepEqual(await pb[0]!.data(), await pa[0]!.data());
  assert.throws(() => importTorchWeights(b.infer, b.table, exported.slice(1)), /missing/);
  tf.dispose([L, ...pa, ...pb]);
  disposeColorizer(a);
  disposeColorizer(b);
});
