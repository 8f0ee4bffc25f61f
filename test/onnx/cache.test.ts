import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { InvalidOptionError } from '../../src/core/errors.js';
import { cachedOnnxRunner } from '../../src/onnx/cache.js';
import { setupTfjs } from '../../src/tfjs/backend.js';
import { saveColorizer, type Colorizer } from '../../src/tfjs/network.js';
import { trainedLike } from './helpers.js';

const TINY = { inputSize: 32, width: 0.125, numClasses: 4 };
let net: Colorizer;
let root: string;

before(async () => {
  await setupTfjs({ backend: 'cpu' });
  net = trainedLike(TINY, 7);
  net.trainingScale = { shortSide: 40, crop: 32 };
  root = await mkdtemp(path.join(os.tmpdir(), 'cp-onnx-cache-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('the ONNX export of a model directory is cached beside it and rebuilt when the weights change', async (t) => {
  const dir = path.join(root, 'cached');
  await saveColorizer(net, dir);
  const modelJson = path.join(dir, 'model.json');
  const first = await cachedOnnxRunner(modelJson, { device: 'cpu' });
  t.after(() => first.release());
  assert.deepEqual(first.trainingScale, { shortSide: 40, crop: 32 }, 'the training scale comes along');
  const onnxFile = path.join(dir, 'model.onnx');
  const stamp = JSON.parse(await readFile(path.join(dir, 'model.onnx.json'), 'utf8')) as { source: string };
  const made = (await stat(onnxFile)).mtimeMs;
  // Unchanged: reused, not rewritten.
  const again = await cachedOnnxRunner(modelJson, { device: 'cpu' });
  t.after(() => again.release());
  assert.deepEqual(again.trainingScale, { shortSide: 40, crop: 32 }, 'read back from the cached export');
  assert.equal((await stat(onnxFile)).mtimeMs, made);
  // Other weights in the same place: rebuilt.
  await saveColorizer(trainedLike(TINY, 11), dir);
  const rebuilt = await cachedOnnxRunner(modelJson, { device: 'cpu' });
  t.after(() => rebuilt.release());
  const stamp2 = JSON.parse(await readFile(path.join(dir, 'model.onnx.json'), 'utf8')) as { source: string };
  assert.notEqual(stamp2.source, stamp.source);
});

test('where the export cannot be cached it runs from memory and the engine line says why', async (t) => {
  const dir = path.join(root, 'unwritable');
  await saveColorizer(net, dir);
  // A directory where the cache file would go: the write fails as on a read-only folder (also for root).
  await mkdir(path.join(dir, 'model.onnx'));
  const r = await cachedOnnxRunner(path.join(dir, 'model.json'), { device: 'cpu', threads: 1 });
  t.after(() => r.release());
  assert.match(r.describe, /\(export not cached: /);
  assert.deepEqual(r.trainingScale, { shortSide: 40, crop: 32 });
  const out = await r.run(new Float32Array(8 * 8), new Float32Array(32 * 32), { batch: 1, height: 8, width: 8, sharedGlobal: false });
  assert.equal(out.ab.length, 4 * 4 * 2);
});

test('the cache reads only the weight files inside the model folder: a link out (to /dev/zero, which never ends) is refused before it is read', { skip: process.platform !== 'linux' && 'needs /dev/zero' }, async () => {
  const dir = path.join(root, 'link-out');
  await saveColorizer(net, dir);
  await rm(path.join(dir, 'weights.bin'));
  await symlink('/dev/zero', path.join(dir, 'weights.bin'));
  await assert.rejects(cachedOnnxRunner(path.join(dir, 'model.json'), { device: 'cpu' }), (e: unknown) =>
    e instanceof InvalidOptionError && e.message === `${path.join(dir, 'model.json')}: weightsManifest[0].paths[0] "weights.bin" is a link that leads out of the folder; a model reads only files in its own folder`);
  await assert.rejects(stat(path.join(dir, 'model.onnx')), { code: 'ENOENT' });
});
