/**
 * The `write` stage: predicted images -> colorized files (or buffers). For each image:
 * 1. compose: the predicted ab (at half the processing size) is upsampled bilinearly to the ORIGINAL size and
 *    joined with the ORIGINAL L (never a resampled one), then Lab -> 8-bit sRGB (composeRgb). Where the
 *    predicted colour is outside the sRGB gamut at that lightness, its chroma is reduced until it fits, so
 *    the output's L is the input's (within 8-bit rounding) instead of clipping channels and shifting L.
 * 2. encode (sharp): the alpha channel re-attached (flattened onto white for JPEG, which has none), the format
 *    kept or converted, the sRGB ICC profile written. The pixels are already oriented and the output carries
 *    no EXIF, so no viewer rotates them a second time.
 * 3. write: atomically under `out` at the input's relative path (the extension changed with the format): a
 *    temp file beside the target, fsync, then rename (with `overwrite`) or link (without: link(2) fails if
 *    the target exists, so an output that appeared meanwhile is never clobbered; it counts as skipped).
 *    A target that resolves inside the input root (`input`) is refused: colorize never writes into --in.
 * Steps 1 and 2 run in the colorize worker pool (main thread free for the engine), `concurrency` images at
 * a time; step 3 on libuv's, up to `ioConcurrency` more files at a time (a slow disk holds no encoder).
 *
 * `out: null` returns the encoded bytes instead of writing (colorizeBuffers); `encode: false` returns the
 * composed RGB (eval).
 *
 * Bad output (an encode failure, a write error such as EACCES or ENOSPC, a target inside the input) is reported
 * to ctx.reporter as stage 'write' with the target path and the reason, and the stream goes on. Errors that
 * surface at the consumer's await: AbortError, BadInputError with onError 'fail', a worker crash.
 *
 * Cleanup: on an early stop, no new task starts; tasks already handed to the workers and writes under way
 * finish (whole files: a stop never leaves a partial output or a temp file) before the stage's iterator
 * returns, and a pool the stage created is destroyed.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { Piscina } from 'piscina';
import type { Stage, StageContext } from '../core/pipeline.js';
import { BadInputError, InvalidOptionError, reasonOf } from '../core/errors.js';
import { LAB_EPSILON, LAB_KAPPA, SRGB_TO_XYZ, XYZ_TO_SRGB, srgbToLinear } from '../color/lab.js';
import { tempPathFor } from '../core/atomic.js';
import { parallelMap } from '../stages/parallel-map.js';
import { createColorizePool, extFormat, poolSettings, type OutputFormat } from './prepare.js';
import type { PredictedImage } from './predict.js';

export type FormatChoice = 'same' | OutputFormat | 'jpg';

/** What the write stage yields for each image. */
export interface ColorizedImage {
  key: string;
  relPath?: string;
  index?: number;
  width: number;
  height: number;
  format: OutputFormat;
  /** 'written' to `path`; 'skipped': `path` existed (and no overwrite); 'encoded': `data` (out: null); 'composed': `rgb`. */
  status: 'written' | 'skipped' | 'encoded' | 'composed';
  /** The output file. */
  path?: string;
  /** The encoded file (out: null). */
  data?: Buffer;
  /** The composed sRGB, width x height x 3 (encode: false). */
  rgb?: Uint8Array;
  /** The image as prepared (encode: false only): its L / 100 and, with prepare's keepRgb, the decoded sRGB. */
  source?: PredictedImage;
}

export interface WriteOptions {
  /** Output root; null: no files, the encoded bytes come back in `data`. */
  out: string | null;
  /** The input root (directory or file): no output may resolve inside it. */
  input?: string;
  /** Output format (default 'same': the input's, by extension, else by content, else png). */
  format?: FormatChoice;
  /** JPEG/WebP/AVIF/TIFF quality 1..100 (default 90). */
  quality?: number;
  /** Replace existing outputs (default false: an existing output is skipped). */
  overwrite?: boolean;
  /** false: compose only, return the RGB (no encoding, no files). Default true. */
  encode?: boolean;
  /** 'inline', a piscina pool running colorize-worker.ts, or undefined: a pool of `threads`. */
  pool?: Piscina | 'inline';
  threads?: number;
  /** Images being composed and encoded at once (default threads + 1 with a pool, 1 inline). */
  concurrency?: number;
  /**
   * File writes in flight besides (default 16): a write waits on the disk (fsync), not on a CPU, so slow
   * storage does not hold back the encoders and, through them, the engine.
   */
  ioConcurrency?: number;
  /** fsync each file before renaming it into place (default true: whole files after a power loss too). */
  fsync?: boolean;
  /**
   * Called for each image once its work is done (before it is yielded: an image finished while the run is
   * stopping is counted here even though it is never yielded) with the time spent on it, compose + encode
   * (worker) and the file write, and what became of it.
   */
  onImage?: (t: { composeMs: number; writeMs: number; status: 'written' | 'skipped' | 'encoded' }) => void;
}

