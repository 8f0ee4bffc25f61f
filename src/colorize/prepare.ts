/**
 * The `prepare` stage: an image file's bytes -> the two inputs of the colorization network, and what the
 * write stage needs to put the result back together at the original size.
 *
 * Iizuka et al. 2016 process images of any resolution: the local path (low- and mid-level features) sees the
 * image at the processing size, the global path always a fixed S x S rescale (S = 224 in the paper) through
 * the same low-level weights. So each image gives:
 * - `L`: its lightness at the ORIGINAL (oriented) size, L / 100. The output keeps exactly this L; only ab comes
 *   from the network (upsampled).
 * - `local`: L / 100 at the processing size (see processingSize: `full` = the original size rounded to a
 *   multiple of 8, since the local path halves the size three times; N = the long side scaled to N). When the
 *   processing size is the original size, `local` is `L` itself (same array).
 * - `global`: L / 100 of an S x S rescale (aspect ratio not kept, as in the paper).
 * - `alpha` (if any), the input format (for `--format same`), and, with `keepRgb`, the decoded sRGB (eval).
 *
 * Decoding is decode.ts's infer mode (sharp: EXIF orientation applied once, ICC/CMYK/16-bit to 8-bit sRGB,
 * limitInputPixels, truncated and undecodable files fail). A rescale by 1.5x or more is sharp's (lanczos3,
 * antialiased) on the decoded sRGB, L computed from it the way the training data's L is made; a smaller one
 * (the `full` rounding to multiples of 8) resamples L bilinearly.
 *
 * Where the work runs (`pool`): a piscina pool (colorize-worker.ts; the default, threads = cores) so that the
 * main thread stays free to drive the engine, or 'inline' (tests). Planes come back from the workers by
 * transfer. At most `concurrency` images are in flight; results keep input order.
 *
 * Bad input (empty, not an image, corrupt, truncated, over the pixel limit) is reported to ctx.reporter as
 * stage 'decode' with the file's path and the reason, and the stream goes on. Errors that surface at the
 * consumer's await: AbortError when the pipeline aborts; BadInputError from the reporter with onError 'fail';
 * a worker crash (a bug, not bad input). InvalidOptionError is thrown by the factory.
 *
 * Cleanup: on an early stop no new task starts and the source is returned; tasks already handed to the
 * workers finish (they are short; piscina cannot cancel one running beside others in a worker without
 * losing track of that worker) and their results are dropped; a pool the stage created is destroyed before
 * its iterator returns.
 */
import os from 'node:os';
import sharp from 'sharp';
import { Piscina } from 'piscina';
import type { Stage, StageContext } from '../core/pipeline.js';
import type { Sample } from '../types.js';
import { BadInputError, InvalidOptionError, reasonOf } from '../core/errors.js';
import { DEFAULT_CONFIG } from '../config.js';
import { LAB_EPSILON, LAB_KAPPA, srgbToLinear } from '../color/lab.js';
import { decodeSample, decodeSettings, type DecodeSettings } from '../stages/decode.js';
import { parallelMap } from '../stages/parallel-map.js';
import type { PrepareTaskResult } from './worker.js';

/** The global path's input size in the paper (Iizuka et al. 2016: the global features network takes 224 x 224). */
export const PAPER_GLOBAL_SIZE = 224;

/** `full`: the original size rounded to a multiple of 8; a number: the long side scaled to it. */
export type Resolution = 'full' | number;

/** Output formats colorize writes; 'same' keeps the input's. */
export type OutputFormat = 'jpeg' | 'png' | 'webp' | 'tiff' | 'gif' | 'avif';

/** An image ready for the network (all planes row-major; L values are L / 100). */
export interface PreparedImage {
  key: string;
  /** The file's path relative to the input root (files source), or the buffer's name. */
  relPath?: string;
  url?: string;
  /** Sequence number in the input (colorizeBuffers uses it to name results). */
  index?: number;
  /** The original size, orientation applied: the output's size. */
  width: number;
  height: number;
  /** L / 100 at width x height. */
  L: Float32Array;
  /** Alpha at width x height, when the input has it. */
  alpha?: Uint8Array;
  /** The processing size of the local path (multiples of 8). */
  localWidth: number;
  localHeight: number;
  /** L / 100 at localWidth x localHeight (the same array as `L` when the sizes agree). */
  local: Float32Array;
  /** The global path's input size S. */
  globalSize: number;
  /** L / 100 at S x S. */
  global: Float32Array;
  /** The input's format as sharp names it ('jpeg', 'png', ...), or null when unknown. */
  format: OutputFormat | null;
  /** With keepRgb: the decoded 8-bit sRGB at width x height. */
  rgb?: Uint8Array;
}

