import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import sharp from 'sharp';
import { rescaledLightness, resizePlane, resizeRgb } from '../../src/color/resize.js';
import { lightness } from '../../src/color/lightness.js';
import { psnr } from '../../src/color/metrics.js';
import { ROOT } from '../helpers/tar.js';

async function photo(name: string, width?: number, height?: number): Promise<{ rgb: Uint8Array; width: number; height: number }> {
  let img = sharp(join(ROOT, 'fixtures/images/renewable', name)).removeAlpha();
  if (width && height) img = img.resize(width, height, { fit: 'fill' });
  const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
  return { rgb: new Uint8Array(data), width: info.width, height: info.height };
}

const bySharp = async (p: { rgb: Uint8Array; width: number; height: number }, w: number, h: number) =>
  new Uint8Array(await sharp(p.rgb, { raw: { width: p.width, height: p.height, channels: 3 } }).resize(w, h, { fit: 'fill' }).raw().toBuffer());

test("resizeRgb gives sharp's lanczos3 pixels within a level or two: shrinks by odd factors, enlargements, mixed", async () => {
  const p = await photo('dam1.jpg');
  const big = await photo('solar1.jpg', 1500, 1000);
  for (const [src, w, h] of [[p, 26, 24], [p, 64, 64], [p, 172, 128], [p, 40, 150], [big, 64, 64], [big, 120, 80], [big, 333, 201]] as const) {
    const got = resizeRgb(src.rgb, src.width, src.height, w, h);
    assert.equal(got.length, w * h * 3);
    const db = psnr(got, await bySharp(src, w, h));
    assert.ok(db > 50, `${src.width}x${src.height} -> ${w}x${h}: ${db.toFixed(1)} dB`);
  }
});

test('resizeRgb keeps a flat colour flat at any size and never returns its input array', () => {
  const rgb = new Uint8Array(30 * 20 * 3).map((_, i) => [200, 120, 40][i % 3]!);
  for (const [w, h] of [[7, 5], [30, 20], [61, 3]]) {
    const out = resizeRgb(rgb, 30, 20, w, h);
    assert.notEqual(out, rgb);
    assert.ok(out.every((v, i) => v === [200, 120, 40][i % 3]), `${w}x${h}`);
  }
  assert.throws(() => resizeRgb(rgb, 31, 20, 5, 5), RangeError);
});

test('rescaledLightness: L itself at the same size, L resampled for small changes, the resizer for large ones', async () => {
  const p = await photo('dam2.jpg');
  const L = lightness(p.rgb);
  const never = () => assert.fail('no RGB resize for this size');
  assert.equal(await rescaledLightness(p.rgb, L, p.width, p.height, p.width, p.height, never), L);
  assert.deepEqual(await rescaledLightness(p.rgb, L, p.width, p.height, 80, 56, never), resizePlane(L, p.width, p.height, 80, 56));
  const calls: number[][] = [];
  const out = await rescaledLightness(p.rgb, L, p.width, p.height, 32, 24, (rgb, w0, h0, w, h) => {
    calls.push([w0, h0, w, h]);
    return resizeRgb(rgb, w0, h0, w, h);
  });
  assert.deepEqual(calls, [[p.width, p.height, 32, 24]]);
  assert.deepEqual(out, lightness(resizeRgb(p.rgb, p.width, p.height, 32, 24)));
});
