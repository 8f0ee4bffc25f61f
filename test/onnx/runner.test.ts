import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { exportOnnx } from '../../src/onnx/export.js';
import { loadOnnxRunner, onnxRunner, scaleFromMetadata } from '../../src/onnx/runner.js';
import { loadOnnxColorizer } from '../../src/onnx/session.js';
import { setupTfjs } from '../../src/tfjs/backend.js';
import { exportSourceOf, type Colorizer } from '../../src/tfjs/network.js';
import { pattern, trainedLike } from './helpers.js';

let net: Colorizer;

before(async () => {
  await setupTfjs({ backend: 'cpu' });
  net = trainedLike({ inputSize: 32, width: 0.125, numClasses: 4 }, 5);
});

test('scaleFromMetadata reads the export\'s JSON and ignores anything else', () => {
  assert.deepEqual(scaleFromMetadata({ 'colorpipe.training_scale': '{"shortSide":256,"crop":224}' }), { shortSide: 256, crop: 224 });
  assert.equal(scaleFromMetadata({}), undefined);
  assert.equal(scaleFromMetadata({ 'colorpipe.training_scale': 'short side 256' }), undefined);
});

test('the ONNX runner gives the session\'s ab; a shared global input equals it repeated per image', async (t) => {
  const session = await loadOnnxColorizer(exportOnnx(await exportSourceOf(net)), { device: 'cpu', threads: 1 });
  t.after(() => session.release());
  const r = onnxRunner(session, { owned: false });
  assert.equal(r.globalSize, 32);
  assert.equal(r.describe, session.describe);
  const local = pattern(2 * 16 * 24, 1);
  const one = pattern(32 * 32, 2);
  const both = new Float32Array(2 * 32 * 32);
  both.set(one, 0);
  both.set(one, 32 * 32);
  const want = await session.predict({ local, global: both, batch: 2, height: 16, width: 24 });
  const perImage = await r.run(local, both, { batch: 2, height: 16, width: 24, sharedGlobal: false });
  const shared = await r.run(local, one, { batch: 2, height: 16, width: 24, sharedGlobal: true });
  assert.deepEqual([perImage.abHeight, perImage.abWidth], [8, 12]);
  assert.deepEqual(perImage.ab, want.ab);
  assert.deepEqual(shared.ab, want.ab);
  // Not owned: release leaves the session to its owner.
  await r.release();
  await session.predict({ local, global: one, batch: 2, height: 16, width: 24 });
});

test('a loaded ONNX runner reads the training scale from the file and frees its session on release', async () => {
  const r = await loadOnnxRunner(exportOnnx(await exportSourceOf(net), { trainingScale: { shortSide: 40, crop: 32 } }), { device: 'cpu', threads: 1 });
  assert.deepEqual(r.trainingScale, { shortSide: 40, crop: 32 });
  await r.release();
  await assert.rejects(r.run(new Float32Array(64), new Float32Array(32 * 32), { batch: 1, height: 8, width: 8, sharedGlobal: false }));
});
