import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { predict, type PredictedImage, type PredictOptions, type BatchTiming } from '../../src/colorize/predict.js';
import type { PreparedImage } from '../../src/colorize/image.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { InvalidOptionError, Reporter } from '../../src/core/errors.js';
import { cutWindow, pasteKept, planTiles } from '../../src/colorize/tiles.js';
import { exportOnnx } from '../../src/onnx/export.js';
import { loadOnnxRunner } from '../../src/onnx/runner.js';
import { setupTfjs, type TfjsBackend } from '../../src/tfjs/backend.js';
import { buildColorizer, type Colorizer, exportSourceOf } from '../../src/tfjs/network.js';
import { tfjsRunner, type InferenceModel, type SplitColorizer } from '../../src/tfjs/runner.js';
import type { Runner } from '../../src/network/runner.js';

const TINY = { inputSize: 32, width: 0.125, numClasses: 4 };
let engine: TfjsBackend;
let net: Colorizer;

before(async () => {
  engine = await setupTfjs({ backend: 'cpu' });
  net = buildColorizer(TINY, { seed: 3 });
});

function plane(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = ((i * 37 + seed * 101) % 97) / 96;
  return a;
}

function prepared(key: string, w: number, h: number, seed: number): PreparedImage {
  const L = plane(w * h, seed);
  return { key, width: w, height: h, L, localWidth: w, localHeight: h, local: L, globalSize: 32, global: plane(32 * 32, seed + 50), format: 'png' };
}

/** The predict stage on a tfjs runner of `model`, released (its kept features with it) when the run ends. */
async function run(groups: PreparedImage[][], model: SplitColorizer | InferenceModel, o: Omit<PredictOptions, 'runner'> = {}, signal?: AbortSignal): Promise<PredictedImage[]> {
  const runner = tfjsRunner(model, engine);
  try {
    return await collect(pipeline(groups, predict({ runner, ...o }), signal ? { signal } : {}));
  } finally {
    await runner.release();
  }
}

test('the factory refuses a missing runner and a style input of the wrong size at once', () => {
  assert.throws(() => predict({} as PredictOptions), /options\.runner/);
  assert.throws(() => predict({ runner: tfjsRunner(net, engine), style: new Float32Array(10) }), InvalidOptionError);
});

test('a group comes out as ab at half the processing size, in [0, 1], equal to the inference model\'s', async () => {
  const tf = engine.tf;
  const before = tf.memory().numTensors;
  const timings: BatchTiming[] = [];
  const groups = [[prepared('a', 24, 16, 1), prepared('b', 24, 16, 2)], [prepared('c', 8, 32, 3)]];
  const out = await run(groups, net, { onBatch: (t) => timings.push(t) });
  assert.deepEqual(out.map((p) => [p.key, p.abWidth, p.abHeight, p.ab.length]), [['a', 12, 8, 192], ['b', 12, 8, 192], ['c', 4, 16, 128]]);
  for (const p of out) for (const v of p.ab) assert.ok(v >= 0 && v <= 1);
  assert.deepEqual(timings.map((t) => t.size), [2, 1]);
  assert.equal(tf.memory().numTensors, before, 'every tensor disposed');
  // The split path (global model + local model) computes what the inference model computes.
  const want = tf.tidy(() => {
    const y = net.infer.predict([tf.tensor4d(plane(24 * 16, 2), [1, 16, 24, 1]), tf.tensor4d(plane(32 * 32, 52), [1, 32, 32, 1])]);
    return (Array.isArray(y) ? y[0]! : y).dataSync() as Float32Array;
  });
  let d = 0;
  for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(want[i]! - out[1]!.ab[i]!));
  assert.ok(d < 1e-5, `max diff ${d}`);
  // A bare inference model (e.g. opened with tf.loadLayersModel) gives the same.
  const bare = await run(groups.map((g) => g.map((p) => ({ ...p }))), net.infer);
  for (let i = 0; i < out.length; i++) assert.deepEqual(bare[i]!.ab, out[i]!.ab);
});

test('style: the reference\'s global input replaces each image\'s, and changes ab', async () => {
  const tf = engine.tf;
  const before = tf.memory().numTensors;
  const styled = async (style?: Float32Array, model: Colorizer | Colorizer['infer'] = net): Promise<PredictedImage[]> =>
    run([[prepared('a', 16, 16, 1), prepared('b', 16, 16, 2)]], model, { style });
  const plain = await styled();
  const styleA = plane(32 * 32, 200);
  const styleB = plane(32 * 32, 300).map((v) => 1 - v);
  const a = await styled(styleA);
  const b = await styled(styleB);
  assert.notDeepEqual(a[0]!.ab, b[0]!.ab);
  assert.notDeepEqual(a[0]!.ab, plain[0]!.ab);
  // The split path computes the style features once; the inference model with the tiled style agrees.
  const viaInfer = await styled(styleA, net.infer);
  let d = 0;
  for (let i = 0; i < a[1]!.ab.length; i++) d = Math.max(d, Math.abs(a[1]!.ab[i]! - viaInfer[1]!.ab[i]!));
  assert.ok(d < 1e-5, `max diff ${d}`);
  // With the image's own global input as style, the result is the plain one.
  const own = await run([[prepared('a', 16, 16, 1)]], net, { style: prepared('a', 16, 16, 1).global });
  let e = 0;
  for (let i = 0; i < own[0]!.ab.length; i++) e = Math.max(e, Math.abs(own[0]!.ab[i]! - plain[0]!.ab[i]!));
  assert.ok(e < 1e-5);
  assert.equal(tf.memory().numTensors, before, 'style features disposed with the runner');
});

