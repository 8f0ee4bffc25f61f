import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setupTfjs } from '../../src/tfjs/backend.js';
import { buildColorizer, colorizerWeights, disposeColorizer, loadColorizer } from '../../src/tfjs/network.js';
import { modelTopology } from '../../src/network/topology.js';
import { writeModelFiles } from '../../src/network/model-files.js';
import { tmpDir } from '../helpers/tar.js';

/** The JSON without initializer seeds (they only say how the weights were first drawn). */
const unseeded = (o: unknown) => JSON.parse(JSON.stringify(o, (k, v: unknown) => (k === 'seed' ? undefined : v))) as {
  config: { layers: Array<{ name: string }>; input_layers: unknown; output_layers: unknown };
};

for (const config of [{ inputSize: 32, width: 0.125, numClasses: 3 }, { inputSize: 64, width: 0.25, numClasses: 0 }]) {
  test(`the generated topology is tfjs's own, layer by layer (${JSON.stringify(config)}), and loads into the same network`, async (t) => {
    await setupTfjs({ backend: 'cpu' });
    const c = buildColorizer(config, { seed: 4 });
    t.after(() => disposeColorizer(c));
    const theirs = unseeded(c.infer.toJSON(null, false));
    const mine = unseeded(modelTopology(config));
    const byName = (j: typeof mine) => Object.fromEntries(j.config.layers.map((l) => [l.name, l]));
    assert.deepEqual(byName(mine), byName(theirs));
    assert.deepEqual([mine.config.input_layers, mine.config.output_layers], [theirs.config.input_layers, theirs.config.output_layers]);

    const dir = tmpDir(t);
    await writeModelFiles(dir, { topology: modelTopology(config), weights: await colorizerWeights(c), config });
    const back = await loadColorizer(dir);
    t.after(() => disposeColorizer(back));
    const L = tf.randomUniform([2, 40, 48, 1], 0, 1, 'float32', 1);
    const G = tf.randomUniform([2, config.inputSize, config.inputSize, 1], 0, 1, 'float32', 2);
    const first = (x: tf.Tensor | tf.Tensor[]) => (Array.isArray(x) ? x[0]! : x);
    assert.deepEqual(await first(back.infer.predict([L, G])).data(), await first(c.infer.predict([L, G])).data());
  });
}
