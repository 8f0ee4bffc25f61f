/**
 * sRGB <-> CIE Lab in plain JS over typed arrays, and the network's normalization of Lab.
 *
 * The conversion is the one every colorization paper assumes (Iizuka et al. 2016 train on Lab computed this
 * way): 8-bit sRGB with the IEC 61966-2-1 transfer curve, linear RGB to XYZ with the sRGB primaries, then
 * CIE 1976 L*a*b* relative to the D65 white, with the CIE's exact constants epsilon = 216/24389 and
 * kappa = 24389/27 (not the rounded 0.008856 / 903.3, which make the curve discontinuous).
 *
 * Speed: the 256 byte values go through a lookup table to linear light, and the only transcendental call
 * left per channel is Math.cbrt. The inverse rounds linear light to bytes with linearToByte (a table and one
 * comparison, exact: the same byte as rounding the encoded value), shared by every Lab -> sRGB path of the
 * project (labToRgb, mergeLab, src/color/compose.ts).
 *
 * The other colour modules: lightness.ts (L* alone, for colorize), compose.ts (colorize's output pixels),
 * stats.ts (the colourfulness filter's statistics), metrics.ts (PSNR, colourfulness).
 *
 * Nothing here throws on pixel values: out-of-gamut Lab is clamped to [0, 255] by labToRgb. A wrong
 * array length throws a RangeError at once.
 */
import { StatsAccumulator, type ColourStats } from './stats.js';

/** CIE 1976 constants (CIE 15:2004): the exact rationals, not their rounded decimal forms. */
export const LAB_EPSILON = 216 / 24389;
export const LAB_KAPPA = 24389 / 27;

/**
 * sRGB (D65) linear RGB -> XYZ, IEC 61966-2-1 primaries (the matrix Bruce Lindbloom tabulates). The D65
 * white used below is this matrix applied to (1, 1, 1), so that sRGB white maps to exactly a = b = 0.
 */
export const SRGB_TO_XYZ = [
  0.4124564, 0.3575761, 0.1804375,
  0.2126729, 0.7151522, 0.072175,
  0.0193339, 0.119192, 0.9503041,
] as const;
const M = SRGB_TO_XYZ;
const XN = M[0] + M[1] + M[2]; // 0.95047
const YN = M[3] + M[4] + M[5]; // 1.0000001
const ZN = M[6] + M[7] + M[8]; // 1.08883

/**
 * Per-channel contributions to X/Xn, Y/Yn, Z/Zn of each byte value (768 entries each: R, then G, then B),
 * so that the transfer curve, the matrix and the white-point division are three lookups and two additions.
 */
const TX = new Float64Array(768);
const TY = new Float64Array(768);
/** Y / Yn of each byte value per channel (R at 0, G at 256, B at 512): lightness.ts's table too. */
export const BYTE_TO_Y: Readonly<Float64Array> = TY;
const TZ = new Float64Array(768);

/** The inverse of M (computed once, in double precision), for Lab -> linear RGB. */
export const XYZ_TO_SRGB: Readonly<ReturnType<typeof invert3>> = invert3(M);
const MI = XYZ_TO_SRGB;

/** IEC 61966-2-1 decoding curve: sRGB value in [0, 1] -> linear light. */
export function srgbToLinear(v: number): number {
  return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
}

/** Linear light of each sRGB byte value. */
const LINEAR = new Float64Array(256);
for (let i = 0; i < 256; i++) LINEAR[i] = srgbToLinear(i / 255);
for (let c = 0; c < 3; c++) {
  for (let i = 0; i < 256; i++) {
    TX[c * 256 + i] = (M[c] / XN) * LINEAR[i]!;
    TY[c * 256 + i] = (M[3 + c] / YN) * LINEAR[i]!;
    TZ[c * 256 + i] = (M[6 + c] / ZN) * LINEAR[i]!;
  }
}

/**
 * MID[k] (k = 0..254) is the linear light of the sRGB value (k + 0.5) / 255: a linear value rounds to byte
 * k + 1 or more exactly when it is >= MID[k]. The encoding curve is monotonic, so this is round(255 * v).
 */
const MID = new Float64Array(255);
for (let k = 0; k < 255; k++) MID[k] = srgbToLinear((k + 0.5) / 255);

/**
 * LUT[k]: the byte of linear value k / LUT_SCALE. Consecutive byte boundaries (MID) are at least 3e-4 apart
 * (the sRGB curve's steepest step, near black, is 1 / (255 * 12.92)) and a LUT cell is 1.5e-5 wide, so a cell
 * holds at most one boundary: the byte of v is LUT[floor(v * LUT_SCALE)] or the next one, decided by one
 * comparison with MID. Exact (the same bytes as a binary search over MID, checked at every boundary in
 * test/color/lab.test.ts), and 3x faster.
 */
