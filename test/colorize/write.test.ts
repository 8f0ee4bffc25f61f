import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile, mkdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import {
  composeRgb, encodeImage, outputFor, write, writeOutput, isInside, realPathOf, composeImage,
} from '../../src/colorize/write.js';
import { lightness, createColorizePool } from '../../src/colorize/prepare.js';
import type { PredictedImage } from '../../src/colorize/predict.js';
import { mergeLab, rgbToLab, splitLab } from '../../src/color/lab.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { InvalidOptionError, Reporter } from '../../src/core/errors.js';
import { colourfulRgb } from '../helpers/images.js';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Random L (L / 100) and normalized ab over the whole range, deterministic. */
function randomPlanes(n: number, seed: number): { L: Float32Array; ab: Float32Array } {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const L = new Float32Array(n);
  const ab = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) L[i] = next();
  for (let i = 0; i < 2 * n; i++) ab[i] = next();
  return { L, ab };
}

test('composeRgb with an image\'s own ab at full size gives it back, byte for byte', () => {
  const w = 24, h = 16;
  const rgb = colourfulRgb(w, h, 3);
  const { L, ab } = splitLab(rgb);
  assert.deepEqual(composeRgb(L, w, h, ab, w, h), new Uint8Array(rgb));
  // Random colours, saturated ones at the gamut's edge included (float32 planes put them 1e-5 outside).
  const n = 256 * 256;
  const rnd = new Uint8Array(n * 3);
  let s = 12345;
  for (let i = 0; i < rnd.length; i++) rnd[i] = (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) >>> 24;
  const p = splitLab(rnd);
  const out = composeRgb(p.L, 256, 256, p.ab, 256, 256);
  assert.equal(maxAbsDiff(out, rnd), 0);
  assert.deepEqual(out, mergeLab(p.L, p.ab));
});

test('composeRgb keeps L where the predicted colour is out of gamut (plain clipping would not)', () => {
  const n = 64 * 64;
  const { L, ab } = randomPlanes(n, 7);
  const out = composeRgb(L, 64, 64, ab, 64, 64);
  const Lout = lightness(out);
  const dL = maxAbsDiff(Lout.map((v) => v * 100), L.map((v) => v * 100));
  assert.ok(dL <= 1, `max |dL| ${dL}`);
  // The same colours clipped channel by channel (src/color.ts mergeLab) lose L by far more.
  const clipped = lightness(mergeLab(L, ab));
  assert.ok(maxAbsDiff(clipped.map((v) => v * 100), L.map((v) => v * 100)) > 5);
  // In-gamut colours are untouched: a mid grey L with small ab equals mergeLab.
  const L2 = new Float32Array(16).fill(0.5);
  const ab2 = new Float32Array(32).map((_, i) => (128 + (i % 2 ? 10 : -8)) / 255);
  assert.deepEqual(composeRgb(L2, 4, 4, ab2, 4, 4), mergeLab(L2, ab2));
});

test('composeRgb upsamples ab bilinearly (half-pixel centres) to the output size', () => {
  // ab 2x1: a = -20 then +20 (b = 0); output 4x1 at L 60: a at x = 0..3 is -20, -10, 10, 20.
  const ab = Float32Array.of((-20 + 128) / 255, 128 / 255, (20 + 128) / 255, 128 / 255);
  const L = new Float32Array(4).fill(0.6);
  const out = composeRgb(L, 4, 1, ab, 2, 1);
  const lab = rgbToLab(out);
  const a = [lab[1]!, lab[4]!, lab[7]!, lab[10]!];
  const want = [-20, -10, 10, 20];
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(a[i]! - want[i]!) < 1.5, `a ${a.join(',')}`);
  assert.throws(() => composeRgb(L, 4, 1, ab, 3, 1), RangeError);
  assert.throws(() => composeRgb(L, 5, 1, ab, 2, 1), RangeError);
});

