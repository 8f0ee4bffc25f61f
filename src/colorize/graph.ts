/**
 * colorizeGraph(): the batch inference pipeline of `pipe colorize`, composed from the stage library:
 *
 *   files (plan.ts: sorted, rank/world split, collisions and existing outputs left out before anything is
 *          read; then the files stage's reader)
 *     -> admit (each image waits for its bytes of the memory budget, estimated from its header; released
 *          when the write is done with it: in-flight memory bounded by pixels, not by count)
 *     -> prepare (worker pool: decode, L at the original size, local input, global 224 input)
 *     -> groupByShape (same processing shape, up to --batch and a pixel cap; eager: also the prefetch)
 *     -> predict (engine) -> prefetch
 *     -> write (worker pool: upsample ab, join the original L, Lab -> sRGB, encode; atomic write)
 *     -> progress
 *
 * While the engine predicts one batch, the pool decodes the next ones and encodes the previous ones (eager
 * grouping before the engine and a prefetch after it decouple the engine from both sides). colorizeBuffers()
 * is the same graph over buffers in and buffers out; evaluateFolder (src/eval.ts) uses colorizeStream, with
 * composing only. The room: options.ts (options, results, checks), plan.ts (paths), formats.ts, image.ts (the
 * per-image work), pool.ts and worker.ts (the threads), the prepare, predict and write stages, and this file
 * on top, which alone loads the engine and the model.
 *
 * Safety (issue 4): --out may not be --in or inside it (real paths); no output resolves inside --in; an
 * existing output is skipped unless `overwrite` (checked before decoding, and again, race-free, at the write
 * with link(2)); two inputs that would write the same output (a.jpg and a.png with --format png) are a
 * failure of the second, never an overwrite; files are written atomically. A bad input is reported with its
 * path and reason and the rest go on (`onError: 'fail'` stops at the first).
 *
 * Errors: InvalidOptionError (usage: missing input, --out inside --in, a bad option, an unreadable model or
 * style image) and the engine's are thrown; bad inputs end up in the summary, not thrown.
 */
import { promises as fsp } from 'node:fs';
import { checkWritableDir, cleanTempsTree } from '../core/atomic.js';
import os from 'node:os';
import path from 'node:path';
import type { Piscina } from 'piscina';
import { BadInputError, InvalidOptionError, Reporter, reasonOf } from '../core/errors.js';
import { pipeline, type StageContext } from '../core/pipeline.js';
import { isAbortError, throwIfAborted } from '../core/abort.js';
import { string } from '../core/validate.js';
import type { Sample } from '../types.js';
import { listImageFiles, readImageFiles } from '../stages/files.js';
import { rankAndWorld } from '../core/validate.js';
import { prefetch } from '../stages/prefetch.js';
import { progress } from '../stages/progress.js';
import { groupByShape } from '../stages/group-by-shape.js';
import type { OutputFormat } from './formats.js';
import { imageCost, prepareImage, prepareSettings, resolveResolution, type PreparedImage } from './image.js';
import { ByteBudget } from '../core/budget.js';
import { admit } from '../stages/admit.js';
import {
  DEFAULT_BATCH, DEFAULT_BATCH_PIXELS, DEFAULT_MEMORY_BUDGET, WORKER_BYTES, defaultEngineThreads, emptyTimings, validateCommon,
  type ColorizeCommonOptions, type ColorizeOptions, type ColorizeSummary, type ColorizeTimings,
} from './options.js';
import { checkPaths, planFiles } from './plan.js';
import { createColorizePool } from './pool.js';
import { prepare } from './prepare.js';
import { predict, type PredictedImage } from './predict.js';
import { loadRunner, type LoadRunnerOptions, type Runner } from './runner.js';
import { write, type ColorizedImage } from './write.js';

/** The style reference's global input (L / 100 at S x S). */
async function styleInput(style: string | Buffer, S: number, limitInputPixels: number | undefined): Promise<Float32Array> {
  const name = typeof style === 'string' ? style : 'style image';
  let bytes: Buffer;
  try {
    bytes = typeof style === 'string' ? await fsp.readFile(style) : style;
  } catch (err) {
    throw new InvalidOptionError(`Cannot read the style image ${name}: ${reasonOf(err)}`);
  }
  const settings = prepareSettings({ globalSize: S, resolution: 8, limitInputPixels });
  try {
    const p = await prepareImage({ key: name, url: typeof style === 'string' ? path.resolve(style) : name, image: bytes }, settings);
    return p.global;
  } catch (err) {
    throw new InvalidOptionError(`Cannot use the style image ${name}: ${err instanceof BadInputError ? err.reason : reasonOf(err)}`);
  }
}