const LUT_SCALE = 65535;
const LUT = new Uint8Array(LUT_SCALE + 1);
{
  let b = 0;
  for (let k = 0; k <= LUT_SCALE; k++) {
    const v = k / LUT_SCALE;
    while (b < 255 && v >= MID[b]!) b++;
    LUT[k] = b;
  }
}

/**
 * Linear light -> the nearest 8-bit sRGB value (IEC 61966-2-1 encoding, rounded), clamped to [0, 255]; NaN
 * gives 0. The project's one rounding of linear light to bytes.
 */
export function linearToByte(v: number): number {
  if (!(v > 0)) return 0; // also NaN
  if (v >= 1) return 255;
  const b = LUT[(v * LUT_SCALE) | 0]!;
  return b < 255 && v >= MID[b]! ? b + 1 : b;
}

// f(t) below LAB_EPSILON is the line (kappa * t + 16) / 116, written as FA * t + FB. Inlined in the loops
// (a helper function measured 2x slower in V8 12).
const FA = LAB_KAPPA / 116;
const FB = 16 / 116;

function checkLength(name: string, len: number, multiple: number): number {
  if (len % multiple !== 0) {
    throw new RangeError(`Expected a length that is a multiple of ${multiple} for ${name} but received ${len}`);
  }
  return len / multiple;
}

/**
 * Interleaved 8-bit sRGB -> interleaved CIE Lab (L in [0, 100], a and b roughly in [-128, 127]).
 * @throws RangeError when rgb's length is not a multiple of 3 or `out` is too short.
 * @example rgbToLab(Uint8Array.of(255, 0, 0)) // Float32Array [53.24, 80.09, 67.20]
 */
export function rgbToLab(rgb: Uint8Array, out?: Float32Array): Float32Array {
  const n = checkLength('rgb', rgb.length, 3);
  const lab = out ?? new Float32Array(n * 3);
  if (lab.length < n * 3) throw new RangeError(`Expected out of length ${n * 3} but received ${lab.length}`);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    const r = rgb[j]!;
    const g = rgb[j + 1]! + 256;
    const b = rgb[j + 2]! + 512;
    const x = TX[r]! + TX[g]! + TX[b]!;
    const y = TY[r]! + TY[g]! + TY[b]!;
    const z = TZ[r]! + TZ[g]! + TZ[b]!;
    const fx = x > LAB_EPSILON ? Math.cbrt(x) : FA * x + FB;
    const fy = y > LAB_EPSILON ? Math.cbrt(y) : FA * y + FB;
    const fz = z > LAB_EPSILON ? Math.cbrt(z) : FA * z + FB;
    lab[j] = 116 * fy - 16;
    lab[j + 1] = 500 * (fx - fy);
    lab[j + 2] = 200 * (fy - fz);
  }
  return lab;
}

/** One Lab triple -> linear RGB written to tmp[0..2]. */
function labToLinear(L: number, a: number, b: number, tmp: Float64Array): void {
  const fy = (L + 16) / 116;
  const fx = fy + a / 500;
  const fz = fy - b / 200;
  const fx3 = fx * fx * fx;
  const fz3 = fz * fz * fz;
  const x = (fx3 > LAB_EPSILON ? fx3 : (116 * fx - 16) / LAB_KAPPA) * XN;
  const y = (L > LAB_KAPPA * LAB_EPSILON ? fy * fy * fy : L / LAB_KAPPA) * YN;
  const z = (fz3 > LAB_EPSILON ? fz3 : (116 * fz - 16) / LAB_KAPPA) * ZN;
  tmp[0] = MI[0] * x + MI[1] * y + MI[2] * z;
  tmp[1] = MI[3] * x + MI[4] * y + MI[5] * z;
  tmp[2] = MI[6] * x + MI[7] * y + MI[8] * z;
}

/**
 * Interleaved CIE Lab -> interleaved 8-bit sRGB, clamped to [0, 255] and rounded to the nearest byte.
 * rgb -> lab -> rgb returns the same bytes (within 1 where float32 storage of Lab rounds across a midpoint).
 * @throws RangeError when lab's length is not a multiple of 3 or `out` is too short.
 */
