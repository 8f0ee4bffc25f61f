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
 * shard (or `output`, checked writable before any work), its temp file removed. Resumable: a rerun of a stopped
 * run (Ctrl-C, a kill) on the same input keeps the whole shards it wrote and goes on after them (progress.ts).
 * One writer per `output`: a second writeShards into it is refused while the first runs (core/lock.ts).
 * Decode checks run on up to `concurrency` images at once (sharp works on libuv's threads); writing is in order.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AbortError, Reporter, reasonOf, type OnError } from '../core/errors.js';
import { cleanTempsTree, writeFileAtomic } from '../core/atomic.js';
import { lockFolder } from '../core/lock.js';
import { invalidOption, object, oneOf, optional, positiveInt, string } from '../core/validate.js';
import { listImageFiles, type ImageFile } from '../stages/files.js';
import { parallelMap } from '../stages/parallel-map.js';
import { pipeline } from '../core/pipeline.js';
import { TarWriter, keyFor } from '../webdataset/writer.js';
import { checkImage, imageMember, type ImageCheck, type ImageMember } from './image.js';
import { inputDigest, keptProgress, progressPath, saveProgress, shardDigest } from './progress.js';

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
  /** The first shards, kept as an earlier run of the same input that was stopped wrote them (progress.ts). */
  kept: number;
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
  // One writer per --out (core/lock.ts, which first checks that the folder can be written: a read-only or full
  // file system, no permission, a file in the way is one error naming the folder, before any image is checked).
  const lock = await lockFolder(outDir, 'pipe shard');
  try {
    return await shardInto(outDir, list, { maxcount, prefix, labels, filter, limitInputPixels, concurrency, reporter, signal: options.signal, onProgress: options.onProgress });
  } finally {
    await lock.release();
  }
}

/** writeShards' options, validated. */
interface ShardOptions {
  maxcount: number;
  prefix: string;
  labels: 'dirs' | 'none';
  filter: boolean;
  limitInputPixels: number;
  concurrency: number;
  reporter: Reporter;
  signal: AbortSignal | undefined;
  onProgress: ((done: number, total: number) => void) | undefined;
}

/** writeShards into a folder it holds the lock of. */
async function shardInto(outDir: string, list: ImageFile[], o: ShardOptions): Promise<WriteShardsResult> {
  const { maxcount, prefix, labels, filter, limitInputPixels, reporter } = o;
  // The temp files a killed run left here go (those of a writer still running stay).
  await cleanTempsTree(outDir);

  const classOf = (f: ImageFile): string | null => (labels === 'dirs' && f.relPath.includes('/') ? f.relPath.slice(0, f.relPath.indexOf('/')) : null);
  const classNames = [...new Set(list.map(classOf).filter((c) => c !== null))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
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

  // A stopped run's whole shards of this same input are kept (progress.ts); the keys, counts and skips of the
  // inputs they hold are replayed so that what follows is what an uninterrupted run writes.
  const shardFile = (k: number) => path.join(outDir, `${prefix}-${String(k).padStart(6, '0')}.tar`);
  const progressFile = progressPath(outDir, prefix);
  const progress = await keptProgress(progressFile, await inputDigest(list, { maxcount, prefix, labels, filter, limitInputPixels }), shardFile);
  const start = progress.shards.at(-1)?.next ?? 0;
  const shards = progress.shards.map((_, k) => shardFile(k));
  const taken = new Set<string>();
  const skippedBefore = new Set(progress.skipped);
  let written = 0;
  for (const [i, file] of list.slice(0, start).entries()) {
    if (skippedBefore.has(i)) continue;
    keyFor(file.relPath, taken);
    const cls = classOf(file);
    if (cls !== null) counts[cls]!++;
    written++;
  }
  const kept = shards.length;
  let skipped = progress.skipped.length;
  let done = start;
  let current: TarWriter | null = null;
  let inShard = 0;
  const finishShard = async (c: TarWriter) => {
    await c.finish();
    shards.push(c.file);
    const d = await shardDigest(c.file);
    if (d) progress.shards.push({ ...d, next: done });
    await saveProgress(progressFile, progress);
  };
  const run = pipeline(list.slice(start), parallelMap(checkOne, { concurrency: o.concurrency }), { reporter, signal: o.signal });
  try {
    for await (const { file, member, check } of run) {
      done++;
      if (!check.ok || member === null) {
        skipped++;
        progress.skipped.push(done - 1);
        reporter.report('shard', file.relPath, check.reason ?? 'unusable');
        o.onProgress?.(done, list.length);
        continue;
      }
      if (current === null) current = new TarWriter(shardFile(shards.length));
      const key = keyFor(file.relPath, taken);
      await current.add(`${key}.${member.ext}`, member.data);
      const cls = classOf(file);
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
        await finishShard(c);
      }
      o.onProgress?.(done, list.length);
    }
    if (current !== null) {
      const c = current;
      current = null;
      await finishShard(c);
    }
  } catch (err) {
    await current?.discard();
    if (o.signal?.aborted && !(err instanceof AbortError)) throw new AbortError(undefined, { cause: err });
    throw err;
  }
  await writeFileAtomic(path.join(outDir, 'classes.json'), JSON.stringify(classes, null, 2) + '\n');
  await fsp.rm(progressFile, { force: true });
  return { shards, written, skipped, classes, counts, kept };
}
