/**
 * Resampling for the network's inputs, pure (no Node): a float plane bilinearly (small scale changes) and 8-bit
 * sRGB with an antialiased Lanczos-3 filter (the browser page's stand-in for sharp), and the one rule both
 * colorize and the page follow to make L at another size (rescaledLightness).
 */
import { lightness } from './lightness.js';

/**
 * A plane resampled bilinearly (half-pixel centres, edges clamped) to w x h: for small scale changes (the
 * `full` resolution's rounding to a multiple of 8, moderate zooms), where it is as good as a windowed filter
 * and avoids a second full-size resize and lightness pass.
 */
export function resizePlane(src: Float32Array, width: number, height: number, w: number, h: number): Float32Array {
  if (src.length !== width * height) throw new RangeError(`Expected a plane of ${width * height} values but received ${src.length}`);
  const out = new Float32Array(w * h);
  const x0 = new Int32Array(w);
  const x1 = new Int32Array(w);
  const fx = new Float32Array(w);
  for (let x = 0; x < w; x++) {
    const s = Math.min(Math.max((x + 0.5) * (width / w) - 0.5, 0), width - 1);
    const i = Math.floor(s);
    x0[x] = i;
    x1[x] = Math.min(i + 1, width - 1);
    fx[x] = s - i;
  }
  for (let y = 0; y < h; y++) {
    const s = Math.min(Math.max((y + 0.5) * (height / h) - 0.5, 0), height - 1);
    const j = Math.floor(s);
    const fy = s - j;
    const r0 = j * width;
    const r1 = Math.min(j + 1, height - 1) * width;
    for (let x = 0, o = y * w; x < w; x++, o++) {
      const u = fx[x]!;
      const top = src[r0 + x0[x]!]! + (src[r0 + x1[x]!]! - src[r0 + x0[x]!]!) * u;
      const bot = src[r1 + x0[x]!]! + (src[r1 + x1[x]!]! - src[r1 + x0[x]!]!) * u;
      out[o] = top + (bot - top) * fy;
    }
  }
  return out;
}


/** 8-bit sRGB (interleaved, width x height) -> the same at w x h; sync or async (sharp's is async). */
export type RgbResize = (rgb: Uint8Array, width: number, height: number, w: number, h: number) => Uint8Array | Promise<Uint8Array>;

/**
 * L / 100 of the image at w x h: `L` itself at the same size; L resampled bilinearly for a scale change of
 * less than 1.5x either way (no aliasing to speak of); otherwise L of the sRGB rescaled by `resize` (colorize:
 * sharp's lanczos3; the page: resizeRgb), the way the training data's L is made.
 */
export async function rescaledLightness(
  rgb: Uint8Array, L: Float32Array, width: number, height: number, w: number, h: number, resize: RgbResize,
): Promise<Float32Array> {
  if (w === width && h === height) return L;
  const sx = w / width;
  const sy = h / height;
  if (sx > 1 / 1.5 && sx < 1.5 && sy > 1 / 1.5 && sy < 1.5) return resizePlane(L, width, height, w, h);
  return lightness(await resize(rgb, width, height, w, h));
}

/** Lanczos-3: sinc(x) sinc(x / 3) on |x| < 3. */
function lanczos3(x: number): number {
  x = Math.abs(x);
  if (x < 1e-7) return 1;
  if (x >= 3) return 0;
  const px = Math.PI * x;
  return (3 * Math.sin(px) * Math.sin(px / 3)) / (px * px);
}

/** Catmull-Rom (cubic, a = -0.5) on |x| < 2: libvips enlarges with it whatever kernel a shrink uses. */
function catmullRom(x: number): number {
  x = Math.abs(x);
  if (x < 1) return 1.5 * x * x * x - 2.5 * x * x + 1;
  if (x < 2) return -0.5 * x * x * x + 2.5 * x * x - 4 * x + 2;
  return 0;
}

/**
 * Per output index along an axis of n -> m (`ratio` source pixels per output pixel): the first source index
 * and `taps` normalized weights (indices past an edge repeat the edge: their weights are folded onto it).
 * Shrinking widens Lanczos-3 by the ratio (antialiasing), enlarging interpolates with Catmull-Rom.
 */
function axisWeights(n: number, m: number, ratio: number, enlarge: boolean): { first: Int32Array; taps: number; weights: Float32Array } {
  const scale = Math.max(1, ratio);
  const kernel = enlarge ? catmullRom : lanczos3;
  const taps = enlarge ? 5 : 2 * Math.ceil(3 * scale) + 1;
  const first = new Int32Array(m);
  const weights = new Float32Array(m * taps);
  for (let i = 0; i < m; i++) {
    // Shrinks sample at half-pixel centres; libvips places an enlargement's samples at i n / m - 1/2 (measured).
    const centre = enlarge ? i * ratio - 0.5 : (i + 0.5) * ratio - 0.5;
    const lo = Math.floor(centre) - (taps - 1) / 2;
    const start = Math.min(Math.max(lo, 0), Math.max(n - taps, 0));
    first[i] = start;
    let sum = 0;
    for (let k = 0; k < taps; k++) {
      const j = Math.min(Math.max(lo + k, 0), n - 1);
      const wgt = kernel((lo + k - centre) / scale);
      const slot = j - start;
      // A short axis (n < taps) keeps every tap within [0, n): slot is always in range.
      if (slot >= 0 && slot < taps) weights[i * taps + slot]! += wgt;
      sum += wgt;
    }
    for (let k = 0; k < taps; k++) weights[i * taps + k]! /= sum;
  }
  return { first, taps, weights };
}