type IndexedSample = Sample & { index: number };

interface StreamOptions extends ColorizeCommonOptions {
  source: (ctx: StageContext) => AsyncIterable<IndexedSample>;
  reporter: Reporter;
  out: string | null;
  input?: string;
  overwrite?: boolean;
  keepRgb?: boolean;
  encode?: boolean;
  timings: ColorizeTimings;
  progressTotal?: number;
  quiet?: boolean;
}

/**
 * The shared core: sets up the worker pool, the engine, the model and the style, and returns the graph's
 * results. The pool and the model (when loaded here) are released when the iteration of `results` ends
 * (completion, break or error): a caller must iterate it (internal callers always do).
 */
async function openStream(o: StreamOptions): Promise<{ results: AsyncIterable<ColorizedImage>; backend: string }> {
  const threads = o.threads ?? os.availableParallelism();
  const batch = o.batch ?? DEFAULT_BATCH;
  // In flight: enough decodes to cover an engine call (the main thread hands out no work during one), and a
  // batch of encodes. Every task in flight is handed to a worker at once (see createColorizePool).
  const prepareConcurrency = Math.max(threads * 4, 2 * batch);
  const writeConcurrency = Math.max(threads * 2, batch + threads);
  // The workers start (and load sharp) while the engine and the model load.
  const pool: Piscina = createColorizePool(threads, Math.ceil((prepareConcurrency + writeConcurrency) / threads));
  let loaded: Runner | null = null;
  let style: Float32Array | undefined;
  try {
    const lo: LoadRunnerOptions = { runtime: o.runtime ?? 'auto', device: o.device ?? 'auto', backend: o.backend ?? 'auto' };
    if (o.tfjsBackend) lo.tfjsBackend = o.tfjsBackend;
    lo.threads = o.engineThreads ?? defaultEngineThreads();
    loaded = await loadRunner(o.model, lo);
    if (o.style !== undefined) style = await styleInput(o.style, loaded.globalSize, o.limitInputPixels);
  } catch (err) {
    await loaded?.release();
    await pool.destroy();
    throw err;
  }
  const runner = loaded;
  const S = runner.globalSize;
  const batchPixels = o.batchPixels ?? DEFAULT_BATCH_PIXELS;
  // The worker threads' own memory (an isolate, sharp's per-thread buffers) comes out of the budget first.
  const memoryBudget = o.memoryBudget ?? DEFAULT_MEMORY_BUDGET;
  const budget = new ByteBudget(Math.max(memoryBudget / 4, memoryBudget - threads * WORKER_BYTES));
  const t = o.timings;
  let lastPredictEnd = 0;
  async function* results(): AsyncGenerator<ColorizedImage> {
    try {
      const prep = {
        resolution: resolveResolution(o.resolution ?? 'auto', runner.trainingScale),
        globalSize: S, limitInputPixels: o.limitInputPixels, keepRgb: o.keepRgb ?? false,
      };
      const settings = prepareSettings(prep);
      const p = pipeline(
        o.source,
        // What is in flight from here to the write is bounded by its bytes (decoded pixels): a few 24-megapixel
        // photos at a time, many small images.
        admit<IndexedSample>({ budget, costOf: (sample) => imageCost(sample.image, settings) }),
        prepare({ ...prep, pool, concurrency: prepareConcurrency, onImage: (ms) => (t.prepareMs += ms) }),
        // Eager grouping is also the prefetch before the engine: it holds prepared images (up to `prefetch`
        // batches' worth of floats), hands the engine a full group when there is one and otherwise the
        // largest (an idle engine takes what is ready: no stall at the start, on rare shapes or at the end).
        groupByShape<PreparedImage>({
          size: batch,
          shapeOf: (p) => `${p.localWidth}x${p.localHeight}`,
          sizeOf: (p) => batchPixels / (p.localWidth * p.localHeight),
          eager: true,
          weightOf: (p) => p.L.length + (p.local === p.L ? 0 : p.local.length) + p.global.length,
          maxPending: (o.prefetch ?? 2) * batchPixels * 2,
        }),
        predict({
          runner, style, tile: o.tile,
          onBatch: (b) => {
            if (t.batches === 0) t.firstBatchWaitMs = b.waitMs;
            t.predictMs += b.computeMs;
            t.predictWaitMs += b.waitMs;
            t.batches++;
            lastPredictEnd = performance.now();
          },
        }),
        // Lets the engine run ahead of the encoders by a batch.
        prefetch<PredictedImage>(batch),
        write({
          out: o.out, input: o.input, format: o.format ?? 'same', quality: o.quality ?? 90, overwrite: o.overwrite ?? false,
          encode: o.encode ?? true, pool, concurrency: writeConcurrency,
          onImage: (w) => {
            t.composeMs += w.composeMs;
            t.writeMs += w.writeMs;
            if (w.status === 'written') t.written++;
            else if (w.status === 'skipped') t.existing++;
          },
        }),
        progress<ColorizedImage>({
          total: o.progressTotal,
          quiet: o.quiet ?? true,
          label: 'colorize',
          render: (_r, s) => `${(s.count / Math.max(1e-9, s.elapsed)).toFixed(1)} img/s`,
        }),
        { reporter: o.reporter, signal: o.signal },
      );
      yield* p;
    } finally {
      if (lastPredictEnd > 0) t.tailMs = performance.now() - lastPredictEnd;
      t.inFlightPeakBytes = budget.peak;
      await pool.destroy();
      await runner.release();
    }
  }
  return { results: results(), backend: runner.describe };
}

