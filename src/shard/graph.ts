/**
 * `writeShards`: a folder of images into WebDataset tar shards (`pipe shard`).
 *
 * Each shard `PREFIX-000000.tar`, ... holds up to `maxcount` samples of three members sharing a key (keyFor):
 * `KEY.EXT` (the image, see image.ts), `KEY.cls` (the class index as decimal text, when `labels: 'dirs'` and the
 * file sits in a sub-folder) and `KEY.json` (`{ path, width, height, format }`: the relative path, the displayed
 * size after EXIF orientation, sharp's name of the stored bytes' format, plus `source_format` when the bytes were
 * converted). `classes.json` maps each first-level sub-folder name to its index (names sorted by code point, 0..n-1).
 *
 * Deterministic: the input order is the sorted relative paths (listImageFiles), and the tar writer's headers are
 * fixed, so the same input gives byte-identical shards. Atomic: each shard is written by webdataset/writer.ts's
 * TarWriter (temp name, fsync, rename), so a killed run leaves only whole shards, and its temps are removed by the
 * next run (cleanTempsTree). A write that fails (a full or read-only disk) ends the run with that error naming the
 * shard (or `output`, checked writable before any work), its temp file removed.
 * Decode checks run on up to `concurrency` images at once (sharp works on libuv's threads); writing is in order.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AbortError, Reporter, reasonOf, type OnError } from '../core/errors.js';
import { checkWritableDir, cleanTempsTree, writeFileAtomic } from '../core/atomic.js';
import { invalidOption, object, oneOf, optional, positiveInt, string } from '../core/validate.js';
import { listImageFiles, type ImageFile } from '../stages/files.js';
import { parallelMap } from '../stages/parallel-map.js';
import { pipeline } from '../core/pipeline.js';
import { TarWriter, keyFor } from '../webdataset/writer.js';
import { checkImage, imageMember, type ImageCheck, type ImageMember } from './image.js';

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
  let current: TarWriter | null = null;
  let inShard = 0;
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
      if (current === null) current = new TarWriter(path.join(outDir, `${prefix}-${String(shards.length).padStart(6, '0')}.tar`));
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
      inShard++;
      written++;
      if (inShard === maxcount) {
        const c = current;
        current = null;
        inShard = 0;
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