export interface PrepareOptions {
  /** Processing size of the local path (default 'full'). */
  resolution?: Resolution;
  /** The global path's S (default 224, the paper; the model's second input decides in the graph). */
  globalSize?: number;
  /** Largest width * height accepted (default config.loader.limitInputPixels). */
  limitInputPixels?: number;
  /** Keep the decoded sRGB (for eval). */
  keepRgb?: boolean;
  /** 'inline', a piscina pool running colorize-worker.ts (shared with write), or undefined: a pool of `threads`. */
  pool?: Piscina | 'inline';
  /** Threads of the pool the stage creates (default os.availableParallelism()). */
  threads?: number;
  /** Images in flight (default threads + 1 with a pool, 1 inline). */
  concurrency?: number;
  /** Called with the time each image took to decode and prepare (ms, in its worker). */
  onImage?: (ms: number) => void;
}

/** Plain-data settings: what prepareImage needs (they cross into the workers). */
export interface PrepareSettings {
  resolution: Resolution;
  globalSize: number;
  keepRgb: boolean;
  decode: DecodeSettings;
}

/** The worker file, next to this one in src/ or dist/src/. */
export const COLORIZE_WORKER = new URL('./worker.js', import.meta.url).href;

/**
 * A pool for the prepare and write stages (colorize-worker.ts), `threads` threads, each taking up to
 * `tasksPerWorker` tasks at once (default 2).
 *
 * Why several tasks per worker: piscina queues tasks on the main thread and hands one to a worker when it has
 * room. The main thread can be busy for a long time inside a synchronous engine call (wasm, cpu); tasks
 * already handed over keep the workers going meanwhile, tasks still queued do not. So give each worker as
 * many tasks as the stages keep in flight (colorizeGraph does); the stages bound what is in flight (the pool
 * has no maxQueue).
 */
export function createColorizePool(threads = os.availableParallelism(), tasksPerWorker = 2): Piscina {
  if (!Number.isInteger(threads) || threads < 1) {
    throw new InvalidOptionError(`Expected positive integer for options.threads but received ${String(threads)}`);
  }
  if (!Number.isInteger(tasksPerWorker) || tasksPerWorker < 1) {
    throw new InvalidOptionError(`Expected positive integer for tasksPerWorker but received ${String(tasksPerWorker)}`);
  }
  return new Piscina({ filename: COLORIZE_WORKER, minThreads: threads, maxThreads: threads, concurrentTasksPerWorker: tasksPerWorker });
}

/**
 * Validates the options and resolves the settings.
 * @throws InvalidOptionError for a wrong value.
 */
export function prepareSettings(options: PrepareOptions = {}): PrepareSettings {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError(`Expected object for options but received ${String(options)}`);
  }
  const resolution = options.resolution ?? 'full';
  checkResolution(resolution, 'options.resolution');
  const globalSize = options.globalSize ?? PAPER_GLOBAL_SIZE;
  if (!Number.isInteger(globalSize) || globalSize < 8 || globalSize % 8 !== 0) {
    throw new InvalidOptionError(`Expected positive multiple of 8 for options.globalSize but received ${String(globalSize)}`);
  }
  const keepRgb = options.keepRgb ?? false;
  if (typeof keepRgb !== 'boolean') throw new InvalidOptionError(`Expected boolean for options.keepRgb but received ${String(keepRgb)}`);
  // Any image is worth colorizing, a 1x1 one too (decode's default minSide is the training filter's).
  const { concurrency: _c, ...decode } = decodeSettings({
    mode: 'infer',
    limitInputPixels: options.limitInputPixels ?? DEFAULT_CONFIG.loader.limitInputPixels,
    minSide: 1,
    concurrency: 1,
  });
  return { resolution, globalSize, keepRgb, decode };
}

export function checkResolution(resolution: unknown, name: string): asserts resolution is Resolution {
  if (resolution === 'full') return;
  if (!Number.isInteger(resolution) || (resolution as number) < 8) {
    throw new InvalidOptionError(`Expected 'full' or an integer >= 8 for ${name} but received ${String(resolution)}`);
  }
}

/** Rounds to the nearest multiple of 8, at least 8. */
function round8(v: number): number {
  return Math.max(8, Math.round(v / 8) * 8);
}