test('a group of mixed shapes is a bug upstream: it throws', async () => {
  const bad = [[prepared('a', 16, 16, 1), prepared('b', 24, 16, 2)]];
  await assert.rejects(run(bad, net), InvalidOptionError);
});

test('an early break stops pulling and returns the source', async () => {
  let pulled = 0;
  let closed = false;
  const src = async function* () {
    try {
      for (let i = 0; i < 100; i++) {
        pulled++;
        yield [prepared(`k${i}`, 8, 8, i)];
      }
    } finally {
      closed = true;
    }
  };
  for await (const _ of pipeline(src(), predict({ runner: tfjsRunner(net, engine) }))) break;
  assert.ok(closed);
  assert.equal(pulled, 1);
});

/** Largest |a - b| over two ab arrays. */
function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

test('an image larger than tile x tile runs in overlapping windows with the same ab as one pass (split, bare and ONNX models)', async (t) => {
  const tf = engine.tf;
  const big = () => [[prepared('big', 480, 296, 7)]];
  const onePass = (await run(big(), net, { tile: 4096 }))[0]!;
  const before = tf.memory().numTensors;
  const calls: number[] = [];
  const tiled = (await run(big(), net, { tile: 288, batchPixels: 288 * 288 * 2, onBatch: (t) => calls.push(t.size) }))[0]!;
  assert.equal(tf.memory().numTensors, before, 'every tensor disposed');
  assert.deepEqual([tiled.abWidth, tiled.abHeight], [240, 148]);
  assert.deepEqual(calls, [1], 'one image in, one batch counted');
  assert.ok(maxDiff(onePass.ab, tiled.ab) < 1e-5, `split: max diff ${maxDiff(onePass.ab, tiled.ab)}`);
  const bare = (await run(big(), net.infer, { tile: 288 }))[0]!;
  assert.ok(maxDiff(onePass.ab, bare.ab) < 1e-5, `bare: max diff ${maxDiff(onePass.ab, bare.ab)}`);
  // With a style reference the windows share its global input.
  const style = plane(32 * 32, 99);
  const styled = [(await run(big(), net, { style, tile: 4096 }))[0]!, (await run(big(), net, { style, tile: 288 }))[0]!];
  assert.ok(maxDiff(styled[0]!.ab, styled[1]!.ab) < 1e-5);
  const onnx: Runner = await loadOnnxRunner(exportOnnx(await exportSourceOf(net)), { device: 'cpu', threads: 1 });
  t.after(() => onnx.release());
  const ortOne = (await collect(pipeline(big(), predict({ runner: onnx, tile: 4096 }))))[0]!;
  const ortTiled = (await collect(pipeline(big(), predict({ runner: onnx, tile: 288, batchPixels: 288 * 288 * 4 }))))[0]!;
  assert.ok(maxDiff(ortOne.ab, ortTiled.ab) < 1e-5, `onnx: max diff ${maxDiff(ortOne.ab, ortTiled.ab)}`);
  assert.ok(maxDiff(ortOne.ab, onePass.ab) < 1e-4);
});

test('the halo matters: windows with a margin smaller than the reach give visibly different ab at the seams', async () => {
  // The same tiling by hand with a halo of 8: what the test above would catch if TILE_HALO were too small.
  const tf = engine.tf;
  const p = prepared('big', 480, 296, 7);
  const onePass = (await run([[p]], net, { tile: 4096 }))[0]!;
  const plan = planTiles(480, 296, 288, 8)!;
  const ab = new Float32Array(onePass.ab.length);
  const win = new Float32Array(plan.tileWidth * plan.tileHeight);
  for (const t of plan.tiles) {
    cutWindow(p.local, 480, t.x.origin, t.y.origin, plan.tileWidth, plan.tileHeight, win, 0);
    const out = tf.tidy(() => {
      const y = net.infer.predict([tf.tensor4d(win, [1, plan.tileHeight, plan.tileWidth, 1]), tf.tensor4d(p.global, [1, 32, 32, 1])]);
      return (Array.isArray(y) ? y[0]! : y).dataSync() as Float32Array;
    });
    pasteKept(out, 0, plan.tileWidth, t, ab, 240);
  }
  assert.ok(maxDiff(onePass.ab, ab) > 1e-3, `max diff ${maxDiff(onePass.ab, ab)}`);
});

