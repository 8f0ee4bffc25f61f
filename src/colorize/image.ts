/**
 * The per-image work of colorize, pure of any stream: what the worker pool runs (worker.ts) and what the
 * stages run inline. Two halves:
 *
 * prepareImage: an image file's bytes -> the two inputs of the colorization network, and what the write stage
 * needs to put the result back together at the original size. Iizuka et al. 2016 process images of any
 * resolution: the local path (low- and mid-level features) sees the image at the processing size, the global
 * path always a fixed S x S rescale (S = 224 in the paper) through the same low-level weights. So each image
 * gives:
 * - `L`: its lightness at the ORIGINAL (oriented) size, L / 100. The output keeps exactly this L; only ab comes
 *   from the network (upsampled).
 * - `local`: L / 100 at the processing size (see processingSize: `full` = the original size rounded to a
 *   multiple of 8, since the local path halves the size three times; N = the long side scaled to N). When the
 *   processing size is the original size, `local` is `L` itself (same array).
 * - `global`: L / 100 of an S x S rescale (aspect ratio not kept, as in the paper).
 * - `alpha` (if any), the input format (for `--format same`), and, with `keepRgb`, the decoded sRGB (eval).
 * Decoding is decode.ts's infer mode (sharp: EXIF orientation applied once, ICC/CMYK/16-bit to 8-bit sRGB,
 * limitInputPixels, truncated and undecodable files fail). A rescale by 1.5x or more is sharp's (lanczos3,
 * antialiased) on the decoded sRGB, L computed from it the way the training data's L is made; a smaller one
 * (the `full` rounding to multiples of 8) resamples L bilinearly.
 *
 * composeImage: L and the predicted ab -> 8-bit sRGB (src/color/compose.ts) -> encoded with sharp
 * (encodeImage): the alpha channel re-attached (flattened onto white for JPEG, which has none), the format
 * kept or converted, the sRGB ICC profile written. The pixels are already oriented and the output carries no
 * EXIF, so no viewer rotates them a second time.
 *
 * Errors: prepareImage throws BadInputError (with the reason) for input it cannot use; prepareSettings and
 * checkResolution throw InvalidOptionError; encodeImage rejects with sharp's error.
 */
import sharp, { type Metadata, type Sharp } from 'sharp';
import type { Sample } from '../types.js';
import type { Lease } from '../core/budget.js';
import { BadInputError, reasonOf } from '../core/errors.js';
import { bool, invalidOption, object } from '../core/validate.js';
import { DEFAULT_CONFIG } from '../config.js';
import { lightness } from '../color/lightness.js';
import { composeRgb } from '../color/compose.js';
import { rescaledLightness } from '../color/resize.js';
import { processingSize, resolveResolution, type LocalScale, type Resolution } from '../network/resolution.js';
import { decodeSample, decodeSettings, type DecodeSettings } from '../stages/decode.js';
import { extFormat, sniffFormat, type OutputFormat } from './formats.js';

// The processing size and the resampling are pure modules the browser page shares; colorize's API keeps them here.
export { MAX_AUTO_SIDE, processingSize, resolveResolution, type LocalScale, type Resolution } from '../network/resolution.js';
export { resizePlane } from '../color/resize.js';

/** The global path's input size in the paper (Iizuka et al. 2016: the global features network takes 224 x 224). */
export const PAPER_GLOBAL_SIZE = 224;

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
  /** Said once of the input: only its first frame or page is used (stages/decode.ts multiFrameNote). */
  note?: string;
  /** The image's share of the run's memory budget (the admit stage's), released by whoever finishes it. */
  lease?: Lease;
}

/** What prepareSettings reads (the prepare stage's options add the pool's). */
export interface PrepareSettingsOptions {
  /** Processing size of the local path (default 'auto', resolved without a model: the original size, capped). */
  resolution?: Resolution | LocalScale;
  /** The global path's S (default 224, the paper; the model's second input decides in the graph). */
  globalSize?: number;
  /** Largest width * height accepted (default config.loader.limitInputPixels). */
  limitInputPixels?: number;
  /** Keep the decoded sRGB (for eval). */
  keepRgb?: boolean;
}

/** Plain-data settings: what prepareImage needs (they cross into the workers). */
export interface PrepareSettings {
  resolution: LocalScale;
  globalSize: number;
  keepRgb: boolean;
  decode: DecodeSettings;
}

/**
 * Validates the options and resolves the settings.
 * @throws InvalidOptionError for a wrong value.
 */
