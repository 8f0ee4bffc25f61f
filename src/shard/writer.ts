/**
 * `writeShards`: a folder of images into WebDataset tar shards (`pipe shard`).
 *
 * Each shard `PREFIX-000000.tar`, ... holds up to `maxcount` samples of three members sharing a key:
 * `KEY.EXT` (the image, see below), `KEY.cls` (the class index as decimal text, when `labels: 'dirs'` and the
 * file sits in a sub-folder) and `KEY.json` (`{ path, width, height, format }`: the relative path, the displayed
 * size after EXIF orientation, sharp's name of the stored bytes' format, plus `source_format` when the bytes were
 * converted). `classes.json` maps each first-level sub-folder name to its index (names sorted by code point, 0..n-1).
 *
 * The image member's extension names the format of its bytes, as sharp finds it from their content, never the
 * file's name (`memberExtFor`): WebDataset readers pick a decoder by the member's extension (Python webdataset's
 * `.decode("pil")`, torchvision's and DALI's readers, our own shards stage), so a PNG saved as `x.jpg` is stored
 * as `KEY.png`. JPEG, PNG, WebP, GIF, TIFF and AVIF keep their original bytes; any other format sharp decodes
 * (SVG, HEIF that is not AVIF) is stored rasterized as a lossless PNG, because no common WebDataset reader decodes
 * it by extension (PIL has no SVG decoder, and our shards stage takes no `.svg` member), and because rasterizing
 * once fixes its pixels (an SVG's rendering depends on the librsvg version and the installed fonts). An SVG is
 * rendered from its bytes alone (no file name is given to librsvg, so it loads no external file or URL), at
 * sharp's default 72 dpi, with librsvg's size limits on (sharp's `unlimited: false`).
 *
 * Keys follow the Python webdataset rule that the key ends at the first dot of the basename: the path without
 * its extension, dots in the basename replaced by '_' (`a/x.seg.png` -> key `a/x_seg`, member `a/x_seg.png`), a
 * leading `__` (webdataset's meta prefix) cut to `_`, and `_1`, `_2`, ... appended when a key is already taken
 * (`a/x.jpg` and `a/x.png`).
 *
 * Checks: every file must decode fully with sharp (`failOn: 'truncated'`, `limitInputPixels`) and be at least
 * 2x2; corrupt, truncated, empty, non-image files and decompression bombs are reported (stage 'shard') and
 * skipped. With `filter`, grayscale and near-grayscale images are skipped too (see `isNearGray`).
 *
 * Deterministic: the input order is the sorted relative paths (listImageFiles), and every tar header is fixed
 * (mtime 0, uid/gid 0, mode 0644, empty uname/gname), so the same input gives byte-identical shards. Atomic:
 * each file is written under a temp name beside it (core/atomic.ts: `.tmp-PID-COUNTER-RANDOM`), fsynced and
 * renamed into place, so a killed run leaves only whole shards, and its temps are removed by the next run
 * (cleanTempsTree). A write that fails (a full or read-only disk) ends the run with that error naming the shard
 * (or `output`, checked writable before any work), its temp file removed.
 * Decode checks run on up to `concurrency` images at once (sharp works on libuv's threads); writing is in order.
 */
