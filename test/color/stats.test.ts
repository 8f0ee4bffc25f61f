import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labSampleStats, labStats } from '../../src/color/stats.js';
import { quantizeLab, rgbToLab, splitLab } from '../../src/color/lab.js';

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
  assert.deepEqual(quantizeLab(rgbToLab(rgb)).stats.meanChroma.toFixed(3), s.meanChroma.toFixed(3));
  // The same statistics from a LabSample's normalized ab plane (the filter stage's input).
  const fromAb = labSampleStats(splitLab(rgb).ab);
  for (const k of ['meanChroma', 'stdA', 'stdB'] as const) assert.ok(Math.abs(fromAb[k] - s[k]) < 1e-3, k);
  assert.deepEqual(labSampleStats(new Float32Array(0)), { meanChroma: 0, stdA: 0, stdB: 0 });
  assert.throws(() => labStats(new Float32Array(4)), RangeError);
});
