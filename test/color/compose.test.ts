import { test } from 'node:test';
import assert from 'node:assert/strict';
import { composeRgb } from '../../src/color/compose.js';
import { lightness } from '../../src/color/lightness.js';
import { mergeLab, rgbToLab, splitLab } from '../../src/color/lab.js';
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
