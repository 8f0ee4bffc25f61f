/**
 * Colorize's output pixels: the network's ab (at half the processing size) upsampled to the original size and
 * joined with the original L, then Lab -> 8-bit sRGB at that L (composeRgb). Where the predicted colour is
 * outside the sRGB gamut at that lightness, its chroma is reduced until it fits (labPixel), so the output's L
 * is the input's (within 8-bit rounding) instead of clipping channels and shifting L.
 *
 * The constants are lab.ts's (IEC 61966-2-1 primaries, D65, CIE 15:2004) and the rounding to bytes is its
 * linearToByte, so an in-gamut colour gives the bytes mergeLab gives. A wrong plane length throws a RangeError.
 */
import { LAB_EPSILON, LAB_KAPPA, SRGB_TO_XYZ, XYZ_TO_SRGB, linearToByte } from './lab.js';

const M = SRGB_TO_XYZ;
const XN = M[0] + M[1] + M[2];
const YN = M[3] + M[4] + M[5];
const ZN = M[6] + M[7] + M[8];
const MI = XYZ_TO_SRGB;
// As locals for the hot loop (V8 keeps them in registers; an array read per use is slower).
const [MI0, MI1, MI2, MI3, MI4, MI5, MI6, MI7, MI8] = MI;
/** L above kappa * epsilon (= 8) is on the cube part of the curve. */
const KE = LAB_KAPPA * LAB_EPSILON;
/** f^-1 of CIE Lab for X and Z (fx^3 above epsilon, the linear segment below). */
function finv(f: number): number {
  const f3 = f * f * f;
  return f3 > LAB_EPSILON ? f3 : (116 * f - 16) / LAB_KAPPA;
}

/** Halvings of the chroma scale when a colour is out of gamut: chroma within 1/2^12 of the gamut boundary. */
const GAMUT_STEPS = 12;
/**
 * Tolerance on linear RGB: the planes are float32, so an in-gamut colour (a saturated yellow's R = 255) can
 * land 1e-5 outside [0, 1]; clamping 1e-4 moves L by 0.07 at most (near black), reducing chroma for it would
 * move the colour visibly.
 */
const TOL = 1e-4;

/**
 * Lab at one pixel -> sRGB bytes written to out[o..o+2], keeping L: the colour (L, t a, t b) with the largest
 * t in [0, 1] that lies in the sRGB gamut (t = 0 is the grey of that L, always inside for L in [0, 100]).
 */
function labPixel(L: number, a: number, b: number, out: Uint8Array, o: number): void {
  const fy = (L + 16) / 116;
  const yr = L > LAB_KAPPA * LAB_EPSILON ? fy * fy * fy : L / LAB_KAPPA;
  const y = yr * YN;
  const ya0 = MI[1] * y;
  const ya1 = MI[4] * y;
  const ya2 = MI[7] * y;
  let t = 1;
  let x = finv(fy + a / 500) * XN;
  let z = finv(fy - b / 200) * ZN;
  let r = MI[0] * x + ya0 + MI[2] * z;
  let g = MI[3] * x + ya1 + MI[5] * z;
  let bl = MI[6] * x + ya2 + MI[8] * z;
  if (r < -TOL || r > 1 + TOL || g < -TOL || g > 1 + TOL || bl < -TOL || bl > 1 + TOL) {
    let lo = 0;
    let hi = 1;
    for (let s = 0; s < GAMUT_STEPS; s++) {
      t = (lo + hi) / 2;
      x = finv(fy + (t * a) / 500) * XN;
      z = finv(fy - (t * b) / 200) * ZN;
      r = MI[0] * x + ya0 + MI[2] * z;
      g = MI[3] * x + ya1 + MI[5] * z;
      bl = MI[6] * x + ya2 + MI[8] * z;
      if (r < -TOL || r > 1 + TOL || g < -TOL || g > 1 + TOL || bl < -TOL || bl > 1 + TOL) hi = t;
      else lo = t;
    }
    t = lo;
    x = finv(fy + (t * a) / 500) * XN;
    z = finv(fy - (t * b) / 200) * ZN;
    r = MI[0] * x + ya0 + MI[2] * z;
    g = MI[3] * x + ya1 + MI[5] * z;
    bl = MI[6] * x + ya2 + MI[8] * z;
  }
  out[o] = linearToByte(r);
  out[o + 1] = linearToByte(g);
  out[o + 2] = linearToByte(bl);
}

