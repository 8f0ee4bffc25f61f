import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import type { Tensor } from '@tensorflow/tfjs-core';
import { InvalidOptionError } from '../../src/core/errors.js';
import { setupTfjs, type TfjsBackend } from '../../src/tfjs/backend.js';
import { buildColorizer, type Colorizer } from '../../src/tfjs/network.js';
import { modelInputs, tfjsRunner, type InferenceModel, type SplitColorizer } from '../../src/tfjs/runner.js';
import { pattern } from '../onnx/helpers.js';

let engine: TfjsBackend;
let net: Colorizer;

before(async () => {
  engine = await setupTfjs({ backend: 'cpu' });
  net = buildColorizer({ inputSize: 32, width: 0.125, numClasses: 4 }, { seed: 3 });
});

/** The split model with its global path's calls counted. */
function counted(): { model: SplitColorizer; calls: () => number } {
  let n = 0;
  const global: InferenceModel = { inputs: net.global.inputs, predict: (x) => (n++, net.global.predict(x)) };
  return { model: { global, local: net.local }, calls: () => n };
}

test('modelInputs finds a bare model\'s local and global inputs by shape; S is read from the model', () => {
  assert.deepEqual(modelInputs(net.infer), { localIndex: 0, globalIndex: 1, globalSize: 32 });
  assert.deepEqual(modelInputs({ inputs: [{ shape: [null, 16, 16, 1] }, { shape: [null, null, null, 1] }], predict: () => { throw new Error(); } }),
    { localIndex: 1, globalIndex: 0, globalSize: 16 });
  assert.throws(() => modelInputs(net.train), InvalidOptionError);
  assert.equal(tfjsRunner(net, engine).globalSize, 32);
  assert.equal(tfjsRunner(net.infer, engine).globalSize, 32);
  assert.match(tfjsRunner(net, engine, { note: ' [why]' }).describe, /^tfjs cpu.* \[why\]$/);
  assert.throws(() => tfjsRunner(net.train, engine), InvalidOptionError);
  assert.throws(() => tfjsRunner(net, { describe: 'none' } as TfjsBackend), /engine\.tf/);
});

test('split and bare models agree, per image or with one global input shared by the batch', async () => {
  const local = pattern(2 * 16 * 24, 1);
  const one = pattern(32 * 32, 2);
  const both = new Float32Array(2 * 32 * 32);
  both.set(one, 0);
  both.set(one, 32 * 32);
  const shape = { batch: 2, height: 16, width: 24, sharedGlobal: false };
  const outs = [];
  for (const model of [net, net.infer]) {
    const r = tfjsRunner(model, engine);
    outs.push(await r.run(local, both, shape), await r.run(local, one, { ...shape, sharedGlobal: true }));
    await r.release();
  }
  assert.deepEqual([outs[0]!.abHeight, outs[0]!.abWidth, outs[0]!.ab.length], [8, 12, 2 * 8 * 12 * 2]);
  for (const o of outs.slice(1)) {
    let d = 0;
    for (let i = 0; i < o.ab.length; i++) d = Math.max(d, Math.abs(o.ab[i]! - outs[0]!.ab[i]!));
    assert.ok(d < 1e-5, `max diff ${d}`);
  }
});

test('the split model\'s global features of a shared global input are computed once and kept until another comes', async () => {
  const tf = engine.tf;
  const before = tf.memory().numTensors;
  const { model, calls } = counted();
  const r = tfjsRunner(model, engine);
  const style = pattern(32 * 32, 9);
  const shared = { batch: 2, height: 8, width: 8, sharedGlobal: true };
  const first = await r.run(pattern(2 * 64, 1), style, shared);
  const again = await r.run(pattern(2 * 64, 1), style, shared);
  await r.run(pattern(64, 2), style, { ...shared, batch: 1 });
  assert.equal(calls(), 1, 'once for the same array (a style reference, an image\'s windows)');
  assert.deepEqual(again.ab, first.ab);
  // Per-image global inputs run the global path each time and leave the kept features alone.
  await r.run(pattern(2 * 64, 3), pattern(2 * 32 * 32, 4), { ...shared, sharedGlobal: false });
  await r.run(pattern(64, 2), style, { ...shared, batch: 1 });
  assert.equal(calls(), 2);
  // Another array (the next tiled image), even with the same values: computed for it.
  await r.run(pattern(64, 2), style.slice(), { ...shared, batch: 1 });
  assert.equal(calls(), 3);
  assert.equal(tf.memory().numTensors, before + 1, 'one [1, C] kept between calls');
  await r.release();
  assert.equal(tf.memory().numTensors, before, 'released with the runner, every other tensor disposed');
});

test('a run that fails disposes what it made and leaves the runner usable', async () => {
  const tf = engine.tf;
  let fail = true;
  const flaky: InferenceModel = {
    inputs: net.infer.inputs,
    predict: (x) => {
      if (fail) throw new Error('out of memory');
      return net.infer.predict(x as Tensor[]);
    },
  };
  const r = tfjsRunner(flaky, engine);
  const before = tf.memory().numTensors;
  await assert.rejects(r.run(pattern(64, 1), pattern(32 * 32, 2), { batch: 1, height: 8, width: 8, sharedGlobal: false }), /out of memory/);
  assert.equal(tf.memory().numTensors, before);
  fail = false;
  assert.equal((await r.run(pattern(64, 1), pattern(32 * 32, 2), { batch: 1, height: 8, width: 8, sharedGlobal: false })).ab.length, 32);
  await r.release();
});
