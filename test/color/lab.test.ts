import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  rgbToLab, labToRgb, splitLab, mergeLab, quantizeLab, dequantizeL, dequantizeAb, srgbToLinear, linearToByte,
} from '../../src/color/lab.js';
import { labStats } from '../../src/color/stats.js';
import { Rng } from '../../src/core/rng.js';

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

test('linearToByte rounds like the encoding curve: every byte back, NaN and out-of-range clamped', () => {
  for (let k = 0; k < 256; k++) assert.equal(linearToByte(srgbToLinear(k / 255)), k);
  assert.deepEqual([NaN, -1, 0, 1, 2, Infinity].map(linearToByte), [0, 0, 0, 255, 255, 255]);
});

test('linearToByte (a table and one comparison) equals a binary search over the byte boundaries, at every boundary', () => {
  const mid = Array.from({ length: 255 }, (_, k) => srgbToLinear((k + 0.5) / 255));
  const reference = (v: number): number => {
    if (!(v >= mid[0]!)) return 0;
    if (v >= mid[254]!) return 255;
    let lo = 0;
    let hi = 254;
    while (lo < hi) {
      const m = (lo + hi) >>> 1;
      if (v < mid[m]!) hi = m;
      else lo = m + 1;
    }
    return lo;
  };
  // The next double up and down (positive finite values).
  const f = new Float64Array(1);
  const bits = new BigInt64Array(f.buffer);
  const step = (v: number, d: bigint): number => ((f[0] = v), (bits[0]! += d), f[0]!);
  const probes: number[] = [];
  // Each boundary, and each table cell edge k / 65535 near one, with their neighbouring doubles: the only
  // places where the two could disagree.
  for (const m of mid) {
    const cell = Math.floor(m * 65535);
    for (const v of [m, (cell - 1) / 65535, cell / 65535, (cell + 1) / 65535, (cell + 2) / 65535]) {
      for (let d = -3n; d <= 3n; d++) probes.push(step(v, d));
    }
  }
  let s = 99;
  for (let i = 0; i < 200_000; i++) probes.push((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (const v of probes) assert.equal(linearToByte(v), reference(v), `v = ${v}`);
});

test('normalization: L / 100 and (ab + 128) / 255, and splitLab agrees with rgbToLab', () => {
  const rgb = Uint8Array.from([255, 0, 0, 10, 200, 30]);
  const lab = rgbToLab(rgb);
  const { L, ab } = splitLab(rgb);
  for (let i = 0; i < 2; i++) {
    assert.ok(Math.abs(L[i]! - lab[3 * i]! / 100) < 1e-6);
    assert.ok(Math.abs(ab[2 * i]! - (lab[3 * i + 1]! + 128) / 255) < 1e-6);
    assert.ok(Math.abs(ab[2 * i + 1]! - (lab[3 * i + 2]! + 128) / 255) < 1e-6);
  }
});

test('quantization round-trips within half a step; its statistics are labStats\'', () => {
  const rng = new Rng(3);
  const rgb = new Uint8Array(3 * 5000);
  for (let i = 0; i < rgb.length; i++) rgb[i] = rng.int(256);
  const lab = rgbToLab(rgb);
  const q = quantizeLab(lab);
  assert.deepEqual(q.stats, labStats(lab));
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

test('wrong lengths throw RangeError', () => {
  assert.throws(() => rgbToLab(new Uint8Array(4)), RangeError);
  assert.throws(() => labToRgb(new Float32Array(5)), RangeError);
  assert.throws(() => mergeLab(new Float32Array(2), new Float32Array(3)), RangeError);
  assert.throws(() => rgbToLab(new Uint8Array(6), new Float32Array(3)), RangeError);
});