import { createWriteStream, promises as fsp, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import tar from 'tar-stream';
import { AbortError, Reporter, reasonOf, type OnError } from '../core/errors.js';
import { checkWritableDir, cleanTempsTree, tempPathFor, writeFileAtomic } from '../core/atomic.js';
import { invalidOption, object, oneOf, optional, positiveInt, string } from '../core/validate.js';
import { listImageFiles, type ImageFile } from '../stages/files.js';
import { parallelMap } from '../stages/parallel-map.js';
import { pipeline } from '../core/pipeline.js';

export interface WriteShardsOptions {
  /** Folder (recursive), glob or file of images. */
  input: string;
  /** Output folder (created if missing). */
  output: string;
  /** Samples per shard (default 1000). */
  maxcount?: number;
  /** Shard name prefix (default 'data'). */
  prefix?: string;
  /** 'dirs': the first sub-folder names the class; 'none': no .cls members (default 'dirs'). */
  labels?: 'dirs' | 'none';
  /** Also skip grayscale and near-grayscale images (default false). */
  filter?: boolean;
  /** 'skip' (default) reports bad files and goes on; 'fail' stops at the first. Ignored when a reporter is given. */
  onError?: OnError;
  reporter?: Reporter;
  /** sharp's decompression-bomb guard (default 8192 * 8192 pixels). */
  limitInputPixels?: number;
  /** Image extensions to take (default: jpg jpeg png webp tif tiff gif avif). */
  extensions?: string[];
  /** Decode checks in flight (default: the number of cores). */
  concurrency?: number;
  /** Stops the run (the shard being written is discarded). */
  signal?: AbortSignal;
  /** Called after each input file with the number done and the total. */
  onProgress?: (done: number, total: number) => void;
}

export interface WriteShardsResult {
  /** Paths of the shards written, in order. */
  shards: string[];
  /** Samples written. */
  written: number;
  /** Files skipped (reported). */
  skipped: number;
  /** Class name -> index (also in classes.json); empty with labels 'none'. */
  classes: Record<string, number>;
  /** Class name -> samples written. */
  counts: Record<string, number>;
}

/** Mean over pixels of max(|R-G|, |G-B|), in 8-bit levels, below which an image counts as grayscale. */
export const GRAY_MEAN_CHANNEL_DIFF = 3;

/**
 * The filter's rule: an image is (near-)grayscale when it has fewer than 3 colour channels, or when the mean
 * over its pixels of max(|R-G|, |G-B|) is below GRAY_MEAN_CHANNEL_DIFF (JPEG chroma noise in a gray image saved
 * as RGB stays well under it; a sepia or faintly tinted photo is above it and kept).
 * @param rgb interleaved 8-bit pixels with `channels` 3 or 4 (alpha ignored)
 */
export function isNearGray(rgb: Uint8Array, channels: number): boolean {
  if (channels < 3) return true;
  const n = Math.floor(rgb.length / channels);
  if (n === 0) return true;
  let sum = 0;
  for (let i = 0; i < rgb.length; i += channels) {
    const r = rgb[i]!;
    const g = rgb[i + 1]!;
    const b = rgb[i + 2]!;
    sum += Math.max(Math.abs(r - g), Math.abs(g - b));
  }
  return sum / n < GRAY_MEAN_CHANNEL_DIFF;
}

export interface ImageCheck {
  ok: boolean;
  reason?: string;
  width?: number;
  height?: number;
  format?: string;
  /** HEIF's compression (`av1` for AVIF), from the header. */
  compression?: string;
}

/**
 * Decodes the whole image to find out whether it is usable. Never throws for bad bytes: `{ ok: false, reason }`.
 */
export async function checkImage(
  bytes: Buffer,
  options: { limitInputPixels: number; filter?: boolean },
): Promise<ImageCheck> {
  if (bytes.length === 0) return { ok: false, reason: 'empty file' };
  try {
    const input = () => sharp(bytes, { limitInputPixels: options.limitInputPixels, failOn: 'truncated' });
    // The header alone (no pixel is decoded), read without the limit so a bomb is reported with its size.
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    const width = meta.autoOrient?.width ?? meta.width;
    const height = meta.autoOrient?.height ?? meta.height;
    if (!width || !height) return { ok: false, reason: 'no image size in header' };
    if (width < 2 || height < 2) return { ok: false, reason: `image too small: ${width}x${height}` };
    if (meta.width * meta.height > options.limitInputPixels) {
      return { ok: false, reason: `image too large: ${meta.width}x${meta.height} exceeds limitInputPixels ${options.limitInputPixels}` };
    }
    // A full decode: truncated and corrupt data only show here, not in the header.
    const { data, info } = await input().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (options.filter && ((meta.channels ?? 3) < 3 || isNearGray(data, info.channels))) {
      return { ok: false, reason: 'grayscale or near-grayscale image (filter)' };
    }
    const ok: ImageCheck = { ok: true, width, height, format: meta.format };
    if (meta.compression !== undefined) ok.compression = meta.compression;
    return ok;
  } catch (err) {
    return { ok: false, reason: `cannot decode: ${reasonOf(err)}` };
  }
}

/** The webdataset-safe key for a relative path (see the module comment); `taken` gets the result added. */
export function keyFor(relPath: string, taken: Set<string>): string {
  const slash = relPath.lastIndexOf('/');
  const dir = relPath.slice(0, slash + 1);
  let base = relPath.slice(slash + 1);
  const dot = base.lastIndexOf('.');
  if (dot > 0) base = base.slice(0, dot);
  base = base.replace(/\./g, '_');
  let key = (dir + base).replace(/^__+/, '_');
  if (key === '' || key.endsWith('/')) key += '_';
  if (taken.has(key)) {
    let n = 1;
    while (taken.has(`${key}_${n}`)) n++;
    key = `${key}_${n}`;
  }
  taken.add(key);
  return key;
}

/**
 * The image member's extension for bytes of sharp's `format` (with HEIF's `compression`), or null when they are
 * stored converted to PNG (see the module comment). `sourceExt` (the file's, lower case) only chooses between two
 * names of one format: `tiff` stays `tiff`, any other TIFF is `tif`; JPEG is always `jpg`.
 */
export function memberExtFor(format: string | undefined, compression: string | undefined, sourceExt: string): string | null {
  switch (format) {
    case 'jpeg':
      return 'jpg';
    case 'png':
    case 'webp':
    case 'gif':
      return format;
    case 'tiff':
      return sourceExt === 'tiff' ? 'tiff' : 'tif';
    case 'heif':
      return compression === 'av1' ? 'avif' : null;
    default:
      return null;
  }
}

/** An image member: its extension, bytes and their format, and the source's format when converted. */
export interface ImageMember {
  ext: string;
  data: Buffer;
  format: string;
  sourceFormat?: string;
}

/**
 * The member stored for a file that passed checkImage: its own bytes under the extension of their format, or
 * (for a format no WebDataset reader decodes by extension) a PNG rendering, orientation applied.
 * @throws what sharp throws when the conversion fails (the caller reports it).
 */
export async function imageMember(bytes: Buffer, check: ImageCheck, relPath: string, limitInputPixels: number): Promise<ImageMember> {
  const base = relPath.slice(relPath.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  const format = check.format ?? 'unknown';
  const ext = memberExtFor(check.format, check.compression, dot > 0 ? base.slice(dot + 1).toLowerCase() : '');
  if (ext !== null) return { ext, data: bytes, format };
  // From the buffer alone: librsvg gets no base file name, so an SVG's references to files or URLs load nothing.
  const png = await sharp(bytes, { limitInputPixels, failOn: 'truncated', unlimited: false }).rotate().png().toBuffer();
  return { ext: 'png', data: png, format: 'png', sourceFormat: format };
}

const HEADER_FIXED = { mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: new Date(0), type: 'file' as const };

/**
 * One shard being written under a temp name beside it (core/atomic.ts tempPathFor), fsynced and renamed into
 * place by finish(). A failure of the file stream or of the tar pack (ENOSPC, EROFS, EIO) is caught here, never
 * an unhandled 'error' event: the next add() or finish() throws it, naming the shard (`path`), and the temp file
 * is removed (finish() on failure, or discard()).
 */
class ShardFile {
  private readonly pack = tar.pack();
  private readonly out: WriteStream;
  private readonly tmp: string;
  private failed: Error | null = null;
  /** Resolves when the file stream has closed: after finishing, or after an error destroyed it. */
  private readonly closed: Promise<void>;
  count = 0;
  constructor(readonly file: string) {
    this.tmp = tempPathFor(file);
    this.out = createWriteStream(this.tmp);
    this.closed = new Promise((resolve) => this.out.once('close', resolve));
    // The first error wins: the file stream's (a write's ENOSPC, or EROFS opening the temp) also destroys the
    // pack with it. Either names the shard, not the temp file.
    const fail = (err: Error) => {
      this.failed ??= Object.assign(err, { path: this.file });
    };
    this.out.on('error', fail);
    this.pack.on('error', fail);
    this.pack.pipe(this.out);
  }

  async add(name: string, data: Buffer): Promise<void> {
    if (this.failed) throw this.failed;
    this.pack.entry({ ...HEADER_FIXED, name, size: data.length }, data);
    // Keep memory bounded when the disk is slower than the decode checks; a stream that failed meanwhile
    // never drains, but it closes.
    if (this.out.writableNeedDrain) await Promise.race([once(this.out, 'drain'), this.closed]).catch(() => undefined);
    if (this.failed) throw this.failed;
  }

  /** Ends the tar, fsyncs it and renames it into place. @throws the write's error (naming the shard), temp removed. */
  async finish(): Promise<void> {
    try {
      if (this.failed) throw this.failed;
      this.pack.finalize();
      await this.closed;
      if (this.failed) throw this.failed;
      const fh = await fsp.open(this.tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(this.tmp, this.file);
    } catch (err) {
      await this.discard();
      throw Object.assign(err as Error, { path: this.file });
    }
  }

  async discard(): Promise<void> {
    this.pack.destroy();
    this.out.destroy();
    await this.closed;
    await fsp.rm(this.tmp, { force: true });
  }
}

/**
 * Writes the images under `input` as WebDataset shards in `output`.
 * @throws InvalidOptionError at once for bad options, or when the input does not exist; a BadInputError from
 *   the reporter with onError 'fail'; AbortError when `signal` aborts; file-system errors writing the output.
 * @example await writeShards({ input: 'photos/', output: 'shards/', maxcount: 500 })
 */
export async function writeShards(options: WriteShardsOptions): Promise<WriteShardsResult> {
  object(options, 'options');
  const { input } = options;
  const output = string(options.output, 'options.output');
  const maxcount = optional(options.maxcount, 'options.maxcount', positiveInt, 1000);
  const prefix = options.prefix ?? 'data';
  if (typeof prefix !== 'string' || prefix === '' || /[/\\]/.test(prefix)) throw invalidOption('options.prefix', 'a file name prefix', prefix);
  const labels = oneOf(options.labels ?? 'dirs', 'options.labels', ['dirs', 'none'] as const);
  const limitInputPixels = optional(options.limitInputPixels, 'options.limitInputPixels', positiveInt, 8192 * 8192);
  const concurrency = optional(options.concurrency, 'options.concurrency', positiveInt, Math.max(1, os.availableParallelism()));
  const reporter = options.reporter ?? new Reporter({ onError: options.onError ?? 'skip' });
  const filter = options.filter ?? false;

  const list = await listImageFiles(input, options.extensions, (p, reason) => reporter.notice('files', p, reason));
  const outDir = path.resolve(output);
  // A read-only or full file system, no permission, a file in the way: one error naming the folder, before any
  // image is checked. Then the temp files a killed run left here go (those of a writer still running stay).
  await checkWritableDir(outDir);
  await cleanTempsTree(outDir);

  const classNames =
    labels === 'dirs'
      ? [...new Set(list.filter((f) => f.relPath.includes('/')).map((f) => f.relPath.slice(0, f.relPath.indexOf('/'))))].sort(
          (a, b) => (a < b ? -1 : a > b ? 1 : 0),
        )
      : [];
  const classes: Record<string, number> = Object.fromEntries(classNames.map((n, i) => [n, i]));
  const counts: Record<string, number> = Object.fromEntries(classNames.map((n) => [n, 0]));

  interface Checked {
    file: ImageFile;
    member: ImageMember | null;
    check: ImageCheck;
  }
  const checkOne = async (file: ImageFile): Promise<Checked> => {
    let bytes: Buffer;
    try {
      bytes = await fsp.readFile(file.abs);
    } catch (err) {
      return { file, member: null, check: { ok: false, reason: `cannot read file: ${reasonOf(err)}` } };
    }
    const check = await checkImage(bytes, { limitInputPixels, filter });
    if (!check.ok) return { file, member: null, check };
    try {
      return { file, member: await imageMember(bytes, check, file.relPath, limitInputPixels), check };
    } catch (err) {
      return { file, member: null, check: { ok: false, reason: `cannot convert ${check.format} to PNG: ${reasonOf(err)}` } };
    }
  };

  const shards: string[] = [];
  const taken = new Set<string>();
  let written = 0;
  let skipped = 0;
  let done = 0;
  let current: ShardFile | null = null;
  const run = pipeline(list, parallelMap(checkOne, { concurrency }), { reporter, signal: options.signal });
  try {
    for await (const { file, member, check } of run) {
      done++;
      if (!check.ok || member === null) {
        skipped++;
        reporter.report('shard', file.relPath, check.reason ?? 'unusable');
        options.onProgress?.(done, list.length);
        continue;
      }
      if (current === null) current = new ShardFile(path.join(outDir, `${prefix}-${String(shards.length).padStart(6, '0')}.tar`));
      const key = keyFor(file.relPath, taken);
      await current.add(`${key}.${member.ext}`, member.data);
      const cls = labels === 'dirs' && file.relPath.includes('/') ? file.relPath.slice(0, file.relPath.indexOf('/')) : null;
      if (cls !== null) {
        await current.add(`${key}.cls`, Buffer.from(String(classes[cls])));
        counts[cls]!++;
      }
      const meta: Record<string, unknown> = { path: file.relPath, width: check.width, height: check.height, format: member.format };
      if (member.sourceFormat !== undefined) meta['source_format'] = member.sourceFormat;
      await current.add(`${key}.json`, Buffer.from(JSON.stringify(meta)));
      current.count++;
      written++;
      if (current.count === maxcount) {
        const c = current;
        current = null;
        await c.finish();
        shards.push(c.file);
      }
      options.onProgress?.(done, list.length);
    }
    if (current !== null) {
      const c = current;
      current = null;
      await c.finish();
      shards.push(c.file);
    }
  } catch (err) {
    await current?.discard();
    if (options.signal?.aborted && !(err instanceof AbortError)) throw new AbortError(undefined, { cause: err });
    throw err;
  }
  await writeFileAtomic(path.join(outDir, 'classes.json'), JSON.stringify(classes, null, 2) + '\n');
  return { shards, written, skipped, classes, counts };
}
