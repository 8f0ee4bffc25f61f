/**
 * The `write` stage: predicted images -> colorized files (or buffers). For each image:
 * 1. compose: the predicted ab upsampled to the ORIGINAL size and joined with the ORIGINAL L (never a resampled
 *    one), then Lab -> 8-bit sRGB keeping L (src/color/compose.ts);
 * 2. encode (sharp, image.ts encodeImage): alpha re-attached, the format kept or converted, sRGB ICC profile;
 * 3. write: atomically under `out` at the input's relative path (the extension changed with the format, see
 *    plan.ts outputFor), with writeOutput: a whole file is made with writeFileAtomic (src/core/atomic.ts: temp
 *    beside it, fsync, rename), then, with `overwrite`, that is the output; without, it is made under a temp
 *    name and linked into place (link(2) fails if the target exists, so an output that appeared meanwhile is
 *    never clobbered; it counts as skipped). A target that resolves inside the input root (`input`) is
 *    refused: colorize never writes into --in.
 * Steps 1 and 2 run in the colorize worker pool (main thread free for the engine), `concurrency` images at
 * a time; step 3 on libuv's, up to `ioConcurrency` more files at a time (a slow disk holds no encoder).
 *
 * `out: null` returns the encoded bytes instead of writing (colorizeBuffers); `encode: false` returns the
 * composed RGB (eval).
 *
 * Each image's `lease` of the memory budget (src/stages/admit.ts) is released as it leaves the stage (written,
 * skipped or reported).
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
import type { Piscina } from 'piscina';
import type { Stage, StageContext } from '../core/pipeline.js';
import { BadInputError, fileErrorLine, reasonOf } from '../core/errors.js';
import { bool, invalidOption, nonNegativeInt, object, oneOf } from '../core/validate.js';
import { tempPathFor, writeFileAtomic } from '../core/atomic.js';
import { isAbortError } from '../core/abort.js';
import { parallelMap } from '../stages/parallel-map.js';
import { FORMATS, checkQuality, type FormatChoice, type OutputFormat } from './formats.js';
import { composeImage, type ComposeTask } from './image.js';
import { isInside, outputFor, realPathOf } from './plan.js';
import { createColorizePool, poolSettings } from './pool.js';
import type { PredictedImage } from './predict.js';

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
  /**
   * Called for each image once its work is done (before it is yielded: an image finished while the run is
   * stopping is counted here even though it is never yielded) with the time spent on it, compose + encode
   * (worker) and the file write, and what became of it.
   */
  onImage?: (t: { composeMs: number; writeMs: number; status: 'written' | 'skipped' | 'encoded' }) => void;
}

/** The canonical extension of a format. */
export function formatExtension(format: OutputFormat): string {
  return format === 'jpeg' ? 'jpg' : format === 'tiff' ? 'tif' : format;
}

/**
 * Writes `data` to `target` atomically (the directory created), as writeFileAtomic does: with `overwrite`, that
 * is all (rename replaces a file there). Without, the whole file is first made under a temp name beside the
 * target and then linked into place: link(2) fails with EEXIST rather than replace a file, so an output that
 * appeared since the plan was made is never clobbered: the result is 'exists'. On a file system without hard
 * links, an existence check then a rename (a race with another writer is possible there). No temp file is
 * left in any case.
 */
export async function writeOutput(target: string, data: Uint8Array, overwrite: boolean): Promise<'written' | 'exists'> {
  if (overwrite) {
    await writeFileAtomic(target, data);
    return 'written';
  }
  const staged = tempPathFor(target);
  try {
    await writeFileAtomic(staged, data);
    try {
      await fsp.link(staged, target);
      return 'written';
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return 'exists';
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS' && code !== 'EMLINK') throw err;
      if (await fsp.lstat(target).then(() => true, () => false)) return 'exists';
      await fsp.rename(staged, target);
      return 'written';
    }
  } finally {
    await fsp.rm(staged, { force: true }).catch(() => undefined);
  }
}

/**
 * The write stage. See the module comment.
 * @throws InvalidOptionError at once for a wrong option.
 * @example pipeline(..., predict({ tf, model }), write({ out: 'out/', input: 'in/', format: 'same' }))
 */
export function write(options: WriteOptions): Stage<PredictedImage, ColorizedImage> {
  object(options, 'options');
  const out = options.out;
  if (out !== null && (typeof out !== 'string' || out === '')) throw invalidOption('options.out', 'non-empty string or null', out);
  const format = oneOf(options.format ?? 'same', 'options.format', FORMATS);
  const quality = checkQuality(options.quality ?? 90, 'options.quality');
  const overwrite = bool(options.overwrite ?? false, 'options.overwrite');
  const encode = bool(options.encode ?? true, 'options.encode');
  if (options.input !== undefined && (typeof options.input !== 'string' || options.input === '')) {
    throw invalidOption('options.input', 'non-empty string', options.input);
  }
  const { given, threads, concurrency } = poolSettings(options);
  const ioConcurrency = nonNegativeInt(options.ioConcurrency ?? 16, 'options.ioConcurrency');
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
        const status = (await writeOutput(target, data, overwrite)) === 'written' ? 'written' : 'skipped';
        options.onImage?.({ composeMs: r.ms, writeMs: performance.now() - t0, status });
        return { ...result, status, path: target };
      } catch (err) {
        if (ctx.signal.aborted) throw err;
        if (isAbortError(err)) throw err;
        return new BadInputError(where, fileErrorLine(err) ?? reasonOf(err), { cause: err });
      }
    };
    const slots = new Semaphore(concurrency);
    try {
      const done = async (img: PredictedImage) => ({ img, r: await one(img) });
      for await (const { img, r } of parallelMap(done, { concurrency: concurrency + (out === null ? 0 : ioConcurrency) })(source, ctx)) {
        // The image's share of the memory budget, once it leaves the stage.
        img.lease?.release();
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
