import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { loadRunner, resolveModelPath, type Runner } from '../../src/colorize/runner.js';
import { colorizeGraph } from '../../src/colorize/graph.js';
import { setupTfjs, type TfjsBackend } from '../../src/tfjs/backend.js';
import { saveColorizer, type Colorizer, exportSourceOf } from '../../src/tfjs/network.js';
import { exportOnnx, writeOnnx } from '../../src/onnx/export.js';
import { loadOnnxColorizer } from '../../src/onnx/session.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { trainedLike } from '../onnx/helpers.js';

const TINY = { inputSize: 32, width: 0.125, numClasses: 4 };
let engine: TfjsBackend;
let net: Colorizer;
let root: string;
let modelDir: string;
let input: string;

before(async () => {
  engine = await setupTfjs({ backend: 'cpu' });
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

test('a model folder on the onnx runtime is exported and the export cached beside its model.json', async (t) => {
  const dir = path.join(root, 'cached');
  await saveColorizer(net, dir);
  const r = await loadRunner(dir, { runtime: 'onnx', device: 'cpu' });
  t.after(() => r.release());
  assert.match(r.describe, /^onnxruntime /);
  assert.equal(r.globalSize, 32);
  assert.deepEqual(r.trainingScale, { shortSide: 40, crop: 32 }, 'the training scale comes along');
  assert.ok((await stat(path.join(dir, 'model.onnx'))).isFile());
  assert.ok((await stat(path.join(dir, 'model.onnx.json'))).isFile());
});

test('a model.onnx from pipe export is a model too; tfjs refuses it with the flag named', async (t) => {
  const file = path.join(root, 'exported.onnx');
  await writeOnnx(await exportSourceOf(net), file, { trainingScale: { shortSide: 40, crop: 32 } });
  assert.equal(await resolveModelPath(file), file);
  const m = await loadRunner(file, { runtime: 'auto', device: 'cpu' });
  t.after(() => m.release());
  assert.deepEqual(m.trainingScale, { shortSide: 40, crop: 32 });
  assert.match(m.describe, /^onnxruntime /);
  await assert.rejects(loadRunner(file, { runtime: 'tfjs' }), (e: unknown) => e instanceof InvalidOptionError && /--engine tfjs/.test(e.message));
});

test('a model passed in memory runs on tfjs under auto, and on ONNX Runtime when asked', async (t) => {
  const auto = await loadRunner(net, { tfjsBackend: engine });
  t.after(() => auto.release());
  assert.match(auto.describe, /^tfjs cpu/);
  assert.deepEqual(auto.trainingScale, { shortSide: 40, crop: 32 });
  const onnx = await loadRunner(net, { runtime: 'onnx', device: 'cpu' });
  t.after(() => onnx.release());
  assert.match(onnx.describe, /^onnxruntime /);
  assert.deepEqual(onnx.trainingScale, { shortSide: 40, crop: 32 });
  await assert.rejects(loadRunner(net.infer, { runtime: 'onnx', device: 'cpu' }), /a bare LayersModel cannot be exported/);
});

test('a runner or an ONNX colorizer passed in is used as it is and left to its owner', async (t) => {
  const session = await loadOnnxColorizer(exportOnnx(await exportSourceOf(net)), { device: 'cpu', threads: 1 });
  t.after(() => session.release());
  await assert.rejects(loadRunner(session, { runtime: 'tfjs' }), /--engine tfjs/);
  const mine = await loadRunner(session);
  let runs = 0;
  const counted: Runner = { ...mine, describe: 'counted', run: (l, g, s) => (runs++, mine.run(l, g, s)), release: () => assert.fail('released by colorize') };
  const s = await colorizeGraph({ input, out: path.join(root, 'passed'), model: counted, quiet: true, log: null, format: 'png' });
  assert.equal(s.written, 3);
  assert.equal(s.backend, 'counted');
  assert.ok(runs > 0);
  // Its session is still open: the colorizer's owner releases it.
  await (await loadRunner(session)).run(new Float32Array(64), new Float32Array(32 * 32), { batch: 1, height: 8, width: 8, sharedGlobal: false });
});

test('auto falls back to tfjs, saying why, where onnxruntime-node cannot load', () => {
  // A resolve hook that hides onnxruntime-node, as on an install without it.
  const hooks = `export async function resolve(s, c, next) { if (s === 'onnxruntime-node') { const e = new Error('Cannot find package onnxruntime-node'); e.code = 'ERR_MODULE_NOT_FOUND'; throw e; } return next(s, c); }`;
  const register = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hooks)}));`;
  const mod = new URL('../../src/colorize/runner.js', import.meta.url).href;
  const main = `const { loadRunner } = await import(${JSON.stringify(mod)});` +
    `const m = await loadRunner(${JSON.stringify(modelDir)}, { backend: 'cpu' }); console.log(JSON.stringify({ describe: m.describe })); await m.release();`;
  const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(register)}`, '--input-type=module', '-e', main], { encoding: 'utf8' });
  const out = JSON.parse(r.stdout.trim()) as { describe: string };
  assert.match(out.describe, /^tfjs cpu.*\[auto: onnx: /, r.stderr);
});