/**
 * Box average by integer factors, ceil(w / fx) x ceil(h / fy): the last box of an axis is filled up with copies
 * of the edge pixel, as libvips pads before its shrink.
 */
function shrinkBox(src: Uint8Array, width: number, height: number, fx: number, fy: number): { rgb: Uint8Array; width: number; height: number } {
  const w = Math.ceil(width / fx);
  const h = Math.ceil(height / fy);
  const out = new Uint8Array(w * h * 3);
  const acc = new Float64Array(w * 3);
  const n = fx * fy;
  for (let y = 0; y < h; y++) {
    acc.fill(0);
    for (let k = 0; k < fy; k++) {
      const row = Math.min(y * fy + k, height - 1) * width * 3;
      for (let x = 0; x < w * fx; x++) {
        const s = row + Math.min(x, width - 1) * 3;
        const o = Math.floor(x / fx) * 3;
        acc[o] += src[s]!;
        acc[o + 1] += src[s + 1]!;
        acc[o + 2] += src[s + 2]!;
      }
    }
    for (let i = 0; i < w * 3; i++) out[y * w * 3 + i] = Math.round(acc[i]! / n);
  }
  return { rgb: out, width: w, height: h };
}

/** One separable pass along x (`horizontal`) or y to `size`, rounding to bytes as an 8-bit pipeline does. */
function resamplePass(src: Uint8Array, width: number, height: number, size: number, ratio: number, enlarge: boolean, horizontal: boolean): Uint8Array {
  const n = horizontal ? width : height;
  const { first, taps, weights } = axisWeights(n, size, ratio, enlarge);
  const ow = horizontal ? size : width;
  const oh = horizontal ? height : size;
  const out = new Uint8Array(ow * oh * 3);
  const step = horizontal ? 3 : width * 3;
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      const i = horizontal ? x : y;
      const base = horizontal ? (y * width + first[i]!) * 3 : (first[i]! * width + x) * 3;
      let r = 0, g = 0, b = 0;
      for (let k = 0, s = base, wi = i * taps; k < taps && first[i]! + k < n; k++, s += step, wi++) {
        const wgt = weights[wi]!;
        r += src[s]! * wgt;
        g += src[s + 1]! * wgt;
        b += src[s + 2]! * wgt;
      }
      const o = (y * ow + x) * 3;
      out[o] = r <= 0 ? 0 : r >= 255 ? 255 : Math.round(r);
      out[o + 1] = g <= 0 ? 0 : g >= 255 ? 255 : Math.round(g);
      out[o + 2] = b <= 0 ? 0 : b >= 255 ? 255 : Math.round(b);
    }
  }
  return out;
}

/**
 * 8-bit sRGB rescaled to w x h the way libvips (sharp) resizes with its lanczos3 kernel: a shrink is a box
 * average by the integer part of half the factor, then Lanczos-3 widened by what is left (antialiased); an
 * enlargement is Catmull-Rom; each axis on its own. Not bit-identical to sharp (libvips rounds fixed-point
 * weights its own way): within a level or two (PSNR > 50 dB on photos).
 * @throws RangeError when rgb's length disagrees with the size.
 */
export function resizeRgb(rgb: Uint8Array, width: number, height: number, w: number, h: number): Uint8Array {
  if (rgb.length !== width * height * 3) throw new RangeError(`Expected ${width * height * 3} bytes of RGB but received ${rgb.length}`);
  // libvips's vips_resize: gap 2, so the Lanczos pass always shrinks by at least 2 after the box.
  const fx = Math.max(1, Math.floor(width / w / 2));
  const fy = Math.max(1, Math.floor(height / h / 2));
  const box = fx > 1 || fy > 1 ? shrinkBox(rgb, width, height, fx, fy) : { rgb, width, height };
  let data = box.rgb;
  // What is left after the box, from the exact factor (the box's padded last pixel weighs little).
  if (h < height) data = resamplePass(data, box.width, box.height, h, height / fy / h, false, false);
  if (w < width) data = resamplePass(data, box.width, h < height ? h : height, w, width / fx / w, false, true);
  // libvips enlarges both axes in one affine step with a half-pixel shift, an unscaled axis included (measured).
  if (h > height || w > width) {
    const cw = Math.min(w, width);
    const ch = Math.min(h, height);
    data = resamplePass(data, cw, ch, h, Math.min(1, height / h), true, false);
    data = resamplePass(data, cw, h, w, Math.min(1, width / w), true, true);
  }
  return data === rgb ? rgb.slice() : data;
}