export function labToRgb(lab: ArrayLike<number>, out?: Uint8Array): Uint8Array {
  const n = checkLength('lab', lab.length, 3);
  const rgb = out ?? new Uint8Array(n * 3);
  if (rgb.length < n * 3) throw new RangeError(`Expected out of length ${n * 3} but received ${rgb.length}`);
  const tmp = new Float64Array(3);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    labToLinear(lab[j]!, lab[j + 1]!, lab[j + 2]!, tmp);
    rgb[j] = linearToByte(tmp[0]!);
    rgb[j + 1] = linearToByte(tmp[1]!);
    rgb[j + 2] = linearToByte(tmp[2]!);
  }
  return rgb;
}

// ---- The network's normalization (src/types.ts LabSample): L / 100 and (ab + 128) / 255, both in [0, 1].

/**
 * sRGB bytes -> the network's planes: L / 100 (length n) and normalized ab, interleaved (length 2n).
 * @throws RangeError when rgb's length is not a multiple of 3.
 */
export function splitLab(rgb: Uint8Array, out?: { L: Float32Array; ab: Float32Array }): SplitLab {
  const n = checkLength('rgb', rgb.length, 3);
  const L = out?.L ?? new Float32Array(n);
  const ab = out?.ab ?? new Float32Array(n * 2);
  if (L.length < n || ab.length < n * 2) throw new RangeError(`Expected L of length ${n} and ab of length ${n * 2}`);
  // rgbToLab's pixel loop written out again rather than called per pixel (a helper call measured 2x slower
  // in V8 12), with the normalization and the filter's sums in the same pass.
  const acc = new StatsAccumulator();
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    const r = rgb[j]!;
    const g = rgb[j + 1]! + 256;
    const bl = rgb[j + 2]! + 512;
    const x = TX[r]! + TX[g]! + TX[bl]!;
    const y = TY[r]! + TY[g]! + TY[bl]!;
    const z = TZ[r]! + TZ[g]! + TZ[bl]!;
    const fx = x > LAB_EPSILON ? Math.cbrt(x) : FA * x + FB;
    const fy = y > LAB_EPSILON ? Math.cbrt(y) : FA * y + FB;
    const fz = z > LAB_EPSILON ? Math.cbrt(z) : FA * z + FB;
    const a = 500 * (fx - fy);
    const b = 200 * (fy - fz);
    L[i] = 1.16 * fy - 0.16;
    ab[2 * i] = (a + 128) / 255;
    ab[2 * i + 1] = (b + 128) / 255;
    acc.sa += a;
    acc.sb += b;
    acc.saa += a * a;
    acc.sbb += b * b;
    acc.sc += Math.sqrt(a * a + b * b);
  }
  return { L, ab, stats: acc.finish(n) };
}

export interface SplitLab {
  /** L / 100, length n. */
  L: Float32Array;
  /** (ab + 128) / 255, interleaved, length 2n. */
  ab: Float32Array;
  stats: ColourStats;
}

export interface QuantizedLab {
  /** round(L * 2.55), length n. */
  L: Uint8Array;
  /** round(ab) + 128, clamped, interleaved, length 2n. */
  ab: Uint8Array;
  stats: ColourStats;
}

/**
 * The network's planes back to sRGB bytes: normalized L (length n) and normalized ab (length 2n,
 * interleaved; e.g. a prediction upsampled to L's size) -> interleaved RGB, clamped and rounded.
 * @throws RangeError when the lengths disagree.
 */
export function mergeLab(L: ArrayLike<number>, ab: ArrayLike<number>, out?: Uint8Array): Uint8Array {
  const n = L.length;
  if (ab.length !== 2 * n) throw new RangeError(`Expected ab of length ${2 * n} but received ${ab.length}`);
  const rgb = out ?? new Uint8Array(n * 3);
  if (rgb.length < n * 3) throw new RangeError(`Expected out of length ${n * 3} but received ${rgb.length}`);
  const tmp = new Float64Array(3);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    labToLinear(L[i]! * 100, ab[2 * i]! * 255 - 128, ab[2 * i + 1]! * 255 - 128, tmp);
    rgb[j] = linearToByte(tmp[0]!);
    rgb[j + 1] = linearToByte(tmp[1]!);
    rgb[j + 2] = linearToByte(tmp[2]!);
  }
  return rgb;
}

// ---- Compact form for crossing processes: one byte per value (src/stages/loader.ts).

/**
 * Interleaved Lab -> bytes, and the colour statistics of the unquantized values, in one pass: L as
 * round(L * 255 / 100) (steps of 0.39 L), a and b as round(v) + 128 clamped to [0, 255] (steps of 1, error
 * <= 0.5, i.e. <= 0.002 after normalization). Ties round to even.
 * @throws RangeError when lab's length is not a multiple of 3 or an output is too short.
 */
