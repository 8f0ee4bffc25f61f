import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lightness } from '../../src/color/lightness.js';
import { rgbToLab } from '../../src/color/lab.js';

test('lightness is the L of rgbToLab, over 100', () => {
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
