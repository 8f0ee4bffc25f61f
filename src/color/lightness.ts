/**
 * CIE L* alone, fast: colorize needs the lightness of every input pixel (at the original size, and again for
 * each rescale) but never its a and b, so this computes Y with lab.ts's byte tables and takes one cube root
 * per pixel instead of rgbToLab's three. The value is rgbToLab's L divided by 100, from the same tables and
 * constants (checked against rgbToLab in test/color/lightness.test.ts).
 */
import { BYTE_TO_Y, LAB_EPSILON, LAB_KAPPA } from './lab.js';

const TY = BYTE_TO_Y;

/**
 * CIE L* / 100 of interleaved 8-bit sRGB: the L plane of rgbToLab (divided by 100), computed without a and b.
 * @throws RangeError when rgb's length is not a multiple of 3.
 * @example lightness(Uint8Array.of(255, 255, 255)) // Float32Array [1]
 */
export function lightness(rgb: Uint8Array, out?: Float32Array): Float32Array {
  if (rgb.length % 3 !== 0) throw new RangeError(`Expected a length that is a multiple of 3 for rgb but received ${rgb.length}`);
  const n = rgb.length / 3;
  const L = out ?? new Float32Array(n);
  const k = LAB_KAPPA / 100;
  // rgbToLab's Y and f(Y) written out for L alone (a near-copy kept for speed: one cube root, no X or Z).
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    const y = TY[rgb[j]!]! + TY[rgb[j + 1]! + 256]! + TY[rgb[j + 2]! + 512]!;
    L[i] = y > LAB_EPSILON ? 1.16 * Math.cbrt(y) - 0.16 : k * y;
  }
  return L;
}
