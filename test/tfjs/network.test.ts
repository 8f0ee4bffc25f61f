import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { setupTfjs } from '../../src/tfjs/backend.js';
import {
  buildColorizer,
  colorizerFromInfer,
  disposeColorizer,
  loadColorizer,
  predictAb,
  saveColorizer,
  trainingScaleOf,
} from '../../src/tfjs/network.js';
import { registerLayers } from '../../src/tfjs/layers.js';
import { countParams } from '../../src/network/table.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { tmpDir } from '../helpers/tar.js';
import { rand, relErr } from './reference.js';

const TINY = { inputSize: 32, width: 0.125, numClasses: 4 };

test('train and infer models: shapes at the training size and at a non-square size; weights shared', async () => {
  await setupTfjs({ backend: 'wasm' });
  const before = tf.memory().numTensors;
  const c = buildColorizer(TINY, { seed: 3 });
  assert.equal(c.train.countParams(), countParams(TINY).total, 'analytic count equals the built model');
  const L = tf.tensor4d(rand(2 * 32 * 32, 1, 0.5).map((v) => v + 0.5), [2, 32, 32, 1]);
  const [ab, logits] = c.train.predict(L) as tf.Tensor[];
  assert.deepEqual(ab!.shape, [2, 16, 16, 2]);
  assert.deepEqual(logits!.shape, [2, 4]);
  const abv = await ab!.data();
  assert.ok(abv.every((v) => v >= 0 && v <= 1), 'sigmoid output');

  const local = tf.tensor4d(rand(2 * 48 * 64, 2, 0.5).map((v) => v + 0.5), [2, 48, 64, 1]);
  const { ab: ab2, logits: l2 } = predictAb(c, local, L);
  assert.deepEqual(ab2.shape, [2, 24, 32, 2]);
  assert.deepEqual(l2!.shape, [2, 4]);
  // Same image on both paths: the infer model computes what the train model computes.
  const { ab: ab3, logits: l3 } = predictAb(c, L, L);
  assert.ok(relErr(await ab3.data(), abv) < 1e-5);
  // global + local split gives the same as infer.
  const [feats, l4] = c.global.predict(L) as tf.Tensor[];
  assert.deepEqual(feats!.shape, [2, 32]);
  const ab4 = c.local.predict([local, feats!]) as tf.Tensor;
  assert.ok(relErr(await ab4.data(), await ab2.data()) < 1e-5);
  // Style transfer: another global image changes the colours of the same local image.
  const other = tf.tensor4d(rand(2 * 32 * 32, 9, 0.5).map((v) => v + 0.5), [2, 32, 32, 1]);
  const { ab: ab5, logits: l5 } = predictAb(c, local, other);
  assert.ok(relErr(await ab5.data(), await ab2.data()) > 1e-4);
  // Every model shares the same variables.
  assert.equal(new Set([...c.train.weights, ...c.infer.weights, ...c.global.weights, ...c.local.weights].map((w) => w.name)).size, c.train.weights.length);
  tf.dispose([L, ab!, logits!, local, ab2, l2!, ab3, l3!, feats!, l4!, ab4, other, ab5, l5!]);
  disposeColorizer(c);
  assert.equal(tf.memory().numTensors, before, 'disposeColorizer frees every weight');
});

test('no classification head when numClasses is 0', async () => {
  await setupTfjs({ backend: 'wasm' });
  const c = buildColorizer({ ...TINY, numClasses: 0 });
  assert.equal(c.train.outputs.length, 1);
  const L = tf.zeros([1, 32, 32, 1]);
  const { ab, logits } = predictAb(c, L, L);
  assert.equal(logits, null);
  assert.deepEqual(ab.shape, [1, 16, 16, 2]);
  tf.dispose([L, ab]);
  disposeColorizer(c);
});

test('invalid configs are refused', () => {
  assert.throws(() => buildColorizer({ inputSize: 30, width: 1, numClasses: 0 }), InvalidOptionError);
  assert.throws(() => countParams({ inputSize: 32, width: 0, numClasses: 0 }), InvalidOptionError);
  assert.throws(() => buildColorizer({ inputSize: 32, width: 1, numClasses: -1 }), InvalidOptionError);
});

test('save then load: identical predictions, tf.loadLayersModel opens it, train model rebuilt on the loaded weights', async (t) => {
  await setupTfjs({ backend: 'wasm' });
  const dir = tmpDir(t, 'colorpipe-net-');
  const c = buildColorizer(TINY, { seed: 5 });
  const L = tf.tensor4d(rand(2 * 32 * 32, 4, 0.5).map((v) => v + 0.5), [2, 32, 32, 1]);
  const local = tf.tensor4d(rand(2 * 40 * 24, 6, 0.5).map((v) => v + 0.5), [2, 40, 24, 1]);
  const want = predictAb(c, local, L);
  const wantTrain = (c.train.predict(L) as tf.Tensor[])[0]!;
  c.trainingScale = { shortSide: 36, crop: 32 };
  await saveColorizer(c, dir);

  const loaded = await loadColorizer(dir);
  assert.deepEqual(loaded.config, TINY);
  assert.deepEqual(loaded.trainingScale, { shortSide: 36, crop: 32 }, 'the training scale travels with the model');
  const got = predictAb(loaded, local, L);
  assert.deepEqual(Array.from(await got.ab.data()), Array.from(await want.ab.data()));
  assert.deepEqual(Array.from(await got.logits!.data()), Array.from(await want.logits!.data()));
  const gotTrain = (loaded.train.predict(L) as tf.Tensor[])[0]!;
  assert.deepEqual(Array.from(await gotTrain.data()), Array.from(await wantTrain.data()));

  // Standard tfjs Layers format: tf.loadLayersModel opens model.json + weights.bin once colorpipe's layers
  // are registered (here through an in-memory handler, as a browser would through http).
  registerLayers();
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  assert.equal(json.format, 'layers-model');
  const bin = readFileSync(join(dir, json.weightsManifest[0]!.paths[0]!));
  const plain = await tfl.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest[0]!.weights,
      weightData: bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength),
    }),
  );
  const plainAb = (plain.predict([local, L]) as tf.Tensor[])[0]!;
  assert.deepEqual(Array.from(await plainAb.data()), Array.from(await want.ab.data()));
  plainAb.dispose();
  plain.dispose();
  const raw = await loadColorizer(join(dir, 'model.json'));
  const viaJson = predictAb(raw, local, L);
  assert.deepEqual(Array.from(await viaJson.ab.data()), Array.from(await want.ab.data()));
  const again = colorizerFromInfer(raw.infer);
  assert.equal(again.train.countParams(), c.train.countParams());

  tf.dispose([L, local, want.ab, want.logits!, wantTrain, got.ab, got.logits!, gotTrain, viaJson.ab, viaJson.logits!]);
  disposeColorizer(c);
  disposeColorizer(loaded);
  disposeColorizer(raw);
  await assert.rejects(loadColorizer(join(dir, 'missing')));
});

test('trainingScaleOf: read from model.json when well formed, else absent', () => {
  assert.deepEqual(trainingScaleOf({ colorpipe: { trainingScale: { shortSide: 256, crop: 224 } } }), { shortSide: 256, crop: 224 });
  assert.equal(trainingScaleOf({ colorpipe: { config: {} } }), undefined, 'older models have none');
  assert.equal(trainingScaleOf({ colorpipe: { trainingScale: { shortSide: -1, crop: 224 } } }), undefined);
  assert.equal(trainingScaleOf(null), undefined);
});
