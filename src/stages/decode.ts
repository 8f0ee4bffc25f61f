/**
 * The `decode` stage: Sample (encoded image bytes) -> DecodedImage (8-bit sRGB, interleaved RGB).
 *
 * sharp does the work, on libuv's threads: the stage keeps `concurrency` images in flight and yields them in
 * input order. Every image goes through one sharp pipeline:
 * - `failOn` (option): train mode defaults to 'warning' (sharp's default for untrusted input): a truncated
 *   image fails instead of being padded with grey, and so does corrupt entropy-coded data, which libjpeg only
 *   *warns* about ("bad Huffman code") while decoding garbage; losing a sample costs training nothing, learning
 *   from garbage does (all 290 real photographs it was tried on pass). Caveat: when sharp shrinks a JPEG on load
 *   (decoding at 1/2, 1/4 or 1/8 scale for a large downscale), libjpeg may decode corrupt data without a
 *   warning; only truncation is then certain to be caught. Infer mode defaults to 'error': truncated and
 *   undecodable files fail, but a file with a mere libjpeg warning, which every viewer shows, is colorized.
 * - `limitInputPixels` guards against decompression bombs (checked from the header, before decoding).
 * - `sequentialRead`: decode streams top to bottom with little memory (libvips falls back to random access
 *   by itself where an operation needs it, e.g. a 90 degree EXIF rotation).
 * - `.rotate()` applies the EXIF orientation; width and height are the oriented ones.
 * - ICC profiles, CMYK and 16-bit inputs: `.toColourspace('srgb')` converts through the embedded profile (or
 *   sharp's default CMYK profile) to 8-bit sRGB; greyscale becomes three equal channels.
 *
 * Train mode (the paper's augmentation, Iizuka et al. 2016 section 4: "random crop of 224x224 from an image
 * scaled to 256 on its short side", plus a horizontal flip): scale the short side to `resize`, crop a random
 * `crop` x `crop` window and flip it with probability 1/2. With `scaleJitter` [min, max], the short side is
 * scaled to an integer drawn uniformly in [min, max] instead of `resize` (random scale, on a stream of its own). The draws come from `new Rng(seed).fork(epoch, key)`
 * (epoch from the sample's position, else `options.epoch`), so one sample in one epoch gets the same crop in
 * any process and after a resume. Alpha is flattened onto white.
 *
 * Infer mode: the original size (orientation applied), alpha kept apart in `alpha` when the input has one.
 *
 * Bad input (no image member, empty, not an image, corrupt, truncated, over the pixel limit, a short side
 * under `minSide`) is reported to `ctx.reporter` as stage 'decode' with the reason, and the stream goes on.
 * An input with more frames or pages than the one decoded (an animated GIF or WebP, a multi-page TIFF) is still
 * used, and said so once per file as a notice (`multiFrameNote`; the output's `note`).
 * Errors that surface at the consumer's await: AbortError when the pipeline aborts; BadInputError from the
 * reporter with onError 'fail'. InvalidOptionError is thrown by the factory.
 *
 * Cleanup: an early stop returns the source at once and waits for the (uninterruptible, short) sharp calls
 * still in flight, so no decode outlives the stage.
 */
import os from 'node:os';
import sharp, { type Metadata, type Sharp } from 'sharp';
import type { Stage, StageContext } from '../core/pipeline.js';
import type { DecodedImage, Sample } from '../types.js';
import { BadInputError, InvalidOptionError, reasonOf } from '../core/errors.js';
import { DEFAULT_CONFIG } from '../config.js';
import { Rng } from '../core/rng.js';
import { mapOrdered } from '../core/map-concurrent.js';
import { bool, finiteNumber, invalidOption, nonNegativeInt, object, positiveInt, scaleRange } from '../core/validate.js';
import { quantizeLab, type QuantizedLab } from '../color/lab.js';

export interface DecodeOptions {
  /** 'train': scale, random crop and flip (the paper's augmentation); 'infer': keep the original. */
  mode: 'train' | 'infer';
  /** Train: the short side is scaled to this before cropping (default 256, the paper). */
  resize?: number;
  /** Train: the square crop's side (default 224, the paper). */
  crop?: number;
  /** Train: random horizontal flip (default true). */
  flip?: boolean;
  /** Train: null (default), or the [min, max] range the short side is scaled to at random instead of `resize`. */
  scaleJitter?: [number, number] | null;
  /** Train: seed of the crop and flip draws (default 0). */
  seed?: number;
  /** Train: epoch of samples that carry no position (default 0). */
  epoch?: number;
  /** Largest width * height accepted (default config.loader.limitInputPixels). */
  limitInputPixels?: number;
  /** Smallest accepted short side, after orientation (default config.filter.minSide). */
  minSide?: number;
  /** libvips' fail_on level (default 'warning' in train mode, 'error' in infer mode; see above). */
  failOn?: 'truncated' | 'error' | 'warning';
  /** Images decoded at once (default os.availableParallelism()). */
  concurrency?: number;
}

