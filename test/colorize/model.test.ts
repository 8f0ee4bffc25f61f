import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { loadModel, resolveModelPath, scaleFromMetadata } from '../../src/colorize/model.js';
import { colorizeGraph } from '../../src/colorize/graph.js';
import { setupEngine, type Engine } from '../../src/tfjs/backend.js';
import { saveColorizer, type Colorizer, exportSourceOf } from '../../src/tfjs/network.js';
import { writeOnnx } from '../../src/onnx/export.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { trainedLike } from '../onnx/helpers.js';

const TINY = { inputSize: 32, width: 0.125, numClasses: 4 };
let engine: Engine;
let net: Colorizer;
let root: string;
let modelDir: string;
let input: string;

before(async () => {
  engine = await setupEngine({ backend: 'cpu' });
  net = trainedLike(TINY, 7);
  net.trainingScale = { shortSide: 40, crop: 32 };
  root = await mkdtemp(path.join(os.tmpdir(), 'cp-model-'));
  modelDir = path.join(root, 'model');
  await saveColorizer(net, modelDir);
  input = path.join(root, 'in');
  await mkdir(input);
  // Photos of a few sizes, colour and plain: enough to show a level of difference anywhere.
  for (const [i, [w, h]] of [[64, 48], [50, 70], [96, 96]].entries()) {
    const raw = Buffer.alloc(w * h * 3);
    for (let j = 0; j < raw.length; j++) raw[j] = (j * 37 + i * 91 + ((j / (w * 3)) | 0) * 13) % 256;
    await writeFile(path.join(input, `p${i}.png`), await sharp(raw, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer());
  }
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function pixels(file: string): Promise<Buffer> {
  return sharp(file).raw().toBuffer();
}

async function maxLevelDiff(a: string, b: string): Promise<number> {
  let worst = 0;
  for (const name of (await readdir(a)).sort()) {
    const [x, y] = [await pixels(path.join(a, name)), await pixels(path.join(b, name))];
    assert.equal(x.length, y.length, name);
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  }
  return worst;
}

test('pipe colorize on ONNX Runtime writes what tfjs writes, within 1 level per 8-bit channel, with and without a style image', async () => {
  const quiet = { quiet: true, log: null, format: 'png' as const, engine };
  const style = path.join(input, 'p2.png');
  for (const withStyle of [false, true]) {
    const outs = { onnx: path.join(root, `onnx-${withStyle}`), tfjs: path.join(root, `tfjs-${withStyle}`) };
    const s1 = await colorizeGraph({ input, out: outs.onnx, model: modelDir, runtime: 'onnx', ...(withStyle ? { style } : {}), ...quiet });
    const s2 = await colorizeGraph({ input, out: outs.tfjs, model: modelDir, runtime: 'tfjs', ...(withStyle ? { style } : {}), ...quiet });
    assert.equal(s1.written, 3);
    assert.equal(s2.written, 3);
    assert.match(s1.backend, /onnxruntime/);
    assert.match(s2.backend, /^tfjs /);
    assert.ok((await maxLevelDiff(outs.onnx, outs.tfjs)) <= 1, `style ${withStyle}`);
  }
});

test('the ONNX export of a model directory is cached beside it and rebuilt when the weights change', async () => {
  const dir = path.join(root, 'cached');
  await saveColorizer(net, dir);
  const first = await loadModel(dir, { runtime: 'onnx', device: 'cpu' });
  assert.deepEqual(first.trainingScale, { shortSide: 40, crop: 32 }, 'the training scale comes along');
  await first.release();
  const onnxFile = path.join(dir, 'model.onnx');
  const stamp = JSON.parse(await readFile(path.join(dir, 'model.onnx.json'), 'utf8')) as { source: string };
  const made = (await stat(onnxFile)).mtimeMs;
  // Unchanged: reused, not rewritten.
  const again = await loadModel(dir, { runtime: 'onnx', device: 'cpu' });
  assert.deepEqual(again.trainingScale, { shortSide: 40, crop: 32 }, 'read back from the cached export');
  await again.release();
  assert.equal((await stat(onnxFile)).mtimeMs, made);
  // Other weights in the same place: rebuilt.
  await saveColorizer(trainedLike(TINY, 11), dir);
  const rebuilt = await loadModel(dir, { runtime: 'onnx', device: 'cpu' });
  await rebuilt.release();
  const stamp2 = JSON.parse(await readFile(path.join(dir, 'model.onnx.json'), 'utf8')) as { source: string };
  assert.notEqual(stamp2.source, stamp.source);
});

test('a model.onnx from pipe export is a model too; tfjs refuses it with the flag named', async () => {
  const file = path.join(root, 'exported.onnx');
  await writeOnnx(await exportSourceOf(net), file, { trainingScale: { shortSide: 40, crop: 32 } });
  assert.equal(await resolveModelPath(file), file);
  const m = await loadModel(file, { runtime: 'auto', device: 'cpu' });
  assert.deepEqual(m.trainingScale, { shortSide: 40, crop: 32 });
  assert.equal(m.tf, undefined);
  await m.release();
  await assert.rejects(loadModel(file, { runtime: 'tfjs' }), (e: unknown) => e instanceof InvalidOptionError && /--engine tfjs/.test(e.message));
});

test('a model passed in memory runs on tfjs under auto, and on ONNX Runtime when asked', async () => {
  const auto = await loadModel(net, { engine });
  assert.ok(auto.tf);
  assert.deepEqual(auto.trainingScale, { shortSide: 40, crop: 32 });
  await auto.release();
  const onnx = await loadModel(net, { runtime: 'onnx', device: 'cpu' });
  assert.equal(onnx.tf, undefined);
  await onnx.release();
});

test('scaleFromMetadata reads the export\'s JSON and ignores anything else', () => {
  assert.deepEqual(scaleFromMetadata({ 'colorpipe.training_scale': '{"shortSide":256,"crop":224}' }), { shortSide: 256, crop: 224 });
  assert.equal(scaleFromMetadata({}), undefined);
  assert.equal(scaleFromMetadata({ 'colorpipe.training_scale': 'short side 256' }), undefined);
});

test('auto falls back to tfjs, saying why, where onnxruntime-node cannot load', () => {
  // A resolve hook that hides onnxruntime-node, as on an install without it.
  const hooks = `export async function resolve(s, c, next) { if (s === 'onnxruntime-node') { const e = new Error('Cannot find package onnxruntime-node'); e.code = 'ERR_MODULE_NOT_FOUND'; throw e; } return next(s, c); }`;
  const register = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}));`;
  const mod = new URL('../../src/colorize/model.js', import.meta.url).href;
  const main = `const { loadModel } = await import(${JSON.stringify(mod)});` +
    `const m = await loadModel(${JSON.stringify(modelDir)}, { backend: 'cpu' }); console.log(JSON.stringify({ describe: m.describe, tf: !!m.tf })); await m.release();`;
  const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module', '-e', main], { encoding: 'utf8' });
  const out = JSON.parse(r.stdout.trim()) as { describe: string; tf: boolean };
  assert.ok(out.tf, r.stderr);
  assert.match(out.describe, /^tfjs cpu.*\[auto: onnx: /);
});