test('outputFor: same keeps the format by extension, a conversion changes the extension', () => {
  assert.deepEqual(outputFor('a/b.JPG', 'same', null), { relPath: 'a/b.JPG', format: 'jpeg' });
  assert.deepEqual(outputFor('a/b.jpeg', 'jpg', 'jpeg'), { relPath: 'a/b.jpeg', format: 'jpeg' });
  assert.deepEqual(outputFor('a/b.jpg', 'png', null), { relPath: 'a/b.png', format: 'png' });
  assert.deepEqual(outputFor('b.tiff', 'webp', null), { relPath: 'b.webp', format: 'webp' });
  assert.deepEqual(outputFor('noext', 'same', 'jpeg'), { relPath: 'noext.jpg', format: 'jpeg' });
  assert.deepEqual(outputFor('x.dat', 'same', null), { relPath: 'x.png', format: 'png' });
  assert.deepEqual(outputFor('v1.2/photo', 'png', null), { relPath: 'v1.2/photo.png', format: 'png' });
});

test('encodeImage: sRGB profile, no orientation, alpha kept (flattened for JPEG)', async () => {
  const w = 8, h = 4;
  const rgb = colourfulRgb(w, h);
  const alpha = new Uint8Array(w * h).map((_, i) => (i % w) * 30);
  const pngBuf = await encodeImage({ rgb, width: w, height: h, alpha, format: 'png', quality: 90 });
  const m = await sharp(pngBuf).metadata();
  assert.deepEqual([m.format, m.width, m.height, m.channels, m.orientation], ['png', w, h, 4, undefined]);
  assert.ok(m.icc && m.icc.length > 0);
  const raw = await sharp(pngBuf).raw().toBuffer();
  for (let i = 0; i < w * h; i++) assert.equal(raw[i * 4 + 3], alpha[i]);
  const jpg = await encodeImage({ rgb, width: w, height: h, alpha, format: 'jpeg', quality: 90 });
  const mj = await sharp(jpg).metadata();
  assert.deepEqual([mj.format, mj.channels], ['jpeg', 3]);
  // Alpha 0 at x = 0: flattened onto white.
  const rj = await sharp(jpg).raw().toBuffer();
  assert.ok(rj[0]! > 200 && rj[1]! > 200 && rj[2]! > 200);
  for (const f of ['webp', 'tiff', 'gif', 'avif'] as const) {
    const b = await encodeImage({ rgb, width: w, height: h, format: f, quality: 80 });
    assert.equal((await sharp(b).metadata()).format, f === 'avif' ? 'heif' : f);
  }
});