/**
 * The local path's processing size for an image of (oriented) size width x height: `full` rounds each side
 * to the nearest multiple of 8 (the three stride-2 layers need it); N scales the long side to N, keeping the
 * aspect ratio, then rounds both sides to multiples of 8. At least 8 x 8.
 */
export function processingSize(width: number, height: number, resolution: Resolution): { width: number; height: number } {
  if (resolution === 'full') return { width: round8(width), height: round8(height) };
  const scale = resolution / Math.max(width, height);
  return { width: round8(width * scale), height: round8(height * scale) };
}

/**
 * Y / Yn of each byte value per channel (R at 0, G at 256, B at 512): sRGB decoding curve times the sRGB
 * primaries' luminance row (IEC 61966-2-1), over the D65 white's Y, the same constants as src/color.ts.
 */
const TY = new Float64Array(768);
{
  const row = [0.2126729, 0.7151522, 0.072175];
  const yn = row[0]! + row[1]! + row[2]!;
  for (let c = 0; c < 3; c++) for (let i = 0; i < 256; i++) TY[c * 256 + i] = (row[c]! / yn) * srgbToLinear(i / 255);
}

/**
 * CIE L* / 100 of interleaved 8-bit sRGB: the L plane of src/color.ts's rgbToLab (divided by 100), computed
 * without a and b (one cube root per pixel instead of three).
 * @throws RangeError when rgb's length is not a multiple of 3.
 */
export function lightness(rgb: Uint8Array, out?: Float32Array): Float32Array {
  if (rgb.length % 3 !== 0) throw new RangeError(`Expected a length that is a multiple of 3 for rgb but received ${rgb.length}`);
  const n = rgb.length / 3;
  const L = out ?? new Float32Array(n);
  const k = LAB_KAPPA / 100;
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    const y = TY[rgb[j]!]! + TY[rgb[j + 1]! + 256]! + TY[rgb[j + 2]! + 512]!;
    L[i] = y > LAB_EPSILON ? 1.16 * Math.cbrt(y) - 0.16 : k * y;
  }
  return L;
}

/** sharp's name of an image format from its first bytes, or null (colorize's `--format same`). */
export function sniffFormat(bytes: Uint8Array): OutputFormat | null {
  const b = bytes;
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'webp';
  if (b.length >= 4 && ascii(b, 0, 4) === 'GIF8') return 'gif';
  if (b.length >= 4 && ((b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a && b[3] === 0) || (b[0] === 0x4d && b[1] === 0x4d && b[2] === 0 && b[3] === 0x2a))) return 'tiff';
  if (b.length >= 12 && ascii(b, 4, 8) === 'ftyp' && /^avi[fs]$/.test(ascii(b, 8, 12))) return 'avif';
  return null;
}

function ascii(b: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...b.subarray(from, to));
}

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

/**
 * L / 100 of the image at w x h: `L` itself at the same size; L resampled bilinearly for a scale change of
 * less than 1.5x either way (no aliasing to speak of); otherwise L of the sRGB rescaled by sharp (lanczos3,
 * antialiased), the way the training data's L is made.
 */
async function rescaledLightness(rgb: Uint8Array, L: Float32Array, width: number, height: number, w: number, h: number): Promise<Float32Array> {
  if (w === width && h === height) return L;
  const sx = w / width;
  const sy = h / height;
  if (sx > 1 / 1.5 && sx < 1.5 && sy > 1 / 1.5 && sy < 1.5) return resizePlane(L, width, height, w, h);
  const data = await sharp(rgb, { raw: { width, height, channels: 3 } }).resize(w, h, { fit: 'fill' }).raw().toBuffer();
  return lightness(data);
}

/**
 * Decodes and prepares one image (runs in a worker or inline).
 * @throws BadInputError (with the reason) for input that cannot be used; nothing else.
 */
export async function prepareImage(sample: PrepareTask['sample'], s: PrepareSettings): Promise<PreparedImage> {
  const img = await decodeSample({ ...sample, fields: {} }, s.decode);
  try {
    const { width, height, rgb } = img;
    const L = lightness(rgb);
    const p = processingSize(width, height, s.resolution);
    const local = await rescaledLightness(rgb, L, width, height, p.width, p.height);
    const global = await rescaledLightness(rgb, L, width, height, s.globalSize, s.globalSize);
    const out: PreparedImage = {
      key: sample.key,
      width,
      height,
      L,
      localWidth: p.width,
      localHeight: p.height,
      local,
      globalSize: s.globalSize,
      global,
      format: sniffFormat(sample.image!) ?? extFormat(sample.imageExt),
    };
    if (sample.relPath !== undefined) out.relPath = sample.relPath;
    if (sample.url !== undefined) out.url = sample.url;
    if (sample.index !== undefined) out.index = sample.index;
    if (img.alpha) out.alpha = img.alpha;
    if (s.keepRgb) out.rgb = rgb;
    return out;
  } catch (err) {
    throw new BadInputError(img.url ?? img.key, reasonOf(err), { cause: err });
  }
}

