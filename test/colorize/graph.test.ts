import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir, stat } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { colorizeGraph, colorizeBuffers } from '../../src/colorize/graph.js';
import { resolveModelPath } from '../../src/colorize/runner.js';
import { lightness } from '../../src/color/lightness.js';
import { imageCost, prepareSettings, processingSize, MAX_AUTO_SIDE } from '../../src/colorize/image.js';
import { decodeSample, decodeSettings } from '../../src/stages/decode.js';
import { InvalidOptionError, Reporter } from '../../src/core/errors.js';
import { setupTfjs, type TfjsBackend } from '../../src/tfjs/backend.js';
import { buildColorizer, colorizerWeights, type Colorizer } from '../../src/tfjs/network.js';
import { saveCheckpoint } from '../../src/train/checkpoint.js';
import { makeConfig } from '../../src/config.js';
import { alphaPng, badInputs, cmykJpeg, jpeg, png16, rotatedJpeg } from '../helpers/images.js';
import { lastJson, pipe } from '../helpers/cli.js';

const TINY = { inputSize: 32, width: 0.125, numClasses: 4 };
let engine: TfjsBackend;
let net: Colorizer;
let root: string;
let runDir: string;

/** A fixture file (fixtures/ made by scripts/make-fixtures.ts) or, without it, a generated stand-in. */
async function fixture(rel: string, make: () => Promise<Buffer>): Promise<Buffer> {
  const p = path.resolve('fixtures', rel);
  return existsSync(p) ? readFile(p) : make();
}

const GOOD: Record<string, () => Promise<Buffer>> = {
  'photo.jpg': () => fixture('images/others/cup.jpg', () => jpeg(98, 64, 1)),
  'rgba.png': () => fixture('bad/rgba.png', () => alphaPng(60, 40)),
  'rot6.jpg': () => fixture('bad/rot6.jpg', () => rotatedJpeg(80, 64)),
  'deep16.png': () => fixture('bad/deep16.png', () => png16(65, 64)),
  'cmyk.jpg': () => fixture('bad/cmyk.jpg', () => cmykJpeg(65, 64)),
};

async function makeInput(dir: string, names: string[] = Object.keys(GOOD)): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const n of names) await writeFile(path.join(dir, n), await GOOD[n]!());
}

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...(await listFiles(path.join(dir, e.name))).map((f) => `${e.name}/${f}`));
    else out.push(e.name);
  }
  return out.sort();
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

const quiet = { quiet: true, log: null } as const;

/**
 * A freshly initialized network's global features are tiny (about 1e-3), so its colours hardly depend on
 * them; scaling the three global FC kernels by 10 each (ReLU and zero biases: the features scale by 1000)
 * gives the global path the weight a trained one has, which the style-transfer test needs.
 */
function amplifyGlobalPath(c: Colorizer): void {
  const tf = engine.tf;
  for (const name of ['gl_fc1', 'gl_fc2', 'gl_fc3']) {
    const layer = c.infer.getLayer(name);
    const [kernel, bias] = layer.getWeights();
    const scaled = tf.mul(kernel!, 10);
    layer.setWeights([scaled, bias!]);
    scaled.dispose();
  }
}

