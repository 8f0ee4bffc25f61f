import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import {
  prepare, prepareImage, prepareSettings, processingSize, lightness, sniffFormat, extFormat, createColorizePool, resizePlane,
  type PreparedImage,
} from '../../src/colorize/prepare.js';
import { rgbToLab } from '../../src/color/lab.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { InvalidOptionError, Reporter } from '../../src/core/errors.js';
import type { Sample } from '../../src/types.js';
import { alphaPng, badInputs, colourfulRgb, jpeg, png, rotatedJpeg } from '../helpers/images.js';

const sample = (key: string, image: Buffer, ext = 'jpg'): Sample => ({ key, url: `/in/${key}.${ext}`, relPath: `${key}.${ext}`, image, imageExt: ext, fields: {} });

test('processingSize: full rounds each side to a multiple of 8; N scales the long side', () => {
  assert.deepEqual(processingSize(40, 30, 'full'), { width: 40, height: 32 });
  assert.deepEqual(processingSize(2048, 1365, 'full'), { width: 2048, height: 1368 });
  assert.deepEqual(processingSize(3, 1, 'full'), { width: 8, height: 8 });
  assert.deepEqual(processingSize(2000, 1000, 256), { width: 256, height: 128 });
  assert.deepEqual(processingSize(1000, 3000, 512), { width: 168, height: 512 });
  assert.deepEqual(processingSize(100, 50, 400), { width: 400, height: 200 });
});

test('lightness is the L of src/color.ts rgbToLab, over 100', () => {
  const rgb = new Uint8Array(3 * 4096);
  for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 2654435761) >>> 24;
  rgb.set([0, 0, 0, 255, 255, 255, 1, 2, 3], 0);
  const L = lightness(rgb);
  const lab = rgbToLab(rgb);
  let max = 0;
  for (let i = 0; i < L.length; i++) max = Math.max(max, Math.abs(L[i]! * 100 - lab[3 * i]!));
  assert.ok(max < 1e-4, `max |dL| ${max}`);
  assert.equal(L[0], 0);
  assert.ok(Math.abs(L[1]! - 1) < 1e-6);
  assert.throws(() => lightness(new Uint8Array(4)), RangeError);
});

test('resizePlane: bilinear with half-pixel centres', () => {
  const ramp = Float32Array.from({ length: 8 }, (_, i) => i);
  // 8 -> 4 columns: centres at 0.5, 2.5, 4.5, 6.5.
  assert.deepEqual(resizePlane(ramp, 8, 1, 4, 1), Float32Array.of(0.5, 2.5, 4.5, 6.5));
  // 2 -> 4: edges clamped, then interpolated: 0, 0.25, 0.75, 1.
  assert.deepEqual(resizePlane(Float32Array.of(0, 1), 2, 1, 4, 1), Float32Array.of(0, 0.25, 0.75, 1));
  const flat = new Float32Array(30).fill(0.3);
  for (const v of resizePlane(flat, 6, 5, 9, 7)) assert.ok(Math.abs(v - 0.3) < 1e-7);
  assert.deepEqual(resizePlane(ramp, 4, 2, 4, 2), ramp);
  assert.throws(() => resizePlane(ramp, 3, 3, 2, 2), RangeError);
});