/** Resolved options: what decodeSample needs (plain data, so it can cross into a child process). */
export interface DecodeSettings {
  mode: 'train' | 'infer';
  resize: number;
  crop: number;
  flip: boolean;
  scaleJitter: [number, number] | null;
  seed: number;
  epoch: number;
  limitInputPixels: number;
  minSide: number;
  failOn: 'truncated' | 'error' | 'warning';
}

/**
 * Validates and fills in decode options.
 * @throws InvalidOptionError for a wrong value.
 */
export function decodeSettings(options: DecodeOptions): DecodeSettings & { concurrency: number } {
  object(options, 'options');
  const mode = options.mode;
  if (mode !== 'train' && mode !== 'infer') {
    throw invalidOption('options.mode', "'train' or 'infer'", mode);
  }
  const s = {
    mode,
    resize: options.resize ?? DEFAULT_CONFIG.augment.resize,
    crop: options.crop ?? DEFAULT_CONFIG.augment.crop,
    flip: options.flip ?? true,
    scaleJitter: options.scaleJitter ?? null,
    seed: options.seed ?? 0,
    epoch: options.epoch ?? 0,
    limitInputPixels: options.limitInputPixels ?? DEFAULT_CONFIG.loader.limitInputPixels,
    minSide: options.minSide ?? DEFAULT_CONFIG.filter.minSide,
    failOn: options.failOn ?? (mode === 'train' ? 'warning' : 'error'),
    concurrency: options.concurrency ?? os.availableParallelism(),
  };
  positiveInt(s.resize, 'options.resize');
  positiveInt(s.crop, 'options.crop');
  positiveInt(s.limitInputPixels, 'options.limitInputPixels');
  positiveInt(s.minSide, 'options.minSide');
  positiveInt(s.concurrency, 'options.concurrency');
  nonNegativeInt(s.epoch, 'options.epoch');
  if (s.crop > s.resize) {
    throw new InvalidOptionError(`Expected options.crop <= options.resize but received ${s.crop} > ${s.resize}`);
  }
  if (s.failOn !== 'truncated' && s.failOn !== 'error' && s.failOn !== 'warning') {
    throw invalidOption('options.failOn', "'truncated', 'error' or 'warning'", s.failOn);
  }
  bool(s.flip, 'options.flip');
  scaleRange(s.scaleJitter, 'options.scaleJitter', s.crop);
  finiteNumber(s.seed, 'options.seed');
  return s;
}

/** The crop window and flip of one sample: a pure function of (seed, epoch, key) and the scaled size. */
export interface Augmentation {
  /** Size after scaling the short side to `resize` (or to its random draw in `scaleJitter`). */
  width: number;
  height: number;
  left: number;
  top: number;
  flip: boolean;
}

/**
 * The train-mode augmentation of an image of (oriented) size w x h. The scaled size is computed here, not
 * by sharp's 'outside' fit, so the crop window is known before decoding (one sharp pipeline, no second pass).
 */
export function augmentation(w: number, h: number, key: string, epoch: number, s: DecodeSettings): Augmentation {
  // The scale draw has a stream of its own, so the crop and flip draws are the same with or without jitter.
  const j = s.scaleJitter;
  const short = j === null ? s.resize : j[0] + new Rng(s.seed).fork(epoch, key, 'scale').int(j[1] - j[0] + 1);
  const scale = short / Math.min(w, h);
  const width = Math.max(s.crop, Math.round(w * scale));
  const height = Math.max(s.crop, Math.round(h * scale));
  const rng = new Rng(s.seed).fork(epoch, key);
  const left = rng.int(width - s.crop + 1);
  const top = rng.int(height - s.crop + 1);
  const flip = s.flip && rng.next() < 0.5;
  return { width, height, left, top, flip };
}

/**
 * The note for an input of which only one frame or page is decoded, or null for a single image. libvips loads
 * the first page unless told otherwise (for HEIF, sharp loads the primary image), so an animated GIF or WebP
 * trains on (or is colorized as) its first frame, a multi-page TIFF as its first page. Cheap: `pages` is read
 * from the header by sharp's `metadata()` (no pixel is decoded), which decode calls anyway.
 * @param meta sharp's metadata of the input; only `format` and `pages` are read
 * @returns e.g. "animated GIF with 12 frames: only the first is used"
 * @example const note = multiFrameNote(await sharp(bytes).metadata()); if (note) reporter.notice('decode', path, note);
 */
