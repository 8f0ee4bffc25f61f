/**
 * ONNX Runtime runs the exported graph to the tfjs inference model's numbers: the tiny network at three input
 * sizes, with its own and with another (style) global image, with and without a class head, with both fusion
 * forms; and the paper's network at three sizes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs-core';
import { setupTfjs } from '../../src/tfjs/backend.js';
import { disposeColorizer, predictAb, type Colorizer, exportSourceOf } from '../../src/tfjs/network.js';
import { exportOnnx } from '../../src/onnx/export.js';
import { loadOnnxColorizer, type OnnxColorizer } from '../../src/onnx/session.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { maxAbsDiff, pattern, std, trainedLike } from './helpers.js';

const TOL = 1e-4;
const SIZES: [number, number][] = [[32, 32], [48, 64], [72, 40]];

/** tfjs's ab (NHWC) and logits for local [n, h, w] and global [g, S, S] (g = n, or 1 tiled). */
async function reference(c: Colorizer, local: Float32Array, global: Float32Array, n: number, h: number, w: number) {
  const S = c.config.inputSize;
  const g = global.length / (S * S);
  const l = tf.tensor4d(local, [n, h, w, 1]);
  const gl = tf.tidy(() => {
    const t = tf.tensor4d(global, [g, S, S, 1]);
    return g === n ? t : tf.tile(t, [n, 1, 1, 1]);
  });
  const { ab, logits } = predictAb(c, l, gl);
  const inputs = [l, gl];
  const out = { ab: (await ab.data()) as Float32Array, logits: logits ? ((await logits.data()) as Float32Array) : null };
  tf.dispose([ab, ...(logits ? [logits] : []), ...inputs]);
  return out;
}

async function compare(c: Colorizer, m: OnnxColorizer, label: string): Promise<void> {
  const S = c.config.inputSize;
  for (const [i, [h, w]] of SIZES.entries()) {
    const n = 2;
    const local = pattern(n * h * w, i);
    const own = pattern(n * S * S, 10 + i);
    const style = pattern(S * S, 20 + i);
    for (const [what, global] of [['own global', own], ['style global (batch 1)', style]] as const) {
      const ref = await reference(c, local, global, n, h, w);
      const got = await m.predict({ local, global, batch: n, height: h, width: w });
      assert.equal(got.abHeight, h / 2);
      assert.equal(got.abWidth, w / 2);
      assert.ok(std(ref.ab) > 1e-3, 'the reference is not flat (the comparison means something)');
      const d = maxAbsDiff(got.ab, ref.ab);
      assert.ok(d <= TOL, `${label} ${w}x${h} ${what}: max |d ab| ${d}`);
      if (ref.logits) {
        // With one style image ONNX computes its logits once ([1, K]); tfjs computed them per tiled copy.
        const want = got.logits!.length === ref.logits.length ? ref.logits : ref.logits.subarray(0, got.logits!.length);
        const dl = maxAbsDiff(got.logits!, want);
        assert.ok(dl <= TOL, `${label} ${w}x${h} ${what}: max |d logits| ${dl}`);
      } else {
        assert.equal(got.logits, null);
      }
    }
  }
  // A style input changes the colours: the test above would not notice a graph that ignored L_global.
  const local = pattern(32 * 32, 1);
  const a = await m.predict({ local, global: pattern(S * S, 2), batch: 1, height: 32, width: 32 });
  const b = await m.predict({ local, global: pattern(S * S, 3).map((v) => 1 - v), batch: 1, height: 32, width: 32 });
  assert.ok(maxAbsDiff(a.ab, b.ab) > 1e-5, `${label}: the global input matters`);
}

for (const numClasses of [0, 4]) {
  test(`tiny network (${numClasses} classes): ONNX Runtime matches tfjs at 3 sizes, own and style global, both fusion forms`, async (t) => {
    await setupTfjs({ backend: 'wasm' });
    const c = trainedLike({ inputSize: 32, width: 0.125, numClasses }, 5 + numClasses);
    t.after(() => disposeColorizer(c));
    for (const fusion of ['split', 'concat'] as const) {
      const m = await loadOnnxColorizer(exportOnnx(await exportSourceOf(c), { fusion }), { device: 'cpu', threads: 1 });
      t.after(() => m.release());
      assert.equal(m.device, 'cpu');
      assert.equal(m.inputSize, 32);
      assert.equal(m.numClasses, numClasses);
      await compare(c, m, fusion);
    }
  });
}

test('a global input size whose low-level map is odd (S = 40: 5 -> 3 -> 2) pads as TF does', async (t) => {
  await setupTfjs({ backend: 'wasm' });
  const c = trainedLike({ inputSize: 40, width: 0.125, numClasses: 3 }, 11);
  t.after(() => disposeColorizer(c));
  const m = await loadOnnxColorizer(exportOnnx(await exportSourceOf(c)), { device: 'cpu', threads: 1 });
  t.after(() => m.release());
  const local = pattern(48 * 56, 4);
  const global = pattern(40 * 40, 5);
  const ref = await reference(c, local, global, 1, 48, 56);
  const got = await m.predict({ local, global, batch: 1, height: 48, width: 56 });
  assert.ok(maxAbsDiff(got.ab, ref.ab) <= TOL);
  assert.ok(maxAbsDiff(got.logits!, ref.logits!) <= TOL);
});