/** The format an extension names, or null. */
export function extFormat(ext: string | undefined): OutputFormat | null {
  switch ((ext ?? '').toLowerCase().replace(/^\./, '')) {
    case 'jpg': case 'jpeg': return 'jpeg';
    case 'png': return 'png';
    case 'webp': return 'webp';
    case 'tif': case 'tiff': return 'tiff';
    case 'gif': return 'gif';
    case 'avif': return 'avif';
    default: return null;
  }
}

/** The buffers of a prepared image, each once (local may be L): what a worker transfers back. */
export function preparedBuffers(p: PreparedImage): ArrayBuffer[] {
  const set = new Set<ArrayBuffer>();
  for (const a of [p.L, p.local, p.global, p.alpha, p.rgb]) if (a) set.add(a.buffer as ArrayBuffer);
  return [...set];
}

/**
 * The pool options shared by prepare and write, validated: `given` ('inline', a caller's pool, or undefined:
 * the stage creates a colorize pool of `threads`) and `concurrency`, images in flight (default: the pool's
 * threads + 1; 1 inline).
 * @throws InvalidOptionError at once for a wrong pool, threads or concurrency.
 */
export function poolSettings(options: { pool?: Piscina | 'inline'; threads?: number; concurrency?: number }): {
  given: Piscina | 'inline' | undefined;
  threads: number;
  concurrency: number;
} {
  const given = options.pool;
  if (given !== undefined && given !== 'inline' && !(given instanceof Piscina)) {
    throw new InvalidOptionError(`Expected 'inline' or a Piscina pool for options.pool but received ${String(given)}`);
  }
  const threads = options.threads ?? os.availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) {
    throw new InvalidOptionError(`Expected positive integer for options.threads but received ${String(threads)}`);
  }
  const concurrency = options.concurrency ?? (given === 'inline' ? 1 : (given instanceof Piscina ? given.options.maxThreads : threads) + 1);
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new InvalidOptionError(`Expected positive integer for options.concurrency but received ${String(concurrency)}`);
  }
  return { given, threads, concurrency };
}

/**
 * The prepare stage. See the module comment.
 * @throws InvalidOptionError at once for a wrong option.
 * @example pipeline(files({ input: 'in/' }), prepare({ resolution: 'full' }), ...)
 */
export function prepare(options: PrepareOptions = {}): Stage<Sample & { index?: number }, PreparedImage> {
  const settings = prepareSettings(options);
  const { given, threads, concurrency } = poolSettings(options);
  return async function* prepareStage(source, ctx: StageContext): AsyncGenerator<PreparedImage> {
    const pool = given ?? createColorizePool(threads);
    const one = async (sample: Sample & { index?: number }): Promise<PreparedImage | BadInputError> => {
      const t0 = performance.now();
      try {
        if (pool === 'inline') {
          const image = await prepareImage(sample, settings);
          options.onImage?.(performance.now() - t0);
          return image;
        }
        const task: PrepareTask = {
          sample: { key: sample.key, image: sample.image, imageExt: sample.imageExt, url: sample.url, relPath: sample.relPath, index: sample.index },
          settings,
        };
        const r = (await pool.run(task, { name: 'prepareTask' })) as PrepareTaskResult;
        options.onImage?.(r.ms);
        if (r.bad) return new BadInputError(r.bad.key, r.bad.reason);
        return r.image!;
      } catch (err) {
        if (err instanceof BadInputError) return err;
        throw err;
      }
    };
    try {
      const results = parallelMap(one, { concurrency })(source, ctx);
      for await (const r of results) {
        if (r instanceof BadInputError) ctx.reporter.report('decode', r.key, r.reason, r.cause);
        else yield r;
      }
    } finally {
      if (given === undefined && pool !== 'inline') await pool.destroy();
    }
  };
}

/** The message a prepare task sends to a worker (plain data). */
export interface PrepareTask {
  sample: Pick<Sample, 'key' | 'image' | 'imageExt' | 'url' | 'relPath'> & { index?: number };
  settings: PrepareSettings;
}
