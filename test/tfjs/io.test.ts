import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { setupTfjs } from '../../src/tfjs/backend.js';
import { fileLoadHandler, fileSaveHandler, WEIGHTS_FILE } from '../../src/tfjs/io.js';
import { tmpDir } from '../helpers/tar.js';

test('fileSaveHandler writes model.json + weights.bin with extra keys; fileLoadHandler reads them back exactly', async (t) => {
  await setupTfjs({ backend: 'cpu' });
  const dir = tmpDir(t, 'colorpipe-io-');
  const model = tfl.sequential({ layers: [tfl.layers.dense({ units: 3, inputShape: [2], kernelInitializer: 'ones' })] });
  await model.save(fileSaveHandler(join(dir, 'm'), { colorpipe: { note: 'kept' } }));
  const json = JSON.parse(readFileSync(join(dir, 'm', 'model.json'), 'utf8'));
  assert.deepEqual(json.colorpipe, { note: 'kept' });
  assert.deepEqual(json.weightsManifest[0].paths, [WEIGHTS_FILE]);
  assert.equal(readFileSync(join(dir, 'm', WEIGHTS_FILE)).byteLength, (2 * 3 + 3) * 4);
  // The directory or the model.json path both load.
  for (const p of [join(dir, 'm'), join(dir, 'm', 'model.json')]) {
    const loaded = await tfl.loadLayersModel(fileLoadHandler(p));
    const x = tf.tensor2d([[1, 2]]);
    assert.deepEqual(await (loaded.predict(x) as tf.Tensor).data(), await (model.predict(x) as tf.Tensor).data());
  }
  await assert.rejects(tfl.loadLayersModel(fileLoadHandler(join(dir, 'missing'))), /Cannot read the model .*missing.*no such file or directory/);
});