test('the paper network (224, width 1, 205 classes) matches tfjs at three sizes, with its own and a style global', async (t) => {
  await setupTfjs({ backend: 'wasm' });
  const c = trainedLike({ inputSize: 224, width: 1, numClasses: 205 }, 7);
  t.after(() => disposeColorizer(c));
  const m = await loadOnnxColorizer(exportOnnx(await exportSourceOf(c)), { device: 'cpu' });
  t.after(() => m.release());
  const style = pattern(224 * 224, 9);
  for (const [i, [h, w]] of ([[224, 224], [96, 160], [152, 56]] as const).entries()) {
    const local = pattern(h * w, i);
    // The first size with its own global input, the others with a style image's.
    const global = i === 0 ? pattern(224 * 224, 2) : style;
    const got = await m.predict({ local, global, batch: 1, height: h, width: w });
    const ref = await reference(c, local, global, 1, h, w);
    assert.ok(std(ref.ab) > 1e-3);
    assert.ok(maxAbsDiff(got.ab, ref.ab) <= TOL, `${w}x${h}: max |d ab| ${maxAbsDiff(got.ab, ref.ab)}`);
    assert.ok(maxAbsDiff(got.logits!, ref.logits!) <= TOL, `${w}x${h}: logits`);
  }
});

test('NCHW output, wrong inputs and options are refused with the option named', async (t) => {
  await setupTfjs({ backend: 'wasm' });
  const c = trainedLike({ inputSize: 32, width: 0.125, numClasses: 0 });
  t.after(() => disposeColorizer(c));
  const m = await loadOnnxColorizer(exportOnnx(await exportSourceOf(c)), { device: 'cpu', threads: 1, graphOptimization: 'basic' });
  t.after(() => m.release());
  const local = pattern(2 * 16 * 24, 1);
  const global = pattern(32 * 32, 2);
  const nhwc = await m.predict({ local, global, batch: 2, height: 16, width: 24 });
  const nchw = await m.predict({ local, global, batch: 2, height: 16, width: 24 }, { layout: 'nchw' });
  // [2, 8, 12, 2] vs [2, 2, 8, 12]: image 1, channel b, row 3, column 5.
  assert.equal(nhwc.ab[((1 * 8 + 3) * 12 + 5) * 2 + 1], nchw.ab[((1 * 2 + 1) * 8 + 3) * 12 + 5]);
  await assert.rejects(m.predict({ local, global, batch: 2, height: 12, width: 32 }), /multiples of 8/);
  await assert.rejects(m.predict({ local: local.subarray(1), global, batch: 2, height: 16, width: 24 }), /input\.local/);
  await assert.rejects(m.predict({ local, global: pattern(3 * 32 * 32, 1), batch: 2, height: 16, width: 24 }), /input\.global/);
  await assert.rejects(loadOnnxColorizer(exportOnnx(await exportSourceOf(c)), { device: 'tpu' as 'cpu' }), InvalidOptionError);
  await assert.rejects(loadOnnxColorizer(exportOnnx(await exportSourceOf(c)), { threads: 0 }), /options\.threads/);
  await assert.rejects(loadOnnxColorizer('/nonexistent/model.onnx'), /\/nonexistent\/model\.onnx/);
  await assert.rejects(loadOnnxColorizer(new Uint8Array([1, 2, 3, 250])), InvalidOptionError);
});

test('device auto picks cpu here (no CUDA provider, no hardware GPU adapter) and says why', async (t) => {
  await setupTfjs({ backend: 'wasm' });
  const c = trainedLike({ inputSize: 32, width: 0.125, numClasses: 0 });
  t.after(() => disposeColorizer(c));
  const m = await loadOnnxColorizer(exportOnnx(await exportSourceOf(c)));
  t.after(() => m.release());
  if (m.device === 'cpu') assert.match(m.describe, /auto: cuda: .*webgpu: /);
});

test('without onnxruntime-node: EngineUnavailableError saying how to install it', () => {
  // A resolve hook that hides onnxruntime-node, as on an install without it.
  const hooks = `export async function resolve(s, c, next) { if (s === 'onnxruntime-node') { const e = new Error('Cannot find package onnxruntime-node'); e.code = 'ERR_MODULE_NOT_FOUND'; throw e; } return next(s, c); }`;
  const register = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}));`;
  const engine = new URL('../../src/onnx/session.js', import.meta.url).href;
  const main = `const { loadOnnxColorizer } = await import(${JSON.stringify(engine)}); const { exportOnnx } = await import(${JSON.stringify(new URL('../../src/onnx/export.js', import.meta.url).href)});` +
    `try { await loadOnnxColorizer(new Uint8Array(0)); } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }`;
  const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module', '-e', main], { encoding: 'utf8' });
  const out = JSON.parse(r.stdout.trim()) as { name: string; code: string; message: string };
  assert.equal(out.name, 'EngineUnavailableError', r.stderr);
  assert.equal(out.code, 'ERR_ENGINE_UNAVAILABLE');
  assert.match(out.message, /npm i onnxruntime-node/);
});
