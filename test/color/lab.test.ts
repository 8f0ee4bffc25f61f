import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  rgbToLab, labToRgb, splitLab, mergeLab, quantizeLab, dequantizeL, dequantizeAb, rgbToQuantizedLab, labStats,
  normL, denormL, normAb, denormAb, srgbToLinear, linearToSrgb,
} from '../../src/color/lab.js';
import { Rng } from '../../src/rng.js';

// Reference values: Bruce Lindbloom's calculator (sRGB, D65, no adaptation), to 0.01.
const KNOWN: [number[], number[]][] = [
  [[255, 0, 0], [53.24, 80.09, 67.2]],
  [[0, 255, 0], [87.73, -86.18, 83.18]],
  [[0, 0, 255], [32.3, 79.19, -107.86]],
  [[255, 255, 255], [100, 0, 0]],
  [[0, 0, 0], [0, 0, 0]],
  [[128, 128, 128], [53.59, 0, 0]],
  [[255, 255, 0], [97.14, -21.55, 94.48]],
  [[0, 255, 255], [91.11, -48.09, -14.13]],
  [[255, 0, 255], [60.32, 98.23, -60.82]],
  [[1, 1, 1], [0.27, 0, 0]], // on the linear part of f (below epsilon)
];

test('rgbToLab matches known Lab values', () => {
  for (const [rgb, lab] of KNOWN) {
    const got = rgbToLab(Uint8Array.from(rgb));
    for (let c = 0; c < 3; c++) {
      assert.ok(Math.abs(got[c]! - lab[c]!) <= 0.01, `${rgb} channel ${c}: ${got[c]} vs ${lab[c]}`);
    }
  }
});

test('labToRgb inverts the known values', () => {
  for (const [rgb, lab] of KNOWN) {
    assert.deepEqual(Array.from(labToRgb(Float32Array.from(lab))), rgb);
  }
});

test('rgb -> lab -> rgb is exact on 300k random colours and on every grey', () => {
  const rng = new Rng(7);
  const n = 300_000;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = rng.int(256);
  for (let v = 0; v < 256; v++) rgb.set([v, v, v], v * 3);
  const back = labToRgb(rgbToLab(rgb));
  let maxErr = 0;
  for (let i = 0; i < rgb.length; i++) maxErr = Math.max(maxErr, Math.abs(back[i]! - rgb[i]!));
  assert.equal(maxErr, 0);
  const split = splitLab(rgb);
  const back2 = mergeLab(split.L, split.ab);
  maxErr = 0;
  for (let i = 0; i < rgb.length; i++) maxErr = Math.max(maxErr, Math.abs(back2[i]! - rgb[i]!));
  assert.equal(maxErr, 0);
});

test('greys have a = b = 0; labToRgb clamps out-of-gamut values', () => {
  const g = rgbToLab(Uint8Array.from([17, 17, 17, 200, 200, 200]));
  for (const c of [1, 2, 4, 5]) assert.ok(Math.abs(g[c]!) < 1e-4);
  assert.deepEqual(Array.from(labToRgb(Float32Array.from([150, 0, 0, -20, 0, 0, 50, 300, -300]))).slice(0, 6), [255, 255, 255, 0, 0, 0]);
  const wild = labToRgb(Float32Array.from([50, 300, -300]));
  assert.ok(wild.every((v) => v >= 0 && v <= 255));
});

test('transfer curve helpers are inverses', () => {
  // The IEC breakpoints 0.04045 and 0.0031308 do not meet exactly (a known 1e-8 seam), hence 1e-7.
  for (const v of [0, 0.001, 0.04045, 0.2, 0.5, 1]) assert.ok(Math.abs(linearToSrgb(srgbToLinear(v)) - v) < 1e-7);
});

