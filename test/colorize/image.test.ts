import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import {
  imageCost, checkResolution, composeImage, encodeImage, prepareImage, prepareSettings, preparedBuffers, processingSize, resizePlane, resolveResolution, MAX_AUTO_SIDE,
} from '../../src/colorize/image.js';
import { lightness } from '../../src/color/lightness.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import type { Sample } from '../../src/types.js';
import { alphaPng, colourfulRgb, jpeg, png, rotatedJpeg } from '../helpers/images.js';

const sample = (key: string, image: Buffer, ext = 'jpg'): Sample => ({ key, url: `/in/${key}.${ext}`, relPath: `${key}.${ext}`, image, imageExt: ext, fields: {} });

test('processingSize: full rounds each side to a multiple of 8; N scales the long side', () => {
  assert.deepEqual(processingSize(40, 30, 'full'), { width: 40, height: 32 });
  assert.deepEqual(processingSize(2048, 1365, 'full'), { width: 2048, height: 1368 });
  assert.deepEqual(processingSize(3, 1, 'full'), { width: 8, height: 8 });
  assert.deepEqual(processingSize(2000, 1000, 256), { width: 256, height: 128 });
  assert.deepEqual(processingSize(1000, 3000, 512), { width: 168, height: 512 });
  assert.deepEqual(processingSize(100, 50, 400), { width: 400, height: 200 });
});

test('processingSize at the training scale: the short side to shortSide, the long side capped', () => {
  // A 4:3 photo whose short side becomes 80 (the demo's training scale).
  assert.deepEqual(processingSize(171, 128, { shortSide: 80, maxSide: 2048 }), { width: 104, height: 80 });
  // A small image is scaled up to the scale the network knows.
  assert.deepEqual(processingSize(64, 48, { shortSide: 96, maxSide: 2048 }), { width: 128, height: 96 });
  // A panorama: the long side cap wins.
  assert.deepEqual(processingSize(10000, 1000, { shortSide: 256, maxSide: 2048 }), { width: 2048, height: 208 });
  // No training scale: the original size, capped (a 24-megapixel photo is not run at full size by default).
  assert.deepEqual(processingSize(6000, 4000, { maxSide: MAX_AUTO_SIDE }), { width: 2048, height: 1368 });
  assert.deepEqual(processingSize(640, 480, { maxSide: MAX_AUTO_SIDE }), { width: 640, height: 480 });
});

test("resolveResolution: 'auto' follows the model's training scale; 'full' and N are kept", () => {
  assert.deepEqual(resolveResolution('auto', { shortSide: 80, crop: 64 }), { shortSide: 80, maxSide: MAX_AUTO_SIDE });
  assert.deepEqual(resolveResolution('auto', undefined), { maxSide: MAX_AUTO_SIDE });
  assert.equal(resolveResolution('full', { shortSide: 80, crop: 64 }), 'full');
  assert.equal(resolveResolution(104, { shortSide: 80, crop: 64 }), 104);
  assert.doesNotThrow(() => checkResolution('auto', 'r'));
  assert.throws(() => checkResolution('big', '--resolution'), /Expected 'auto', 'full' or an integer >= 8 for --resolution/);
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

test('composeImage without a format returns the RGB', async () => {
  const L = lightness(colourfulRgb(10, 6, 4));
  const ab = new Float32Array(5 * 3 * 2).fill(0.5);
  const r = await composeImage({ L, width: 10, height: 6, ab, abWidth: 5, abHeight: 3, format: null, quality: 90 });
  assert.equal(r.rgb?.length, 10 * 6 * 3);
  assert.equal(r.data, undefined);
});

test('prepareSettings and checkResolution validate at once; preparedBuffers lists each buffer once', async () => {
  assert.throws(() => prepareSettings({ resolution: 0 }), /Expected 'auto', 'full' or an integer >= 8 for options.resolution but received 0/);
  assert.throws(() => prepareSettings({ globalSize: 12 }), /Expected positive multiple of 8 for options.globalSize but received 12/);
  assert.throws(() => prepareSettings({ keepRgb: 'yes' as never }), InvalidOptionError);
  assert.throws(() => checkResolution('big', '--resolution'), /for --resolution but received "big"/);
  checkResolution('full', 'x');
  checkResolution(8, 'x');
  const p = await prepareImage(sample('a', await png(32, 16), 'png'), prepareSettings({ globalSize: 8 }));
  // local is L itself here: one buffer for both.
  assert.equal(preparedBuffers(p).length, 2);
});

test('imageCost: from the header, by pixels and not file size; alpha and keepRgb add their planes; an unreadable file costs its bytes', async () => {
  const s = prepareSettings({ resolution: 'full' });
  // A 4000 x 3000 PNG of one colour: little on disk, 12 million pixels decoded.
  const flat = await sharp({ create: { width: 4000, height: 3000, channels: 3, background: '#336699' } }).png().toBuffer();
  assert.ok(flat.length < 1e6);
  const cost = await imageCost(flat, s);
  assert.ok(cost >= 12e6 * 12 + 12e6 * 10, `${cost}`);
  const withAlpha = await sharp({ create: { width: 4000, height: 3000, channels: 4, background: '#33669980' } }).png().toBuffer();
  assert.ok((await imageCost(withAlpha, s)) > cost);
  assert.ok((await imageCost(flat, prepareSettings({ resolution: 'full', keepRgb: true }))) > cost);
  // The local input at 256 on the long side costs far less than at full size.
  assert.ok((await imageCost(flat, prepareSettings({ resolution: 256 }))) < cost - 12e6 * 9);
  const junk = Buffer.from('not an image at all');
  assert.equal(await imageCost(junk, s), junk.length);
  assert.equal(await imageCost(Buffer.alloc(0), s), 0);
});