// ---- Lab -> sRGB at a fixed L (the constants of src/color.ts: IEC 61966-2-1 primaries, D65, CIE 15:2004).

const M = SRGB_TO_XYZ;
const XN = M[0] + M[1] + M[2];
const YN = M[3] + M[4] + M[5];
const ZN = M[6] + M[7] + M[8];
const MI = XYZ_TO_SRGB;
// As locals for the hot loop (V8 keeps them in registers; an array read per use is slower).
const [MI0, MI1, MI2, MI3, MI4, MI5, MI6, MI7, MI8] = MI;
/** L above kappa * epsilon (= 8) is on the cube part of the curve. */
const KE = LAB_KAPPA * LAB_EPSILON;
/** MID[k]: linear light of the sRGB value (k + 0.5) / 255; see src/color.ts linearToByte. */
const MID = new Float64Array(255);
for (let k = 0; k < 255; k++) MID[k] = srgbToLinear((k + 0.5) / 255);

/**
 * LUT[k]: the byte of linear value k / LUT_SCALE. Consecutive byte boundaries (MID) are at least 3e-4 apart
 * (the sRGB curve's steepest step, near black, is 1 / (255 * 12.92)) and a LUT cell is 1.5e-5 wide, so a cell
 * holds at most one boundary: the byte of v is LUT[floor(v * LUT_SCALE)] or the next one, decided by one
 * comparison with MID. Exact (the same bytes as a binary search over MID), and 3x faster.
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

function linearToByte(v: number): number {
  if (!(v > 0)) return 0; // also NaN
  if (v >= 1) return 255;
  const b = LUT[(v * LUT_SCALE) | 0]!;
  return b < 255 && v >= MID[b]! ? b + 1 : b;
}

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
      // The common case inline (an in-gamut colour); labPixel reduces the chroma of the others.
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

/** The canonical extension of a format. */
export function formatExtension(format: OutputFormat): string {
  return format === 'jpeg' ? 'jpg' : format === 'tiff' ? 'tif' : format;
}

/**
 * The output's format and relative path: 'same' is the format the input's extension names, else the one its
 * content shows (`detected`), else png; the extension changes only when it does not name the output format
 * (photo.JPEG stays photo.JPEG with 'same' or 'jpg'; photo.png becomes photo.jpg with 'jpg').
 */