test('an engine failure on one image is reported with its path and the rest of the batch goes on', async () => {
  // A model that fails on any batch holding the poisoned image's values (as an engine out of memory would).
  const poisoned = prepared('poison', 16, 16, 1);
  poisoned.local = new Float32Array(16 * 16).fill(-7);
  poisoned.L = poisoned.local;
  poisoned.url = '/in/poison.png';
  let released = 0;
  poisoned.lease = { bytes: 10, release: () => released++ };
  const failing = {
    inputs: net.infer.inputs,
    predict: (x: Parameters<typeof net.infer.predict>[0]) => {
      const local = (x as import('@tensorflow/tfjs-core').Tensor[])[0]!;
      if ((local.dataSync() as Float32Array).includes(-7)) throw new Error('Aborted(). Build with -sASSERTIONS for more info (out of memory)');
      return net.infer.predict(x);
    },
  };
  const reporter = new Reporter({ log: null });
  const groups = [[prepared('a', 16, 16, 2), poisoned, prepared('b', 16, 16, 3)], [prepared('c', 16, 16, 4)]];
  const out = await collect(pipeline(groups, predict({ runner: tfjsRunner(failing, engine) }), { reporter }));
  assert.deepEqual(out.map((p) => p.key), ['a', 'b', 'c']);
  assert.equal(reporter.total, 1);
  assert.equal(reporter.records[0]!.key, '/in/poison.png');
  assert.equal(reporter.records[0]!.stage, 'predict');
  assert.match(reporter.records[0]!.reason, /ran out of memory predicting a batch of 1 at 16x16; try a smaller --tile or --resolution/);
  assert.equal(released, 1, 'the dropped image gives its memory back');
});

test('every image over tile x tile runs in windows, in a batch too, and an abort stops between windows', async () => {
  const shapes: number[][] = [];
  const watched = {
    inputs: net.infer.inputs,
    predict: (x: Parameters<typeof net.infer.predict>[0]) => {
      shapes.push((x as import('@tensorflow/tfjs-core').Tensor[])[0]!.shape);
      return net.infer.predict(x);
    },
  };
  const pair = [[prepared('a', 304, 296, 1), prepared('b', 304, 296, 2)]];
  const out = await run(pair, watched, { tile: 288 });
  assert.deepEqual(out.map((p) => p.key), ['a', 'b']);
  assert.ok(shapes.length >= 2 && shapes.every((s) => s[1]! <= 288 && s[2]! <= 288), `windows only: ${JSON.stringify(shapes)}`);
  // Abort after the first window: no further engine call, the stage ends with the abort.
  const ac = new AbortController();
  shapes.length = 0;
  const aborting = { inputs: net.infer.inputs, predict: (x: Parameters<typeof net.infer.predict>[0]) => (ac.abort(), watched.predict(x)) };
  await assert.rejects(run([[prepared('c', 304, 296, 3)]], aborting, { tile: 288 }, ac.signal), { name: 'AbortError' });
  assert.equal(shapes.length, 1);
});

test('the windows of an image share its one global input, and a style reference is shared by every batch', async () => {
  // A runner that records what it is handed (the identity of the global array lets a runner keep its features).
  const calls: { global: Float32Array; shared: boolean; batch: number }[] = [];
  const recorder: Runner = {
    globalSize: 32,
    describe: 'recorder',
    async run(local, global, s) {
      calls.push({ global, shared: s.sharedGlobal, batch: s.batch });
      return { ab: new Float32Array(s.batch * (s.height / 2) * (s.width / 2) * 2), abHeight: s.height / 2, abWidth: s.width / 2 };
    },
    release: async () => undefined,
  };
  const a = prepared('a', 304, 296, 1);
  const b = prepared('b', 16, 16, 2);
  const c = prepared('c', 16, 16, 3);
  await collect(pipeline([[a], [b, c]], predict({ runner: recorder, tile: 288 })));
  assert.equal(calls.length, 5, 'four windows, then the batch');
  assert.ok(calls.slice(0, 4).every((k) => k.global === a.global && k.shared && k.batch === 1));
  assert.deepEqual([calls[4]!.shared, calls[4]!.batch, calls[4]!.global.length], [false, 2, 2 * 32 * 32]);
  calls.length = 0;
  const style = plane(32 * 32, 9);
  await collect(pipeline([[prepared('a', 304, 296, 1)], [prepared('b', 16, 16, 2), prepared('c', 16, 16, 3)]], predict({ runner: recorder, style, tile: 288 })));
  assert.ok(calls.length === 5 && calls.every((k) => k.global === style && k.shared));
});