/**
 * The output pixels: `ab` ((ab + 128) / 255, interleaved, abWidth x abHeight) upsampled bilinearly (half-pixel
 * centres, edges clamped, as tf.image.resizeBilinear without align_corners) to width x height, joined with
 * `L` (L / 100, width x height), converted to 8-bit sRGB keeping L (see labPixel).
 * @throws RangeError when the lengths disagree with the sizes.
 */
export function composeRgb(
  L: Float32Array,
  width: number,
  height: number,
  ab: Float32Array,
  abWidth: number,
  abHeight: number,
  out?: Uint8Array,
): Uint8Array {
  const n = width * height;
  if (L.length !== n) throw new RangeError(`Expected L of length ${n} but received ${L.length}`);
  if (ab.length !== abWidth * abHeight * 2 || abWidth < 1 || abHeight < 1) {
    throw new RangeError(`Expected ab of length ${abWidth * abHeight * 2} but received ${ab.length}`);
  }
  const rgb = out ?? new Uint8Array(n * 3);
  if (rgb.length < n * 3) throw new RangeError(`Expected out of length ${n * 3} but received ${rgb.length}`);
  // Per column: the two source columns (as offsets into a row of ab) and the weight of the second.
  const x0 = new Int32Array(width);
  const x1 = new Int32Array(width);
  const wx = new Float32Array(width);
  const sx = abWidth / width;
  for (let x = 0; x < width; x++) {
    const s = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), abWidth - 1);
    const i = Math.floor(s);
    x0[x] = i * 2;
    x1[x] = Math.min(i + 1, abWidth - 1) * 2;
    wx[x] = s - i;
  }
  const sy = abHeight / height;
  for (let y = 0; y < height; y++) {
    const s = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), abHeight - 1);
    const j = Math.floor(s);
    const wy = s - j;
    const r0 = j * abWidth * 2;
    const r1 = Math.min(j + 1, abHeight - 1) * abWidth * 2;
    for (let x = 0, i = y * width; x < width; x++, i++) {
      const u = wx[x]!;
      const a00 = r0 + x0[x]!;
      const a01 = r0 + x1[x]!;
      const a10 = r1 + x0[x]!;
      const a11 = r1 + x1[x]!;
      const aTop = ab[a00]! + (ab[a01]! - ab[a00]!) * u;
      const aBot = ab[a10]! + (ab[a11]! - ab[a10]!) * u;
      const bTop = ab[a00 + 1]! + (ab[a01 + 1]! - ab[a00 + 1]!) * u;
      const bBot = ab[a10 + 1]! + (ab[a11 + 1]! - ab[a10 + 1]!) * u;
      const av = (aTop + (aBot - aTop) * wy) * 255 - 128;
      const bv = (bTop + (bBot - bTop) * wy) * 255 - 128;
      // The common case inline (an in-gamut colour): labPixel's first step written out, a near-copy kept
      // because a call per pixel costs more than the conversion; labPixel reduces the chroma of the others.
      const Lv = L[i]! * 100;
      const fy = (Lv + 16) / 116;
      const y = (Lv > KE ? fy * fy * fy : Lv / LAB_KAPPA) * YN;
      const fx = fy + av / 500;
      const fz = fy - bv / 200;
      const fx3 = fx * fx * fx;
      const fz3 = fz * fz * fz;
      const X = (fx3 > LAB_EPSILON ? fx3 : (116 * fx - 16) / LAB_KAPPA) * XN;
      const Z = (fz3 > LAB_EPSILON ? fz3 : (116 * fz - 16) / LAB_KAPPA) * ZN;
      const r = MI0 * X + MI1 * y + MI2 * Z;
      const g = MI3 * X + MI4 * y + MI5 * Z;
      const bl = MI6 * X + MI7 * y + MI8 * Z;
      const o = i * 3;
      if (r >= -TOL && r <= 1 + TOL && g >= -TOL && g <= 1 + TOL && bl >= -TOL && bl <= 1 + TOL) {
        rgb[o] = linearToByte(r);
        rgb[o + 1] = linearToByte(g);
        rgb[o + 2] = linearToByte(bl);
      } else {
        labPixel(Lv, av, bv, rgb, o);
      }
    }
  }
  return rgb;
}