test('normalization: L / 100 and (ab + 128) / 255, and splitLab agrees with rgbToLab', () => {
  assert.equal(normL(50), 0.5);
  assert.equal(denormL(0.5), 50);
  assert.equal(normAb(-128), 0);
  assert.equal(normAb(127), 1);
  assert.ok(Math.abs(denormAb(normAb(37.5)) - 37.5) < 1e-12);
  const rgb = Uint8Array.from([255, 0, 0, 10, 200, 30]);
  const lab = rgbToLab(rgb);
  const { L, ab } = splitLab(rgb);
  for (let i = 0; i < 2; i++) {
    assert.ok(Math.abs(L[i]! - lab[3 * i]! / 100) < 1e-6);
    assert.ok(Math.abs(ab[2 * i]! - (lab[3 * i + 1]! + 128) / 255) < 1e-6);
    assert.ok(Math.abs(ab[2 * i + 1]! - (lab[3 * i + 2]! + 128) / 255) < 1e-6);
  }
});

test('quantization round-trips within half a step, fused and separate paths agree', () => {
  const rng = new Rng(3);
  const rgb = new Uint8Array(3 * 5000);
  for (let i = 0; i < rgb.length; i++) rgb[i] = rng.int(256);
  const lab = rgbToLab(rgb);
  const q = quantizeLab(lab);
  const fused = rgbToQuantizedLab(rgb);
  assert.deepEqual(fused.L, q.L);
  assert.deepEqual(fused.ab, q.ab);
  assert.deepEqual(q.stats, labStats(lab));
  for (const k of ['meanChroma', 'stdA', 'stdB'] as const) assert.ok(Math.abs(fused.stats[k] - q.stats[k]) < 1e-4);
  const L = dequantizeL(q.L);
  const ab = dequantizeAb(q.ab);
  for (let i = 0; i < 5000; i++) {
    assert.ok(Math.abs(L[i]! * 100 - lab[3 * i]!) <= 100 / 255 / 2 + 1e-4);
    assert.ok(Math.abs(ab[2 * i]! * 255 - 128 - lab[3 * i + 1]!) <= 0.5 + 1e-4);
    assert.ok(Math.abs(ab[2 * i + 1]! * 255 - 128 - lab[3 * i + 2]!) <= 0.5 + 1e-4);
  }
  // The fast path (aligned, four bytes at a time) and the byte loop agree, at any offset and length.
  const bytes = new Uint8Array(1027);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 37) & 255;
  for (const [off, len] of [[0, 1024], [1, 1025], [3, 7], [4, 1023], [0, 3]] as const) {
    const view = bytes.subarray(off, off + len);
    const got = dequantizeL(view);
    for (let i = 0; i < len; i++) assert.equal(got[i], Math.fround(view[i]! / 255), `offset ${off} length ${len} index ${i}`);
  }
  // Out-of-range values clamp instead of wrapping.
  const c = quantizeLab(Float32Array.from([120, -200, 200]));
  assert.deepEqual([c.L[0], c.ab[0], c.ab[1]], [255, 0, 255]);
});

test('colour statistics: a grey image has none, a two-colour image has its known spread', () => {
  const grey = labStats(rgbToLab(new Uint8Array(300).fill(90)));
  assert.ok(grey.meanChroma < 1e-4 && grey.stdA < 1e-4 && grey.stdB < 1e-4);
  // Half pure red, half pure green: std(a) = |a_red - a_green| / 2.
  const rgb = new Uint8Array(6 * 50);
  for (let i = 0; i < 100; i++) rgb.set(i % 2 ? [0, 255, 0] : [255, 0, 0], 3 * i);
  const s = labStats(rgbToLab(rgb));
  assert.ok(Math.abs(s.stdA - (80.09 + 86.18) / 2) < 0.02, String(s.stdA));
  assert.ok(Math.abs(s.stdB - (83.18 - 67.2) / 2) < 0.02, String(s.stdB));
  assert.deepEqual(splitLab(rgb).stats.stdA.toFixed(3), s.stdA.toFixed(3));
  assert.deepEqual(rgbToQuantizedLab(rgb).stats.meanChroma.toFixed(3), s.meanChroma.toFixed(3));
});

test('wrong lengths throw RangeError', () => {
  assert.throws(() => rgbToLab(new Uint8Array(4)), RangeError);
  assert.throws(() => labToRgb(new Float32Array(5)), RangeError);
  assert.throws(() => mergeLab(new Float32Array(2), new Float32Array(3)), RangeError);
  assert.throws(() => rgbToLab(new Uint8Array(6), new Float32Array(3)), RangeError);
});