export function prepareSettings(options: PrepareSettingsOptions = {}): PrepareSettings {
  object(options, 'options');
  const asked = options.resolution ?? 'auto';
  if (typeof asked !== 'object') checkResolution(asked, 'options.resolution');
  else if (!(asked.maxSide >= 8) || (asked.shortSide !== undefined && !(asked.shortSide >= 1))) {
    throw invalidOption('options.resolution', '{ shortSide?: number >= 1, maxSide: number >= 8 }', asked);
  }
  const resolution = resolveResolution(asked);
  const globalSize = options.globalSize ?? PAPER_GLOBAL_SIZE;
  if (!Number.isInteger(globalSize) || globalSize < 8 || globalSize % 8 !== 0) {
    throw invalidOption('options.globalSize', 'positive multiple of 8', globalSize);
  }
  const keepRgb = bool(options.keepRgb ?? false, 'options.keepRgb');
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
  if (resolution === 'full' || resolution === 'auto') return;
  if (!Number.isInteger(resolution) || (resolution as number) < 8) {
    throw invalidOption(name, "'auto', 'full' or an integer >= 8", resolution);
  }
}

/** sRGB rescaled by sharp (lanczos3, antialiased), for the rescales of 1.5x or more. */
async function sharpResize(rgb: Uint8Array, width: number, height: number, w: number, h: number): Promise<Uint8Array> {
  return sharp(rgb, { raw: { width, height, channels: 3 } }).resize(w, h, { fit: 'fill' }).raw().toBuffer();
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
    const local = await rescaledLightness(rgb, L, width, height, p.width, p.height, sharpResize);
    const global = await rescaledLightness(rgb, L, width, height, s.globalSize, s.globalSize, sharpResize);
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
    if (img.note !== undefined) out.note = img.note;
    if (s.keepRgb) out.rgb = rgb;
    return out;
  } catch (err) {
    throw new BadInputError(img.url ?? img.key, reasonOf(err), { cause: err });
  }
}

/**
 * The bytes one image takes at most while colorize has it in flight, from its header (sharp metadata, no
 * decode): the file; per pixel of the original size, the decode (sharp's raw output and the 8-bit RGB), L
 * (kept until the write) and the compose (the RGB it makes), with alpha its plane and the RGBA the encoder
 * gets, with keepRgb the kept RGB; per pixel of the local input, that input, the engine's copy of it and the
 * ab. An estimate that errs high: the admit stage (src/stages/admit.ts) holds it against the run's memory
 * budget. A file whose header cannot be read costs its size (prepare reports it).
 */
export async function imageCost(image: Uint8Array | undefined, s: PrepareSettings): Promise<number> {
  const bytes = image?.length ?? 0;
  if (!image || bytes === 0) return bytes;
  let meta: Metadata;
  try {
    meta = await sharp(image, { limitInputPixels: s.decode.limitInputPixels, failOn: s.decode.failOn }).metadata();
  } catch {
    return bytes;
  }
  const width = meta.autoOrient?.width ?? meta.width ?? 0;
  const height = meta.autoOrient?.height ?? meta.height ?? 0;
  const n = width * height;
  if (!(n > 0) || n > s.decode.limitInputPixels) return bytes;
  const p = processingSize(width, height, s.resolution);
  const perPixel = 12 + (meta.hasAlpha ? 5 : 0) + (s.keepRgb ? 3 : 0);
  return bytes + n * perPixel + p.width * p.height * 10;
}

/** The buffers of a prepared image, each once (local may be L): what a worker transfers back. */
export function preparedBuffers(p: PreparedImage): ArrayBuffer[] {
  const set = new Set<ArrayBuffer>();
  for (const a of [p.L, p.local, p.global, p.alpha, p.rgb]) if (a) set.add(a.buffer as ArrayBuffer);
  return [...set];
}

/** The message a prepare task sends to a worker (plain data). */
export interface PrepareTask {
  sample: Pick<Sample, 'key' | 'image' | 'imageExt' | 'url' | 'relPath'> & { index?: number };
  settings: PrepareSettings;
}

/** What a prepare task returns: the image (planes by transfer) or why the input is bad, and its time. */
export interface PrepareTaskResult {
  image?: PreparedImage;
  bad?: { key: string; reason: string };
  ms: number;
}

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
  if (alpha) {
    const rgba = new Uint8Array(n * 4);
    for (let i = 0, j = 0, k = 0; i < n; i++, j += 3, k += 4) {
      rgba[k] = rgb[j]!;
      rgba[k + 1] = rgb[j + 1]!;
      rgba[k + 2] = rgb[j + 2]!;
      rgba[k + 3] = alpha[i]!;
    }
    img = sharp(rgba, { raw: { width, height, channels: 4 } });
    // JPEG has no alpha: flattened onto white.
    if (format === 'jpeg') img = img.flatten({ background: '#ffffff' });
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