export function multiFrameNote(meta: Pick<Metadata, 'format' | 'pages'>): string | null {
  const n = meta.pages ?? 1;
  if (!(n > 1)) return null;
  switch (meta.format) {
    case 'gif':
      return `animated GIF with ${n} frames: only the first is used`;
    case 'webp':
      return `animated WebP with ${n} frames: only the first is used`;
    case 'tiff':
      return `multi-page TIFF with ${n} pages: only the first is used`;
    case 'heif':
      return `HEIF with ${n} images: only the primary image is used`;
    default:
      return `${String(meta.format).toUpperCase()} with ${n} pages: only the first is used`;
  }
}

/** A sharp instance with the sample's size checked, and what decodeSample copies onto its output. */
interface Opened {
  img: Sharp;
  width: number;
  height: number;
  where: string;
  note: string | null;
}

async function open(sample: Sample, s: DecodeSettings): Promise<Opened> {
  const where = sampleName(sample);
  const bytes = sample.image;
  if (bytes === undefined) throw new BadInputError(where, 'no image');
  if (bytes.length === 0) throw new BadInputError(where, 'empty image file');
  const img = sharp(bytes, { limitInputPixels: s.limitInputPixels, failOn: s.failOn, sequentialRead: true });
  const meta = await img.metadata();
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  if (!(width > 0 && height > 0)) throw new BadInputError(where, 'image has no size');
  if (width * height > s.limitInputPixels) {
    throw new BadInputError(where, `too many pixels: ${width}x${height} is over the limit of ${s.limitInputPixels}`);
  }
  if (Math.min(width, height) < s.minSide) {
    throw new BadInputError(where, `too small: ${width}x${height}, the short side is under ${s.minSide}`);
  }
  return { img, width, height, where, note: multiFrameNote(meta) };
}

/** Sets up the train-mode geometry (scale, crop window, flip) on an opened image. */
function trainGeometry(o: Opened, sample: Sample, s: DecodeSettings): Sharp {
  const aug = augmentation(o.width, o.height, sample.key, sample.position?.epoch ?? s.epoch, s);
  // sharp mirrors the whole image before a post-resize extract, so a flipped crop takes the window
  // mirrored about the vertical axis: the result is the chosen window, flipped.
  const left = aug.flip ? aug.width - aug.left - s.crop : aug.left;
  o.img
    .rotate()
    .resize(aug.width, aug.height, { fit: 'fill' })
    .extract({ left, top: aug.top, width: s.crop, height: s.crop });
  if (aug.flip) o.img.flop();
  return o.img.flatten({ background: '#ffffff' });
}

function badInput(sample: Sample, err: unknown): BadInputError {
  if (err instanceof BadInputError) return err;
  return new BadInputError(sampleName(sample), reasonOf(err), { cause: err });
}

/**
 * Decodes one sample to RGB bytes.
 * @throws BadInputError (with the reason) for input that cannot be used; nothing else.
 */
export async function decodeSample(sample: Sample, s: DecodeSettings): Promise<DecodedImage> {
  try {
    const o = await open(sample, s);
    const out: DecodedImage = { key: sample.key, width: 0, height: 0, rgb: new Uint8Array(0) };
    if (sample.url !== undefined) out.url = sample.url;
    if (sample.cls !== undefined) out.cls = sample.cls;
    if (sample.position !== undefined) out.position = sample.position;
    if (sample.relPath !== undefined) out.relPath = sample.relPath;
    if (o.note !== null) out.note = o.note;
    if (s.mode === 'train') {
      const { data, info } = await trainGeometry(o, sample, s).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
      out.width = info.width;
      out.height = info.height;
      out.rgb = toRgb(data, info.channels, info.width * info.height);
      return out;
    }
    const { data, info } = await o.img.rotate().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
    const n = info.width * info.height;
    out.width = info.width;
    out.height = info.height;
    out.rgb = toRgb(data, info.channels, n);
    if (info.channels === 4 || info.channels === 2) {
      const alpha = new Uint8Array(n);
      const c = info.channels;
      for (let i = 0; i < n; i++) alpha[i] = data[i * c + c - 1]!;
      out.alpha = alpha;
    }
    return out;
  } catch (err) {
    throw badInput(sample, err);
  }
}