/**
 * Colorizes a directory (or one file) into `out`; see the module comment. Resolves with the summary once every
 * file is done (or the run stopped: `stopped` says why).
 * @throws InvalidOptionError for a usage error; the engine's errors.
 * @example
 * const s = await colorizeGraph({ input: 'photos/', out: 'colorized/', model: 'runs/demo' });
 * console.log(s.written, s.skipped, s.failed);
 */
export async function colorizeGraph(o: ColorizeOptions): Promise<ColorizeSummary> {
  validateCommon(o);
  string(o.input, 'options.input');
  string(o.out, 'options.out');
  rankAndWorld(o);
  const t0 = performance.now();
  await checkPaths(o.input, o.out);
  const outRoot = path.resolve(o.out);
  const overwrite = o.overwrite ?? false;
  const reporter = o.reporter ?? new Reporter({ onError: o.onError ?? 'skip', log: o.log });

  let stopped: string | undefined;
  const timings = emptyTimings();
  const failStop = (err: unknown) => {
    if (err instanceof BadInputError) {
      stopped = `${err.key}: ${err.reason}`;
      return true;
    }
    if (isAbortError(err, o.stop)) {
      stopped = 'interrupted';
      return true;
    }
    return false;
  };
  // The stable, disjoint part of this rank, then the outputs already there (skipped before any read).
  const plan = await planFiles({ input: o.input, out: o.out, format: o.format ?? 'same', overwrite, rank: o.rank, world: o.world, reporter });
  const { todo } = plan;
  let skipped = plan.skipped;
  let written = 0;
  if (plan.error !== undefined && !failStop(plan.error)) throw plan.error;

  let backend = o.tfjsBackend?.describe ?? '';
  // What killed runs left in --out (their temp files, in any subdirectory), even when nothing is left to do.
  await cleanTempsTree(outRoot);
  if (!stopped && todo.length > 0) {
    // Fail before any work when --out cannot be written.
    await checkWritableDir(outRoot);
    const stream = await openStream({
      ...o,
      signal: o.stop,
      source: readImageFiles(todo, { reportAs: 'abs' }),
      reporter,
      out: o.out,
      input: o.input,
      overwrite,
      timings,
      progressTotal: todo.length,
      quiet: o.quiet ?? false,
    });
    backend = stream.backend;
    try {
      for await (const r of stream.results) o.onImage?.(r);
    } catch (err) {
      if (!failStop(err)) throw err;
    }
    // Counted by the write stage as files land, so a stopped run counts the files finished while stopping.
    written = timings.written;
    skipped += timings.existing;
  }
  const failures = reporter.records.map((r) => ({ path: r.key, stage: r.stage, reason: r.reason }));
  let failed = reporter.total;
  if (stopped && stopped !== 'interrupted') {
    // With onError 'fail' the reporter threw instead of counting: that input failed too.
    failed++;
    const [p, ...why] = stopped.split(': ');
    failures.push({ path: p!, stage: 'input', reason: why.join(': ') });
  }
  const seconds = (performance.now() - t0) / 1000;
  const summary: ColorizeSummary = {
    total: plan.total,
    written,
    skipped,
    failed,
    failures,
    seconds,
    imagesPerSecond: seconds > 0 ? written / seconds : 0,
    backend,
    timings,
  };
  if (stopped) summary.stopped = stopped;
  return summary;
}