export function quantizeLab(lab: ArrayLike<number>, out?: { L: Uint8Array; ab: Uint8Array }): QuantizedLab {
  const n = checkLength('lab', lab.length, 3);
  const L = out?.L ?? new Uint8Array(n);
  const ab = out?.ab ?? new Uint8Array(n * 2);
  if (L.length < n || ab.length < n * 2) throw new RangeError(`Expected L of length ${n} and ab of length ${n * 2}`);
  // Clamped views round (half to even) and clamp on store, which a plain Uint8Array would wrap instead.
  const qL = new Uint8ClampedArray(L.buffer, L.byteOffset, n);
  const qab = new Uint8ClampedArray(ab.buffer, ab.byteOffset, n * 2);
  const acc = new StatsAccumulator();
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    const a = lab[j + 1]!;
    const b = lab[j + 2]!;
    qL[i] = lab[j]! * 2.55;
    qab[2 * i] = a + 128;
    qab[2 * i + 1] = b + 128;
    acc.sa += a;
    acc.sb += b;
    acc.saa += a * a;
    acc.sbb += b * b;
    acc.sc += Math.sqrt(a * a + b * b);
  }
  return { L, ab, stats: acc.finish(n) };
}

// Both quantizations land on k / 255 once normalized: L = k * 100 / 255 -> k / 255, and
// a = k - 128 -> (a + 128) / 255 = k / 255. One table serves both.
const DEQ = new Float32Array(256);
for (let i = 0; i < 256; i++) DEQ[i] = i / 255;

/**
 * Two dequantized values per 16-bit pair of bytes, as the bit pattern of one Float64 (512 KiB, built on first
 * use): the loader's hub dequantizes every sample's 150 K bytes, and one 32-bit load plus two 64-bit stores per
 * four bytes run 2.3x faster in V8 than a byte-by-byte table loop (0.10 vs 0.24 ms for a 224x224 sample here).
 */
let PAIRS: Float64Array | null = null;
function pairs(): Float64Array {
  if (PAIRS === null) {
    PAIRS = new Float64Array(65536);
    const f = new Float32Array(PAIRS.buffer);
    // The pair's first byte lands in the low half on little-endian machines, its second on big-endian ones.
    const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
    for (let k = 0; k < 65536; k++) {
      const lo = DEQ[k & 255]!;
      const hi = DEQ[k >>> 8]!;
      f[2 * k] = le ? lo : hi;
      f[2 * k + 1] = le ? hi : lo;
    }
  }
  return PAIRS;
}

/** Quantized bytes -> normalized floats k / 255 (both L and ab: see DEQ). Returns a fresh array unless `out`. */
function dequantize(q: Uint8Array, out?: Float32Array): Float32Array {
  const n = q.length;
  const o = out ?? new Float32Array(n);
  if (o.length < n) throw new RangeError(`Expected out of length ${n} but received ${o.length}`);
  const quads = n >> 2;
  let i = 0;
  if (quads > 0 && o.byteOffset % 8 === 0) {
    // Typed-array views need aligned offsets: a byte plane at an odd place in a pipe chunk is copied once.
    const src = q.byteOffset % 4 === 0 ? q : q.slice();
    const w = new Uint32Array(src.buffer, src.byteOffset, quads);
    const d = new Float64Array(o.buffer, o.byteOffset, quads * 2);
    const P = pairs();
    for (let j = 0, k = 0; j < quads; j++, k += 2) {
      const x = w[j]!;
      d[k] = P[x & 0xffff]!;
      d[k + 1] = P[x >>> 16]!;
    }
    i = quads * 4;
  }
  for (; i < n; i++) o[i] = DEQ[q[i]!]!;
  return o;
}

/** Quantized L bytes -> L / 100 (see quantizeLab). */
export function dequantizeL(q: Uint8Array, out?: Float32Array): Float32Array {
  return dequantize(q, out);
}
/** Quantized ab bytes -> (ab + 128) / 255 (see quantizeLab). */
export function dequantizeAb(q: Uint8Array, out?: Float32Array): Float32Array {
  return dequantize(q, out);
}

function invert3(m: readonly number[]): [number, number, number, number, number, number, number, number, number] {
  const [a, b, c, d, e, f, g, h, i] = m as [number, number, number, number, number, number, number, number, number];
  const A = e * i - f * h;
  const B = -(d * i - f * g);
  const C = d * h - e * g;
  const det = a * A + b * B + c * C;
  return [
    A / det, -(b * i - c * h) / det, (b * f - c * e) / det,
    B / det, (a * i - c * g) / det, -(a * f - c * d) / det,
    C / det, -(a * h - b * g) / det, (a * e - b * d) / det,
  ];
}