/** A train-mode crop in the compact Lab form (see quantizeLab in src/color.ts). */
export interface QuantizedLabImage extends QuantizedLab {
  width: number;
  height: number;
  /** As DecodedImage's: only one of the input's frames or pages was decoded (multiFrameNote). */
  note?: string;
}

/**
 * Decodes one sample in train mode (the same crop and flip as decodeSample) straight to Lab, converted by
 * libvips on its own threads (`.toColourspace('lab').raw({ depth: 'float' })`), then quantized to bytes
 * with its colour statistics in one JS pass. This is the training loader's path: measured against sharp RGB
 * plus the JS conversion (in the same process or in a piscina pool) it costs less CPU per image and a third
 * of the main-thread time (bench/lab.ts). libvips' Lab differs from src/color.ts's by at most 0.008 in L and
 * 0.017 in a and b over every pixel of the 290 photos (its matrix and white are rounded differently), far
 * below the quantization step (0.39 in L, 1 in a and b).
 * @throws BadInputError (with the reason) for input that cannot be used; nothing else.
 */
export async function decodeTrainLab(sample: Sample, s: DecodeSettings): Promise<QuantizedLabImage> {
  try {
    const o = await open(sample, s);
    const { data, info } = await trainGeometry(o, sample, s).toColourspace('lab').raw({ depth: 'float' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`unexpected ${info.channels}-channel Lab output`);
    const lab = data.byteOffset % 4 === 0
      ? new Float32Array(data.buffer, data.byteOffset, data.length / 4)
      : new Float32Array(Uint8Array.from(data).buffer);
    const out: QuantizedLabImage = { width: info.width, height: info.height, ...quantizeLab(lab) };
    if (o.note !== null) out.note = o.note;
    return out;
  } catch (err) {
    throw badInput(sample, err);
  }
}

/**
 * How a sample is named in reports: a file by its path, a shard sample as `shard#key` (as the shards stage
 * names it), anything else by its key.
 */
export function sampleName(sample: { key: string; url?: string; relPath?: string }): string {
  if (sample.url === undefined) return sample.key;
  if (sample.relPath !== undefined) return sample.url;
  return `${sample.url}#${sample.key}`;
}

/**
 * RGB bytes in a fresh, whole ArrayBuffer. sharp's output buffers are external memory that Node will not
 * transfer between threads (it silently copies them), so the copy is made once here, where it is needed
 * anyway for 1, 2 and 4 channel outputs.
 */
function toRgb(data: Buffer, channels: number, n: number): Uint8Array {
  const rgb = new Uint8Array(n * 3);
  if (channels === 3) {
    rgb.set(data.subarray(0, n * 3));
  } else if (channels === 4) {
    for (let i = 0, j = 0, k = 0; i < n; i++, j += 3, k += 4) {
      rgb[j] = data[k]!;
      rgb[j + 1] = data[k + 1]!;
      rgb[j + 2] = data[k + 2]!;
    }
  } else if (channels === 1 || channels === 2) {
    for (let i = 0, j = 0; i < n; i++, j += 3) {
      const v = data[i * channels]!;
      rgb[j] = v;
      rgb[j + 1] = v;
      rgb[j + 2] = v;
    }
  } else {
    throw new Error(`unexpected ${channels}-channel output`);
  }
  return rgb;
}

/**
 * The decode stage. See the module comment for what each mode does and how bad input is handled.
 * @throws InvalidOptionError at once for a wrong option.
 * @example pipeline(shards({ urls }), decode({ mode: 'train', resize: 256, crop: 224, seed: 1 }))
 */
export function decode(options: DecodeOptions): Stage<Sample, DecodedImage> {
  const { concurrency, ...settings } = decodeSettings(options);
  return async function* decodeStage(source: AsyncIterable<Sample>, ctx: StageContext): AsyncGenerator<DecodedImage> {
    // Notes are given once per file, not once per epoch: the names already noted (only inputs that have a note).
    const noted = new Set<string>();
    const results = mapOrdered(
      source,
      async (sample: Sample): Promise<DecodedImage | BadInputError> => {
        try {
          return await decodeSample(sample, settings);
        } catch (err) {
          return err as BadInputError;
        }
      },
      { concurrency, signal: ctx.signal },
    );
    for await (const r of results) {
      if (r instanceof BadInputError) {
        ctx.reporter.report('decode', r.key, r.reason, r.cause);
        continue;
      }
      if (r.note !== undefined) {
        const where = sampleName(r);
        if (!noted.has(where)) {
          noted.add(where);
          ctx.reporter.notice('decode', where, r.note);
        }
      }
      yield r;
    }
  };
}