/** One input of colorizeBuffers. */
export interface BufferInput {
  /** A name (used in reports; its extension picks the output format with format 'same'). */
  name: string;
  data: Buffer | Uint8Array;
}

/** One output of colorizeBuffers. */
export interface ColorizedBuffer {
  /** The input's name. */
  name: string;
  /** The name with the output format's extension. */
  outputName: string;
  /** Position of the input in the source (outputs come in completion order). */
  index: number;
  data: Buffer;
  width: number;
  height: number;
  format: OutputFormat;
}

export interface ColorizeBuffersOptions extends ColorizeCommonOptions {}

/**
 * Colorizes buffers: feed any (async) iterable of `{ name, data }`, get the encoded results back (in
 * completion order: batches group images of one shape; `index` gives the input position). Bad inputs are
 * reported (options.reporter, or a skip-and-warn reporter) and produce no output.
 * @throws InvalidOptionError at the first `next()` for a wrong option or model; the engine's errors.
 * @example
 * for await (const r of colorizeBuffers([{ name: 'a.jpg', data: bytes }], { model: 'runs/demo' })) {
 *   await writeFile(r.outputName, r.data);
 * }
 */
export async function* colorizeBuffers(
  source: AsyncIterable<BufferInput> | Iterable<BufferInput>,
  options: ColorizeBuffersOptions,
): AsyncGenerator<ColorizedBuffer> {
  validateCommon(options);
  const reporter = options.reporter ?? new Reporter({ onError: options.onError ?? 'skip', log: options.log });
  const names: string[] = [];
  const samples = async function* (ctx: StageContext): AsyncGenerator<IndexedSample> {
    let index = 0;
    for await (const b of source as AsyncIterable<BufferInput>) {
      throwIfAborted(ctx.signal);
      const i = index++;
      const name = typeof b?.name === 'string' && b.name !== '' ? b.name : `image-${i}`;
      names[i] = name;
      if (!(b?.data instanceof Uint8Array)) {
        ctx.reporter.report('source', name, `expected a Buffer or Uint8Array for data but received ${typeof b?.data}`);
        continue;
      }
      const image = Buffer.isBuffer(b.data) ? b.data : Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength);
      const ext = path.extname(name).slice(1).toLowerCase();
      yield { key: name, url: name, relPath: name, image, imageExt: ext, fields: {}, index: i };
    }
  };
  const stream = await openStream({ ...options, source: samples, reporter, out: null, timings: emptyTimings(), quiet: true });
  for await (const r of stream.results) {
    const index = r.index!;
    yield { name: names[index] ?? r.key, outputName: r.relPath ?? r.key, index, data: r.data!, width: r.width, height: r.height, format: r.format };
  }
}

export interface ColorizeStreamOptions extends ColorizeCommonOptions {
  /** A directory (recursive) or a file. */
  input: string;
  reporter: Reporter;
  /** Keep the decoded sRGB in `source.rgb`. */
  keepRgb?: boolean;
  /** false: compose only (ColorizedImage.rgb), no encoding. */
  encode?: boolean;
}

/**
 * A folder colorized in memory, no files written (eval): each result has the composed RGB (`rgb`, with
 * encode false) and the prepared image (`source`: its L and, with keepRgb, the decoded original).
 */
export async function colorizeStream(o: ColorizeStreamOptions): Promise<{ results: AsyncIterable<ColorizedImage>; backend: string; total: number }> {
  validateCommon(o);
  const list = (await listImageFiles(o.input, undefined, (p, reason) => o.reporter?.notice('files', p, reason))).map((f, index) => ({ ...f, index }));
  const stream = await openStream({ ...o, source: readImageFiles(list, { reportAs: 'abs' }), out: null, timings: emptyTimings(), quiet: true });
  return { ...stream, total: list.length };
}

