import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidOptionError } from '../../src/core/errors.js';
import { readModelFiles, writeModelFiles } from '../../src/network/model-files.js';
import { modelTopology } from '../../src/network/topology.js';
import { layerTable } from '../../src/network/table.js';
import { orderWeights, weightSpecs } from '../../src/network/weights.js';
import { tmpDir } from '../helpers/tar.js';

const config = { inputSize: 16, width: 0.0625, numClasses: 2 };

function weights() {
  let k = 0;
  return weightSpecs(layerTable(config)).map((s) => ({ name: s.name, shape: s.shape, data: Float32Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => k++ / 7) }));
}

test('model.json + weights.bin are written and read back exactly, with the config and training scale', async (t) => {
  const dir = tmpDir(t);
  const w = weights();
  await writeModelFiles(dir, { topology: modelTopology(config), weights: w, config, trainingScale: { shortSide: 18, crop: 16 } });
  const m = await readModelFiles(dir);
  assert.deepEqual(m.config, config);
  assert.deepEqual(m.trainingScale, { shortSide: 18, crop: 16 });
  assert.deepEqual(m.weights.map((x) => [x.name, x.shape, Array.from(x.data)]), w.map((x) => [x.name, x.shape, Array.from(x.data)]));
  assert.deepEqual(orderWeights(layerTable(config), m.weights, 'm').map((x) => x.name), weightSpecs(layerTable(config)).map((s) => s.name));
});

test('a model reads only files in its own folder: absolute paths, .. and links that lead out are refused naming model.json and the field', async (t) => {
  const root = tmpDir(t);
  const dir = join(root, 'model');
  mkdirSync(dir);
  await writeModelFiles(dir, { topology: modelTopology(config), weights: weights(), config });
  const secret = join(root, 'secret.bin');
  writeFileSync(secret, readFileSync(join(dir, 'weights.bin')));
  symlinkSync(secret, join(dir, 'link.bin'));
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as { weightsManifest: Array<{ paths: string[] }> };
  for (const [path, why] of [[secret, /is an absolute path/], ['../secret.bin', /leads out of the folder \(\.\.\)/], ['link.bin', /is a link that leads out of the folder/]] as const) {
    json.weightsManifest[0]!.paths = [path];
    writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
    await assert.rejects(readModelFiles(dir), (e: unknown) =>
      e instanceof InvalidOptionError && e.message.startsWith(`${join(dir, 'model.json')}: weightsManifest[0].paths[0]`) && why.test(e.message));
  }
});

test('weights that do not match the manifest or the layer table are one line naming the file', async (t) => {
  const dir = tmpDir(t);
  await writeModelFiles(dir, { topology: modelTopology(config), weights: weights(), config });
  writeFileSync(join(dir, 'weights.bin'), readFileSync(join(dir, 'weights.bin')).subarray(8));
  await assert.rejects(readModelFiles(dir), /model\.json: weightsManifest\[0\] needs \d+ bytes of weights, its files hold \d+/);
  const w = weights().filter((x) => x.name !== 'co_out/bias');
  assert.throws(() => orderWeights(layerTable(config), w, 'the file'), /the file has no weight co_out\/bias/);
});