test('sniffFormat and extFormat name formats the way sharp does', async () => {
  assert.equal(sniffFormat(await jpeg(8, 8)), 'jpeg');
  assert.equal(sniffFormat(await png(8, 8)), 'png');
  assert.equal(sniffFormat(await sharp(colourfulRgb(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).webp().toBuffer()), 'webp');
  assert.equal(sniffFormat(await sharp(colourfulRgb(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).tiff().toBuffer()), 'tiff');
  assert.equal(sniffFormat(Buffer.from('hello world, not an image')), null);
  assert.equal(extFormat('JPG'), 'jpeg');
  assert.equal(extFormat('.tif'), 'tiff');
  assert.equal(extFormat('txt'), null);
});

test('prepareImage: L at the original size, local at the processing size, global at S x S', async () => {
  const s = prepareSettings({ globalSize: 32 });
  const p = await prepareImage(sample('a', await jpeg(40, 30)), s);
  assert.equal(p.width, 40);
  assert.equal(p.height, 30);
  assert.equal(p.L.length, 40 * 30);
  assert.equal(p.localWidth, 40);
  assert.equal(p.localHeight, 32);
  assert.equal(p.local.length, 40 * 32);
  assert.equal(p.global.length, 32 * 32);
  assert.equal(p.format, 'jpeg');
  assert.equal(p.relPath, 'a.jpg');
  // L is the decoded image's own lightness, not a resampled one.
  const { data } = await sharp(await jpeg(40, 30)).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual(p.L, lightness(data));
  // A small rounding (30 -> 32 rows) resamples L itself.
  assert.deepEqual(p.local, resizePlane(p.L, 40, 30, 40, 32));
  // Same size: local is L itself (no copy).
  const q = await prepareImage(sample('b', await png(32, 16), 'png'), s);
  assert.equal(q.local, q.L);
  assert.equal(q.format, 'png');
  // N: the long side scaled.
  const r = await prepareImage(sample('c', await jpeg(64, 48)), prepareSettings({ resolution: 16, globalSize: 8 }));
  assert.deepEqual([r.localWidth, r.localHeight, r.local.length, r.global.length], [16, 16, 256, 64]);
  for (const v of [...r.local, ...r.global]) assert.ok(v >= 0 && v <= 1);
});

test('prepareImage: orientation applied, alpha kept apart, rgb only with keepRgb', async () => {
  const rot = await prepareImage(sample('r', await rotatedJpeg(40, 24)), prepareSettings({ globalSize: 8 }));
  assert.deepEqual([rot.width, rot.height, rot.localWidth, rot.localHeight], [24, 40, 24, 40]);
  assert.equal(rot.rgb, undefined);
  const a = await prepareImage(sample('p', await alphaPng(32, 8), 'png'), prepareSettings({ globalSize: 8, keepRgb: true }));
  assert.ok(a.alpha);
  assert.equal(a.alpha.length, 32 * 8);
  assert.equal(a.alpha[5], 20);
  assert.equal(a.rgb?.length, 32 * 8 * 3);
});

test('options are validated at once', () => {
  assert.throws(() => prepare({ resolution: 0 }), InvalidOptionError);
  assert.throws(() => prepare({ resolution: 'big' as never }), InvalidOptionError);
  assert.throws(() => prepare({ globalSize: 12 }), InvalidOptionError);
  assert.throws(() => prepare({ pool: 'threads' as never }), InvalidOptionError);
  assert.throws(() => prepare({ concurrency: 0 }), InvalidOptionError);
});

async function mixed(): Promise<Sample[]> {
  const bad = await badInputs();
  return [
    sample('good1', await jpeg(24, 16, 1)),
    sample('empty', bad.empty!),
    sample('good2', await png(16, 16, 2), 'png'),
    sample('text', bad.text!),
    sample('truncated', bad.truncated!),
    sample('good3', await jpeg(16, 24, 3)),
  ];
}

for (const mode of ['inline', 'pool'] as const) {
  test(`prepare stage (${mode}): bad inputs reported with path and reason, the rest in order`, async () => {
    const lines: string[] = [];
    const reporter = new Reporter({ log: (l) => lines.push(l) });
    const pool = mode === 'pool' ? createColorizePool(2) : 'inline';
    try {
      const out = await collect(pipeline(await mixed(), prepare({ globalSize: 16, pool }), { reporter }));
      assert.deepEqual(out.map((p) => p.key), ['good1', 'good2', 'good3']);
      assert.equal(reporter.total, 3);
      assert.deepEqual(reporter.records.map((r) => r.key), ['/in/empty.jpg', '/in/text.jpg', '/in/truncated.jpg']);
      assert.ok(lines.every((l) => l.includes('(decode)')));
      // Planes come back whole across the thread boundary.
      const direct = await prepareImage((await mixed())[0]!, prepareSettings({ globalSize: 16 }));
      assert.deepEqual(out[0]!.L, direct.L);
      assert.deepEqual(out[0]!.global, direct.global);
      assert.deepEqual(out[0]!.local, direct.local);
    } finally {
      if (pool !== 'inline') await pool.destroy();
    }
  });
}

test('prepare stage: an early break stops the source and destroys its own pool', async () => {
  let pulled = 0;
  let closed = false;
  const img = await jpeg(16, 16);
  const src = async function* () {
    try {
      for (let i = 0; i < 1000; i++) {
        pulled++;
        yield sample(`k${i}`, img);
      }
    } finally {
      closed = true;
    }
  };
  const got: PreparedImage[] = [];
  for await (const p of pipeline(src(), prepare({ globalSize: 8, threads: 1, concurrency: 2 }))) {
    got.push(p);
    if (got.length === 2) break;
  }
  assert.ok(closed);
  assert.ok(pulled <= 5, `pulled ${pulled}`);
});

test('onError fail: the first bad input ends the stream', async () => {
  const reporter = new Reporter({ onError: 'fail', log: null });
  await assert.rejects(collect(pipeline(await mixed(), prepare({ globalSize: 16, pool: 'inline' }), { reporter })), /empty\.jpg: empty image file/);
});