test('writeOutput: atomic, never clobbers without overwrite, leaves no temp file', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cp-write-'));
  try {
    const target = path.join(dir, 'sub', 'a.png');
    assert.equal(await writeOutput(target, Buffer.from('one'), false), 'written');
    assert.equal(await writeOutput(target, Buffer.from('two'), false), 'exists');
    assert.equal(await readFile(target, 'utf8'), 'one');
    assert.equal(await writeOutput(target, Buffer.from('three'), true), 'written');
    assert.equal(await readFile(target, 'utf8'), 'three');
    assert.deepEqual(await readdir(path.join(dir, 'sub')), ['a.png']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('isInside and realPathOf resolve symlinks and missing tails', async () => {
  const dir = await realPathOf(await mkdtemp(path.join(os.tmpdir(), 'cp-real-')));
  try {
    assert.ok(isInside(path.join(dir, 'a', 'b'), dir));
    assert.ok(isInside(dir, dir));
    assert.ok(!isInside(dir + '-other', dir));
    assert.ok(!isInside(path.dirname(dir), dir));
    assert.equal(await realPathOf(path.join(dir, 'x', 'y')), path.join(dir, 'x', 'y'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

function predicted(key: string, w: number, h: number, seed: number, extra: Partial<PredictedImage> = {}): PredictedImage {
  const rgb = colourfulRgb(w, h, seed);
  const L = lightness(rgb);
  const abW = Math.ceil(w / 2), abH = Math.ceil(h / 2);
  const ab = new Float32Array(abW * abH * 2).map((_, i) => (128 + ((i * 7) % 40) - 20) / 255);
  return {
    key, relPath: `${key}.jpg`, width: w, height: h, L, localWidth: abW * 2, localHeight: abH * 2, local: new Float32Array(0),
    globalSize: 8, global: new Float32Array(0), format: 'jpeg', ab, abWidth: abW, abHeight: abH, ...extra,
  };
}

for (const mode of ['inline', 'pool'] as const) {
  test(`write stage (${mode}): files under out at the relative path, L kept, existing ones skipped`, async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cp-writes-'));
    const pool = mode === 'pool' ? createColorizePool(2) : 'inline';
    try {
      const out = path.join(dir, 'out');
      await mkdir(out, { recursive: true });
      await writeFile(path.join(out, 'c.png'), 'existing');
      const items = [
        predicted('a', 20, 12, 1, { relPath: 'sub/a.jpg' }),
        predicted('b', 9, 7, 2, { relPath: 'b.jpg' }),
        predicted('c', 8, 8, 3, { relPath: 'c.jpg' }),
      ];
      const wantL = items.map((p) => Float32Array.from(p.L));
      const res = await collect(pipeline(items, write({ out, format: 'png', pool })));
      assert.deepEqual(res.map((r) => [r.relPath, r.status]), [['sub/a.png', 'written'], ['b.png', 'written'], ['c.png', 'skipped']]);
      assert.equal(await readFile(path.join(out, 'c.png'), 'utf8'), 'existing');
      for (const [i, rel] of [[0, 'sub/a.png'], [1, 'b.png']] as const) {
        const { data, info } = await sharp(path.join(out, rel)).raw().toBuffer({ resolveWithObject: true });
        assert.deepEqual([info.width, info.height], [items[i]!.width, items[i]!.height]);
        const dL = maxAbsDiff(lightness(data).map((v) => v * 100), wantL[i]!.map((v) => v * 100));
        assert.ok(dL <= 1, `max |dL| ${dL}`);
      }
      assert.deepEqual((await readdir(out)).sort(), ['b.png', 'c.png', 'sub']);
    } finally {
      if (pool !== 'inline') await pool.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test('write stage: a target inside the input is refused and reported; out null returns bytes', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cp-writein-'));
  try {
    const input = path.join(dir, 'in');
    await mkdir(input);
    const reporter = new Reporter({ log: null });
    // out contains in: 'in/x.jpg' relative to out lands inside the input.
    const res = await collect(pipeline([predicted('x', 8, 8, 1, { relPath: 'in/x.jpg' }), predicted('y', 8, 8, 2, { relPath: 'y.jpg' })],
      write({ out: dir, input, pool: 'inline', format: 'same' }), { reporter }));
    assert.deepEqual(res.map((r) => r.relPath), ['y.jpg']);
    assert.equal(reporter.total, 1);
    assert.match(reporter.records[0]!.reason, /inside the input/);
    assert.deepEqual(await readdir(input), []);
    const mem = await collect(pipeline([predicted('z', 8, 6, 3)], write({ out: null, format: 'webp', pool: 'inline' })));
    assert.equal(mem[0]!.status, 'encoded');
    assert.equal((await sharp(mem[0]!.data!).metadata()).format, 'webp');
    assert.equal(mem[0]!.relPath, 'z.webp');
    await assert.rejects(stat(path.join(dir, 'z.webp')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('composeImage without a format returns the RGB', async () => {
  const p = predicted('q', 10, 6, 4);
  const r = await composeImage({ L: p.L, width: 10, height: 6, ab: p.ab, abWidth: p.abWidth, abHeight: p.abHeight, format: null, quality: 90 });
  assert.equal(r.rgb?.length, 10 * 6 * 3);
  assert.equal(r.data, undefined);
});

test('options are validated at once', () => {
  assert.throws(() => write({ out: '' }), InvalidOptionError);
  assert.throws(() => write({ out: 'x', format: 'bmp' as never }), InvalidOptionError);
  assert.throws(() => write({ out: 'x', quality: 0 }), InvalidOptionError);
  assert.throws(() => write({ out: 'x', quality: 101 }), InvalidOptionError);
  assert.throws(() => write({ out: 'x', overwrite: 'yes' as never }), InvalidOptionError);
});