before(async () => {
  engine = await setupTfjs({ backend: 'cpu' });
  net = buildColorizer(TINY, { seed: 5 });
  amplifyGlobalPath(net);
  root = await mkdtemp(path.join(os.tmpdir(), 'cp-colorize-'));
  // What `pipe train` leaves: runs/NAME/{checkpoints/step-N/model.json, model -> checkpoints/step-N, state.json}.
  runDir = path.join(root, 'runs', 'tiny');
  const config = makeConfig({ name: 'tiny', model: TINY });
  await saveCheckpoint({
    runDir,
    weights: await colorizerWeights(net),
    state: { version: 1, step: 1, epoch: 0, samplesSeen: 8, seed: 0, config, backend: 'cpu', data: null, optimizer: { type: 'adam' } },
    optimizer: { iterations: 0, slots: [] },
  });
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

test('a model saved by pipe train (run directory) is found and loaded', async () => {
  assert.equal(await resolveModelPath(runDir), path.join(runDir, 'model', 'model.json'));
  assert.equal(await resolveModelPath(path.join(runDir, 'model')), path.join(runDir, 'model', 'model.json'));
  await assert.rejects(resolveModelPath(path.join(root, 'nope')), InvalidOptionError);
  await assert.rejects(resolveModelPath(root), InvalidOptionError);
});

test('output size and L equal the input\'s for JPEG, PNG with alpha, EXIF-rotated JPEG, 16-bit PNG, CMYK JPEG', async () => {
  const input = path.join(root, 't1', 'in');
  const out = path.join(root, 't1', 'out');
  await makeInput(input);
  const s = await colorizeGraph({ input, out, model: runDir, tfjsBackend: engine, format: 'png', batch: 4, ...quiet });
  assert.deepEqual([s.written, s.skipped, s.failed, s.total], [5, 0, 0, 5]);
  assert.deepEqual(await listFiles(out), ['cmyk.png', 'deep16.png', 'photo.png', 'rgba.png', 'rot6.png']);
  const infer = decodeSettings({ mode: 'infer', minSide: 1 });
  for (const name of Object.keys(GOOD)) {
    const src = await decodeSample({ key: name, url: name, image: await readFile(path.join(input, name)), fields: {} }, infer);
    const file = path.join(out, name.replace(/\.\w+$/, '.png'));
    const meta = await sharp(file).metadata();
    assert.deepEqual([meta.width, meta.height], [src.width, src.height], name);
    assert.equal(meta.orientation, undefined, `${name}: no orientation tag`);
    assert.ok(meta.icc && meta.icc.length > 0, `${name}: sRGB profile`);
    const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
    const rgb = new Uint8Array(info.width * info.height * 3);
    for (let i = 0; i < info.width * info.height; i++) for (let c = 0; c < 3; c++) rgb[i * 3 + c] = data[i * info.channels + c]!;
    const dL = maxAbsDiff(lightness(rgb).map((v) => v * 100), lightness(src.rgb).map((v) => v * 100));
    assert.ok(dL <= 1, `${name}: max |dL| ${dL}`);
    if (src.alpha) {
      assert.equal(info.channels, 4, `${name}: alpha carried over`);
      for (let i = 0; i < src.alpha.length; i++) assert.equal(data[i * 4 + 3], src.alpha[i]);
    } else {
      assert.equal(info.channels, 3);
    }
    // The network put some colour in: not the grey image of L.
    let chroma = 0;
    for (let i = 0; i < rgb.length; i += 3) chroma += Math.abs(rgb[i]! - rgb[i + 1]!) + Math.abs(rgb[i + 1]! - rgb[i + 2]!);
    assert.ok(chroma / (rgb.length / 3) > 0.5, `${name}: colourless output`);
  }
  const rot = await sharp(path.join(input, 'rot6.jpg')).metadata();
  const rotOut = await sharp(path.join(out, 'rot6.png')).metadata();
  assert.deepEqual([rotOut.width, rotOut.height], [rot.height, rot.width], 'rotated once');
  // --resolution N: a smaller local input, the same output size and L.
  const outN = path.join(root, 't1', 'outN');
  const sN = await colorizeGraph({ input, out: outN, model: net, tfjsBackend: engine, format: 'png', resolution: 16, ...quiet });
  assert.equal(sN.written, 5);
  const a = await sharp(path.join(out, 'photo.png')).raw().toBuffer({ resolveWithObject: true });
  const b = await sharp(path.join(outN, 'photo.png')).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([b.info.width, b.info.height], [a.info.width, a.info.height]);
  assert.ok(maxAbsDiff(lightness(b.data), lightness(a.data)) * 100 <= 1.5);
  assert.notDeepEqual(b.data, a.data);
});

test('format same keeps each format; the loaded run gives the in-memory model\'s pixels', async () => {
  const input = path.join(root, 't2', 'in');
  await makeInput(input, ['photo.jpg', 'rgba.png', 'deep16.png']);
  const out = path.join(root, 't2', 'out');
  const s = await colorizeGraph({ input, out, model: runDir, tfjsBackend: engine, ...quiet });
  assert.equal(s.written, 3);
  assert.deepEqual(await listFiles(out), ['deep16.png', 'photo.jpg', 'rgba.png']);
  assert.equal((await sharp(path.join(out, 'photo.jpg')).metadata()).format, 'jpeg');
  assert.equal((await sharp(path.join(out, 'rgba.png')).metadata()).format, 'png');
  const mem = path.join(root, 't2', 'mem');
  await colorizeGraph({ input, out: mem, model: net, tfjsBackend: engine, ...quiet });
  for (const f of ['rgba.png', 'deep16.png']) {
    assert.deepEqual(await sharp(path.join(mem, f)).raw().toBuffer(), await sharp(path.join(out, f)).raw().toBuffer(), f);
  }
});

test('a bad file among good ones is reported while the good ones are written; exit status 1 (CLI, --json)', async () => {
  const input = path.join(root, 't3', 'in');
  await makeInput(input, ['photo.jpg', 'rgba.png', 'cmyk.jpg']);
  const bad = await fixture('bad/corrupt.jpg', async () => (await badInputs()).truncated!);
  await writeFile(path.join(input, 'sub-corrupt.jpg'), bad);
  const out = path.join(root, 't3', 'out');
  const r = pipe(['colorize', '--in', input, '--out', out, '--model', runDir, '--backend', 'cpu', '--quiet', '--json']);
  assert.equal(r.status, 1, r.stderr);
  const summary = lastJson<{ written: number; skipped: number; failed: number; total: number; failures: { path: string; reason: string }[] }>(r.stdout);
  assert.deepEqual([summary.written, summary.skipped, summary.failed, summary.total], [3, 0, 1, 4]);
  assert.equal(summary.failures[0].path, path.join(await realpathOf(input), 'sub-corrupt.jpg'));
  assert.ok(summary.failures[0].reason.length > 0);
  assert.match(r.stderr, /^colorpipe: skipped .*sub-corrupt\.jpg \(/m, '--quiet hides only the progress bar, not the skip lines');
  assert.match(r.stderr, /3 written, 0 skipped, 1 failed/);
  assert.deepEqual(await listFiles(out), ['cmyk.jpg', 'photo.jpg', 'rgba.png']);

  // A rerun skips what exists (and retries the bad one); --overwrite rewrites.
  const before = await Promise.all(['cmyk.jpg', 'photo.jpg'].map((f) => stat(path.join(out, f))));
  const again = await colorizeGraph({ input, out, model: runDir, tfjsBackend: engine, ...quiet });
  assert.deepEqual([again.written, again.skipped, again.failed], [0, 3, 1]);
  const after = await Promise.all(['cmyk.jpg', 'photo.jpg'].map((f) => stat(path.join(out, f))));
  assert.deepEqual(after.map((s) => s.mtimeMs), before.map((s) => s.mtimeMs));
  assert.deepEqual(after.map((s) => s.ino), before.map((s) => s.ino));
  const over = await colorizeGraph({ input, out, model: runDir, tfjsBackend: engine, overwrite: true, ...quiet });
  assert.deepEqual([over.written, over.skipped, over.failed], [3, 0, 1]);
  const replaced = await stat(path.join(out, 'photo.jpg'));
  assert.notEqual(replaced.ino, before[1]!.ino);
  assert.ok(!(await listFiles(out)).some((f) => f.includes('.tmp-')), 'no temp files left');

  // onError fail stops at the first bad input.
  const failRun = await colorizeGraph({ input, out: path.join(root, 't3', 'out-fail'), model: net, tfjsBackend: engine, onError: 'fail', batch: 1, ...quiet });
  assert.ok(failRun.stopped);
  assert.match(failRun.stopped!, /sub-corrupt\.jpg/);
  assert.equal(failRun.failed, 1);
});

async function realpathOf(p: string): Promise<string> {
  const { realpath } = await import('node:fs/promises');
  return realpath(p);
}

test('--out equal to --in or inside it is refused before anything is written', async () => {
  const input = path.join(root, 't4', 'in');
  await makeInput(input, ['photo.jpg']);
  await assert.rejects(colorizeGraph({ input, out: input, model: net, tfjsBackend: engine, ...quiet }), /Refusing to write into the input: --out .* is --in/);
  await assert.rejects(colorizeGraph({ input, out: path.join(input, 'colorized'), model: net, tfjsBackend: engine, ...quiet }), InvalidOptionError);
  // Through a symlink to the input, too.
  const { symlink } = await import('node:fs/promises');
  await symlink(input, path.join(root, 't4', 'alias'));
  await assert.rejects(colorizeGraph({ input, out: path.join(root, 't4', 'alias', 'x'), model: net, tfjsBackend: engine, ...quiet }), /inside --in/);
  // A single file as input: writing over it is refused.
  await assert.rejects(colorizeGraph({ input: path.join(input, 'photo.jpg'), out: path.join(input, 'photo.jpg'), model: net, tfjsBackend: engine, ...quiet }), InvalidOptionError);
  assert.deepEqual(await listFiles(input), ['photo.jpg']);
  // The CLI says so and exits non-zero.
  const r = pipe(['colorize', '--in', input, '--out', path.join(input, 'o'), '--model', runDir, '--backend', 'cpu']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /inside --in/);
  assert.deepEqual(await listFiles(input), ['photo.jpg']);
});

test('style transfer changes ab; both results are valid images with the input\'s L', async () => {
  const input = path.join(root, 't5', 'in');
  await makeInput(input, ['photo.jpg']);
  const refA = path.join(root, 't5', 'refA.jpg');
  const refB = path.join(root, 't5', 'refB.jpg');
  await writeFile(refA, await fixture('images/renewable/dam1.jpg', () => jpeg(90, 60, 7)));
  await writeFile(refB, await fixture('images/tools/hammer1.jpg', () => rotatedJpeg(50, 70)));
  const outs: Buffer[] = [];
  for (const [i, style] of [refA, refB].entries()) {
    const out = path.join(root, 't5', `out${i}`);
    const s = await colorizeGraph({ input, out, model: runDir, tfjsBackend: engine, style, format: 'png', ...quiet });
    assert.equal(s.written, 1);
    const { data, info } = await sharp(path.join(out, 'photo.png')).raw().toBuffer({ resolveWithObject: true });
    const src = await sharp(path.join(input, 'photo.jpg')).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height], [src.info.width, src.info.height]);
    assert.ok(maxAbsDiff(lightness(data), lightness(src.data)) * 100 <= 1);
    outs.push(data);
  }
  assert.notDeepEqual(outs[0], outs[1]);
  let diff = 0;
  for (let i = 0; i < outs[0]!.length; i++) diff += Math.abs(outs[0]![i]! - outs[1]![i]!);
  assert.ok(diff / outs[0]!.length > 0.05, `mean |diff| ${diff / outs[0]!.length}`);
  await assert.rejects(colorizeGraph({ input, out: path.join(root, 't5', 'bad'), model: net, tfjsBackend: engine, style: path.join(root, 'nope.jpg'), ...quiet }), /style image/);
});

test('--rank/--world split the sorted files into disjoint, stable parts', async () => {
  const input = path.join(root, 't6', 'in');
  await mkdir(path.join(input, 'd'), { recursive: true });
  const photo = await GOOD['photo.jpg']!();
  const names = ['a.jpg', 'b.jpg', 'c.jpg', 'd/e.jpg', 'f.jpg'];
  for (const n of names) await writeFile(path.join(input, n), photo);
  const parts: string[][] = [];
  for (const rank of [0, 1]) {
    const out = path.join(root, 't6', 'out');
    const before = existsSync(out) ? await listFiles(out) : [];
    const s = await colorizeGraph({ input, out, model: net, tfjsBackend: engine, rank, world: 2, resolution: 8, ...quiet });
    const now = await listFiles(out);
    parts.push(now.filter((f) => !before.includes(f)));
    assert.equal(s.total, rank === 0 ? 3 : 2);
  }
  assert.deepEqual(parts, [['a.jpg', 'c.jpg', 'f.jpg'], ['b.jpg', 'd/e.jpg']]);
  await assert.rejects(colorizeGraph({ input, out: path.join(root, 't6', 'x'), model: net, tfjsBackend: engine, rank: 2, world: 2, ...quiet }), InvalidOptionError);
});

test('colorizeBuffers: buffers in, colorized buffers out; a bad one is reported', async () => {
  const reporter = new Reporter({ log: null });
  const photo = await GOOD['photo.jpg']!();
  const inputs = [
    { name: 'one.jpg', data: photo },
    { name: 'broken.jpg', data: Buffer.from('not an image') },
    { name: 'two.png', data: await GOOD['rgba.png']!() },
  ];
  const got = [];
  for await (const r of colorizeBuffers(inputs, { model: net, tfjsBackend: engine, reporter, format: 'webp' })) got.push(r);
  got.sort((a, b) => a.index - b.index);
  assert.deepEqual(got.map((r) => [r.name, r.outputName, r.index, r.format]), [['one.jpg', 'one.webp', 0, 'webp'], ['two.png', 'two.webp', 2, 'webp']]);
  const m = await sharp(got[0]!.data).metadata();
  assert.deepEqual([m.format, m.width, m.height], ['webp', got[0]!.width, got[0]!.height]);
  assert.equal((await sharp(got[1]!.data).metadata()).channels, 4);
  assert.equal(reporter.total, 1);
  assert.equal(reporter.records[0]!.key, 'broken.jpg');
});

test("the default resolution is the model's training scale ('auto'); 'full' and N override it", async () => {
  const photo = await GOOD['photo.jpg']!();
  const { width, height } = await sharp(photo).metadata();
  const scaled: Colorizer = { ...net, trainingScale: { shortSide: 16, crop: 16 } };
  const run = async (model: Colorizer, resolution?: 'full' | number) => {
    const out: Buffer[] = [];
    for await (const r of colorizeBuffers([{ name: 'p.jpg', data: photo }], { model, tfjsBackend: engine, format: 'png', resolution, log: null })) out.push(r.data);
    assert.equal(out.length, 1);
    return out[0]!;
  };
  // The long side N that gives the same processing size as "short side 16".
  const atScale = processingSize(width!, height!, { shortSide: 16, maxSide: MAX_AUTO_SIDE });
  const N = Math.max(atScale.width, atScale.height);
  assert.deepEqual(processingSize(width!, height!, N), atScale);
  const auto = await run(scaled);
  assert.deepEqual(auto, await run(net, N), 'auto = the training scale');
  const full = await run(scaled, 'full');
  assert.notDeepEqual(auto, full);
  assert.deepEqual(full, await run(net), 'a model without a recorded scale runs at full size (small images)');
});

test('an early break in colorizeBuffers stops the source', async () => {
  const photo = await GOOD['photo.jpg']!();
  let pulled = 0;
  let closed = false;
  const src = async function* () {
    try {
      for (let i = 0; i < 200; i++) {
        pulled++;
        yield { name: `p${i}.jpg`, data: photo };
      }
    } finally {
      closed = true;
    }
  };
  for await (const _ of colorizeBuffers(src(), { model: net, tfjsBackend: engine, batch: 2, resolution: 16, log: null })) break;
  assert.ok(closed);
  assert.ok(pulled < 40, `pulled ${pulled}`);
});

test('an abort (Ctrl-C) stops the run: whole files only, the summary says interrupted', async () => {
  const input = path.join(root, 't7', 'in');
  await mkdir(input, { recursive: true });
  const photo = await GOOD['photo.jpg']!();
  for (let i = 0; i < 64; i++) await writeFile(path.join(input, `p${String(i).padStart(2, '0')}.jpg`), photo);
  const out = path.join(root, 't7', 'out');
  const stop = new AbortController();
  const s = await colorizeGraph({
    input, out, model: net, tfjsBackend: engine, batch: 1, resolution: 16, stop: stop.signal, ...quiet,
    onImage: () => stop.abort(),
  });
  assert.equal(s.stopped, 'interrupted');
  assert.ok(s.written >= 1 && s.written < 64, `written ${s.written}`);
  assert.equal(s.failed, 0);
  const files = await listFiles(out);
  assert.equal(s.written, files.length, 'every file on disk is counted');
  assert.ok(!files.some((f) => f.includes('.tmp-')), files.join(' '));
  for (const f of files) assert.equal((await sharp(path.join(out, f)).metadata()).width, 98, f);
  // A rerun finishes the job, skipping what is there.
  const rest = await colorizeGraph({ input, out, model: net, tfjsBackend: engine, resolution: 16, ...quiet });
  assert.deepEqual([rest.skipped, rest.written, rest.failed], [files.length, 64 - files.length, 0]);
});

test('bad options are usage errors', async () => {
  const input = path.join(root, 't4', 'in');
  await assert.rejects(colorizeGraph({ input, out: path.join(root, 'o'), model: net, tfjsBackend: engine, batch: 0, ...quiet }), InvalidOptionError);
  await assert.rejects(colorizeGraph({ input, out: path.join(root, 'o'), model: net, tfjsBackend: engine, resolution: 3, ...quiet }), InvalidOptionError);
  await assert.rejects(colorizeGraph({ input, out: path.join(root, 'o'), model: net, tfjsBackend: engine, format: 'bmp' as never, ...quiet }), InvalidOptionError);
  await assert.rejects(colorizeGraph({ input: path.join(root, 'missing'), out: path.join(root, 'o'), model: net, tfjsBackend: engine, ...quiet }), /does not exist/);
  await assert.rejects(colorizeGraph({ input, out: path.join(root, 'o'), model: path.join(root, 'nomodel'), tfjsBackend: engine, ...quiet }), InvalidOptionError);
});

test('temps a kill -9 left anywhere in --out are removed on start; a 255-byte file name is written', { timeout: 120_000 }, async () => {
  const input = path.join(root, 't-kill', 'in');
  await makeInput(input, ['photo.jpg']);
  const long = `${'a'.repeat(251)}.jpg`; // 255 bytes: the longest name ext4 allows
  await mkdir(path.join(input, 'sub'));
  await writeFile(path.join(input, 'sub', long), await GOOD['photo.jpg']!());
  const out = path.join(root, 't-kill', 'out');
  // A writer killed mid-write (SIGKILL) leaves its temps in out/ and out/sub/.
  const atomic = new URL('../../src/core/atomic.js', import.meta.url).href;
  const killed = spawnSync(process.execPath, ['--input-type=module', '-e',
    `const { tempPathFor } = await import(${JSON.stringify(atomic)}); const fs = await import('node:fs');
     for (const d of [${JSON.stringify(out)}, ${JSON.stringify(path.join(out, 'sub'))}]) { fs.mkdirSync(d, { recursive: true }); fs.writeFileSync(tempPathFor(d + '/photo.jpg'), 'partial'); }
     process.kill(process.pid, 'SIGKILL');`]);
  assert.equal(killed.signal, 'SIGKILL');
  assert.equal((await listFiles(out)).filter((f) => f.includes('.tmp-')).length, 2);
  const s = await colorizeGraph({ input, out, model: net, tfjsBackend: engine, ...quiet });
  assert.deepEqual([s.written, s.failed], [2, 0], JSON.stringify(s.failures));
  assert.deepEqual(await listFiles(out), ['photo.jpg', `sub/${long}`]);
  // A rerun with nothing to do still cleans up.
  await writeFile(path.join(out, 'sub', '.tmp-999999999-0-00'), 'x');
  assert.equal((await colorizeGraph({ input, out, model: net, tfjsBackend: engine, ...quiet })).skipped, 2);
  assert.deepEqual(await listFiles(out), ['photo.jpg', `sub/${long}`]);
});

test('the memory budget bounds the images in flight by their pixels: under a budget of one image they go one at a time, all written', async () => {
  const names = ['photo.jpg', 'rgba.png', 'rot6.jpg', 'deep16.png', 'cmyk.jpg'];
  const inputs = await Promise.all(names.map(async (name) => ({ name, data: await GOOD[name]!() })));
  const settings = prepareSettings({ resolution: 'full', globalSize: 32 });
  const costs = await Promise.all(inputs.map((i) => imageCost(i.data, settings)));
  const run = async (memoryBudget?: number) => {
    const dir = await mkdtemp(path.join(root, 'budget-'));
    await Promise.all(inputs.map((i) => writeFile(path.join(dir, i.name), i.data)));
    return colorizeGraph({ input: dir, out: `${dir}-out`, model: net, tfjsBackend: engine, resolution: 'full', memoryBudget, threads: 2, ...quiet });
  };
  const tight = await run(1);
  assert.equal(tight.written, names.length);
  assert.equal(tight.timings.inFlightPeakBytes, Math.max(...costs), 'one image at a time: the peak is the largest one');
  const roomy = await run();
  assert.equal(roomy.written, names.length);
  const peak = roomy.timings.inFlightPeakBytes;
  assert.ok(peak > Math.max(...costs) && peak <= costs.reduce((a, b) => a + b), `several at once under the default budget (${peak})`);
});

test('under a budget of one image at a time, a bad input and a failed write give their memory back: the run finishes', { timeout: 120_000 }, async () => {
  // Any lease not given back would hold every image after it forever (one at a time): the run would hang.
  const dir = await mkdtemp(path.join(root, 'leases-'));
  const bad = await badInputs();
  await writeFile(path.join(dir, 'a-truncated.jpg'), bad.truncated!);
  await writeFile(path.join(dir, 'b-good.jpg'), await jpeg(40, 32, 1));
  await mkdir(path.join(dir, 'c'));
  await writeFile(path.join(dir, 'c', 'x.jpg'), await jpeg(40, 32, 2));
  await writeFile(path.join(dir, 'd-good.jpg'), await jpeg(40, 32, 3));
  const out = `${dir}-out`;
  await mkdir(out);
  await writeFile(path.join(out, 'c'), 'a file where the output folder goes');
  const s = await colorizeGraph({ input: dir, out, model: net, tfjsBackend: engine, memoryBudget: 1, threads: 2, ...quiet });
  assert.equal(s.written, 2);
  assert.deepEqual(s.failures.map((f) => [path.basename(f.path), f.stage]).sort(), [['a-truncated.jpg', 'decode'], ['x.jpg', 'write']]);
  assert.match(s.failures.find((f) => f.stage === 'write')!.reason, /a part of the path is a file|a file is in the way/);
});

test('--resolution full over the tile size runs in windows: the same pixels as one pass, within one level', async () => {
  const photo = await jpeg(600, 400, 4);
  const run = async (tile: number) => {
    const out: Buffer[] = [];
    for await (const r of colorizeBuffers([{ name: 'p.png', data: photo }], { model: net, tfjsBackend: engine, resolution: 'full', tile, log: null })) out.push(r.data);
    return sharp(out[0]!).raw().toBuffer();
  };
  const one = await run(4096);
  const tiled = await run(288);
  assert.ok(maxAbsDiff(one, tiled) <= 1, `max diff ${maxAbsDiff(one, tiled)}`);
  await assert.rejects(run(280), /at least 288 for options\.tile/);
});