export function outputFor(relPath: string, format: FormatChoice, detected: OutputFormat | null): { relPath: string; format: OutputFormat } {
  const base = relPath.slice(relPath.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  const ext = dot > 0 ? base.slice(dot + 1) : '';
  const byExt = extFormat(ext);
  const fmt: OutputFormat = format === 'same' ? (byExt ?? detected ?? 'png') : format === 'jpg' ? 'jpeg' : format;
  if (byExt === fmt) return { relPath, format: fmt };
  const stem = dot > 0 ? relPath.slice(0, relPath.length - ext.length - 1) : relPath;
  return { relPath: `${stem}.${formatExtension(fmt)}`, format: fmt };
}

export const FORMATS: readonly FormatChoice[] = ['same', 'jpg', 'jpeg', 'png', 'webp', 'tiff', 'gif', 'avif'];

/**
 * Encodes 8-bit sRGB (plus alpha) with sharp, tagged with the sRGB ICC profile, without EXIF (the pixels are
 * oriented already).
 */
export async function encodeImage(o: {
  rgb: Uint8Array;
  width: number;
  height: number;
  alpha?: Uint8Array;
  format: OutputFormat;
  quality: number;
}): Promise<Buffer> {
  const { width, height, rgb, alpha, format, quality } = o;
  const n = width * height;
  let img: Sharp;
  if (alpha && format !== 'jpeg') {
    const rgba = new Uint8Array(n * 4);
    for (let i = 0, j = 0, k = 0; i < n; i++, j += 3, k += 4) {
      rgba[k] = rgb[j]!;
      rgba[k + 1] = rgb[j + 1]!;
      rgba[k + 2] = rgb[j + 2]!;
      rgba[k + 3] = alpha[i]!;
    }
    img = sharp(rgba, { raw: { width, height, channels: 4 } });
  } else if (alpha) {
    const rgba = new Uint8Array(n * 4);
    for (let i = 0, j = 0, k = 0; i < n; i++, j += 3, k += 4) {
      rgba[k] = rgb[j]!;
      rgba[k + 1] = rgb[j + 1]!;
      rgba[k + 2] = rgb[j + 2]!;
      rgba[k + 3] = alpha[i]!;
    }
    img = sharp(rgba, { raw: { width, height, channels: 4 } }).flatten({ background: '#ffffff' });
  } else {
    img = sharp(rgb, { raw: { width, height, channels: 3 } });
  }
  switch (format) {
    case 'jpeg':
      img = img.jpeg({ quality });
      break;
    case 'png':
      img = img.png();
      break;
    case 'webp':
      img = img.webp({ quality });
      break;
    case 'tiff':
      img = img.tiff({ quality });
      break;
    case 'gif':
      img = img.gif();
      break;
    case 'avif':
      img = img.avif({ quality });
      break;
  }
  return img.withIccProfile('srgb').toBuffer();
}

/** The message a compose task sends to a worker: planes by transfer. */
export interface ComposeTask {
  L: Float32Array;
  width: number;
  height: number;
  ab: Float32Array;
  abWidth: number;
  abHeight: number;
  alpha?: Uint8Array;
  /** null: return the RGB, do not encode. */
  format: OutputFormat | null;
  quality: number;
}

/** Composes (and encodes) one image: the work of a compose task, in a worker or inline. */
export async function composeImage(t: ComposeTask): Promise<{ data?: Buffer; rgb?: Uint8Array; ms: number }> {
  const t0 = performance.now();
  const rgb = composeRgb(t.L, t.width, t.height, t.ab, t.abWidth, t.abHeight);
  if (t.format === null) return { rgb, ms: performance.now() - t0 };
  const data = await encodeImage({ rgb, width: t.width, height: t.height, alpha: t.alpha, format: t.format, quality: t.quality });
  return { data, ms: performance.now() - t0 };
}

/** True when `p` is `root` or inside it (both absolute, resolved). */
export function isInside(p: string, root: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..' + path.sep) && rel !== '..' && !path.isAbsolute(rel));
}

/** The real path of `p`, or of its nearest existing ancestor joined with the rest (p need not exist). */
export async function realPathOf(p: string): Promise<string> {
  const abs = path.resolve(p);
  let head = abs;
  const tail: string[] = [];
  for (;;) {
    try {
      return path.join(await fsp.realpath(head), ...tail.reverse());
    } catch {
      const up = path.dirname(head);
      if (up === head) return abs;
      tail.push(path.basename(head));
      head = up;
    }
  }
}

/**
 * Writes `data` to `target` atomically: temp file beside it, fsync, then rename (overwrite) or link (no
 * overwrite: fails with EEXIST rather than replace a file). Returns 'exists' when the target was there and
 * overwrite is false. The temp file is removed in every case.
 */
export async function writeOutput(target: string, data: Uint8Array, overwrite: boolean, fsync = true): Promise<'written' | 'exists'> {
  await fsp.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  try {
    const fh = await fsp.open(tmp, 'wx');
    try {
      await fh.writeFile(data);
      if (fsync) await fh.sync();
    } finally {
      await fh.close();
    }
    if (overwrite) {
      await fsp.rename(tmp, target);
      return 'written';
    }
    try {
      await fsp.link(tmp, target);
      return 'written';
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return 'exists';
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS' && code !== 'EMLINK') throw err;
      // A file system without hard links: check, then rename (a race with another writer is possible here).
      if (await fsp.lstat(target).then(() => true, () => false)) return 'exists';
      await fsp.rename(tmp, target);
      return 'written';
    }
  } finally {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
  }
}

/**
 * The write stage. See the module comment.
 * @throws InvalidOptionError at once for a wrong option.
 * @example pipeline(..., predict({ tf, model }), write({ out: 'out/', input: 'in/', format: 'same' }))
 */
export function write(options: WriteOptions): Stage<PredictedImage, ColorizedImage> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError(`Expected object for options but received ${String(options)}`);
  }
  const out = options.out;
  if (out !== null && (typeof out !== 'string' || out === '')) {
    throw new InvalidOptionError(`Expected non-empty string or null for options.out but received ${String(out)}`);
  }
  const format = options.format ?? 'same';
  if (!FORMATS.includes(format)) {
    throw new InvalidOptionError(`Expected one of ${FORMATS.join('|')} for options.format but received ${String(format)}`);
  }
  const quality = options.quality ?? 90;
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new InvalidOptionError(`Expected integer in [1, 100] for options.quality but received ${String(quality)}`);
  }
  const overwrite = options.overwrite ?? false;
  if (typeof overwrite !== 'boolean') throw new InvalidOptionError(`Expected boolean for options.overwrite but received ${String(overwrite)}`);
  const encode = options.encode ?? true;
  if (typeof encode !== 'boolean') throw new InvalidOptionError(`Expected boolean for options.encode but received ${String(encode)}`);
  if (options.input !== undefined && (typeof options.input !== 'string' || options.input === '')) {
    throw new InvalidOptionError(`Expected non-empty string for options.input but received ${String(options.input)}`);
  }
  const { given, threads, concurrency } = poolSettings(options);
  const ioConcurrency = options.ioConcurrency ?? 16;
  if (!Number.isInteger(ioConcurrency) || ioConcurrency < 0) {
    throw new InvalidOptionError(`Expected non-negative integer for options.ioConcurrency but received ${String(ioConcurrency)}`);
  }
  const fsync = options.fsync ?? true;
  if (typeof fsync !== 'boolean') throw new InvalidOptionError(`Expected boolean for options.fsync but received ${String(fsync)}`);
  const outRoot = out === null ? null : path.resolve(out);

  return async function* writeStage(source, ctx: StageContext): AsyncGenerator<ColorizedImage> {
    const inputReal = options.input === undefined ? null : await realPathOf(options.input);
    const pool = given ?? createColorizePool(threads);
    const dirChecked = new Map<string, Promise<boolean>>();
    /** Whether a target's directory (created if needed) resolves outside the input. */
    const safeDir = (dir: string): Promise<boolean> => {
      let p = dirChecked.get(dir);
      if (!p) {
        p = (async () => {
          if (inputReal === null) return true;
          const real = await realPathOf(dir);
          return !isInside(real, inputReal);
        })();
        dirChecked.set(dir, p);
      }
      return p;
    };

    const one = async (img: PredictedImage): Promise<ColorizedImage | BadInputError> => {
      const name = img.relPath ?? img.key;
      const o = outputFor(name, format, img.format);
      const target = outRoot === null ? undefined : path.join(outRoot, ...o.relPath.split('/'));
      const where = target ?? name;
      const result: ColorizedImage = { key: img.key, width: img.width, height: img.height, format: o.format, status: 'encoded' };
      if (img.relPath !== undefined) result.relPath = o.relPath;
      if (img.index !== undefined) result.index = img.index;
      try {
        if (target !== undefined) {
          if (!isInside(target, outRoot!) || target === outRoot) return new BadInputError(where, `output path escapes ${outRoot}`);
          if (!(await safeDir(path.dirname(target))) || (inputReal !== null && target === inputReal)) {
            return new BadInputError(where, `refusing to write inside the input ${options.input}`);
          }
          if (!overwrite && (await fsp.lstat(target).then(() => true, () => false))) {
            return { ...result, status: 'skipped', path: target };
          }
        }
        const task: ComposeTask = {
          L: img.L, width: img.width, height: img.height, ab: img.ab, abWidth: img.abWidth, abHeight: img.abHeight,
          format: encode ? o.format : null, quality,
        };
        if (img.alpha) task.alpha = img.alpha;
        let r: { data?: Buffer | Uint8Array; rgb?: Uint8Array; ms: number };
        await slots.acquire();
        try {
          if (pool === 'inline' || !encode) {
            // Without encoding the caller keeps the planes (eval reads L and rgb): nothing is transferred.
            r = pool === 'inline' ? await composeImage(task) : await pool.run(task, { name: 'composeTask' });
          } else {
            const transfer = [...new Set([img.L.buffer, img.ab.buffer, img.alpha?.buffer].filter((b) => b !== undefined))] as ArrayBuffer[];
            r = await pool.run(task, { name: 'composeTask', transferList: transfer });
          }
        } finally {
          slots.release();
        }
        if (!encode) {
          return { ...result, status: 'composed', rgb: r.rgb!, source: img };
        }
        const data = Buffer.isBuffer(r.data) ? r.data : Buffer.from(r.data!.buffer, r.data!.byteOffset, r.data!.byteLength);
        if (target === undefined) {
          options.onImage?.({ composeMs: r.ms, writeMs: 0, status: 'encoded' });
          return { ...result, data };
        }
        const t0 = performance.now();
        const status = (await writeOutput(target, data, overwrite, fsync)) === 'written' ? 'written' : 'skipped';
        options.onImage?.({ composeMs: r.ms, writeMs: performance.now() - t0, status });
        return { ...result, status, path: target };
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        if ((err as { name?: string })?.name === 'AbortError') throw err;
        return new BadInputError(where, reasonOf(err), { cause: err });
      }
    };
    const slots = new Semaphore(concurrency);
    try {
      for await (const r of parallelMap(one, { concurrency: concurrency + (out === null ? 0 : ioConcurrency) })(source, ctx)) {
        if (r instanceof BadInputError) ctx.reporter.report('write', r.key, r.reason, r.cause);
        else yield r;
      }
    } finally {
      if (given === undefined && pool !== 'inline') await pool.destroy();
    }
  };
}

/** A counting semaphore: at most `n` holders; waiters are served in order. */
class Semaphore {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}
