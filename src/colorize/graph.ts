/**
 * colorizeGraph(): the batch inference pipeline of `pipe colorize`, composed from the stage library:
 *
 *   files (sorted, rank/world split, existing outputs skipped before anything is read)
 *     -> prepare (worker pool: decode, L at the original size, local input, global 224 input)
 *     -> groupByShape (same processing shape, up to --batch and a pixel cap; eager: also the prefetch)
 *     -> predict (engine) -> prefetch
 *     -> write (worker pool: upsample ab, join the original L, Lab -> sRGB, encode; atomic write)
 *     -> progress
 *
 * While the engine predicts one batch, the pool decodes the next ones and encodes the previous ones (eager
 * grouping before the engine and a prefetch after it decouple the engine from both sides). colorizeBuffers() is the same graph over buffers in
 * and buffers out; evaluateFolder (src/eval.ts) uses it with composing only.
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
import os from 'node:os';
import path from 'node:path';
import type { Piscina } from 'piscina';
import { AbortError, BadInputError, InvalidOptionError, Reporter, reasonOf, type OnError } from '../core/errors.js';
import { pipeline, type StageContext } from '../core/pipeline.js';
import { throwIfAborted } from '../core/abort.js';
import type { Sample } from '../types.js';
import { listImageFiles, type ImageFile } from '../stages/files.js';
import { prefetch } from '../stages/prefetch.js';
import { progress } from '../stages/progress.js';
import { groupByShape } from '../stages/group-by-shape.js';
import {
  checkResolution, createColorizePool, extFormat, prepare, prepareImage, prepareSettings,
  type OutputFormat, type PreparedImage, type Resolution,
} from './prepare.js';
import { globalSizeOf, predict, type InferenceModel, type PredictedImage, type SplitColorizer } from './predict.js';
import { FORMATS, isInside, outputFor, realPathOf, write, type ColorizedImage, type FormatChoice } from './write.js';
import { setupEngine, type BackendChoice, type Engine } from '../model/engine.js';
import { disposeColorizer, loadColorizer, type Colorizer } from '../model/network.js';

/** A model: a run directory (runs/NAME), a model directory, a model.json, or a loaded Colorizer / LayersModel. */
export type ColorizeModel = string | Colorizer | SplitColorizer | InferenceModel;

/** Default images per batch. */
export const DEFAULT_BATCH = 8;
/**
 * Default cap on the pixels of one batch (local path input): a batch of large images is split so that the
 * engine's activations fit (wasm32 has 4 GiB): 2048 x 2048 photos run one at a time, 256 x 256 ones 8 at once.
 */
export const DEFAULT_BATCH_PIXELS = 4 * 1024 * 1024;

export interface ColorizeCommonOptions {
  model: ColorizeModel;
  /** Style transfer: a reference image (path or bytes) whose global features replace every image's. */
  style?: string | Buffer;
  /** Images per batch, at most (default 8). */
  batch?: number;
  /** Pixels per batch at most (default 4 Mi); a single image over it runs alone. */
  batchPixels?: number;
  /** Processing size of the local path (default 'full'). */
  resolution?: Resolution;
  /** Output format (default 'same'). */
  format?: FormatChoice;
  /** Quality 1..100 of lossy formats (default 90). */
  quality?: number;
  backend?: BackendChoice;
  /** An engine already set up (its `tf` must be the one the model was built on). */
  engine?: Engine;
  /** Worker threads for decode and encode (default: cores). */
  threads?: number;
  /** Batches of prepared images held ahead of the engine (default 2). */
  prefetch?: number;
  /** sharp's decompression-bomb guard (default config.loader.limitInputPixels). */
  limitInputPixels?: number;
  onError?: OnError;
  signal?: AbortSignal;
  /** Where bad-input lines go (default stderr; null: nowhere). Ignored when `reporter` is given. */
  log?: ((line: string) => void) | null;
  reporter?: Reporter;
}

export interface ColorizeOptions extends ColorizeCommonOptions {
  /** A directory (searched recursively) or one image file. */
  input: string;
  /** Output directory (created); may not be `input` or inside it. */
  out: string;
  /** Replace existing outputs (default false: they are skipped). */
  overwrite?: boolean;
  /** Process the files whose index in the sorted list % world === rank (default 0 of 1). */
  rank?: number;
  world?: number;
  /** No progress bar. */
  quiet?: boolean;
  /** Called per finished image. */
  onImage?: (r: ColorizedImage) => void;
}

/** Time spent per stage (ms, summed over images; worker times are per image, on their threads). */
export interface ColorizeTimings {
  /** Decode + prepare, in the workers. */
  prepareMs: number;
  /** Engine: upload, predict, download. */
  predictMs: number;
  /** The predict stage waiting for a batch (data stall), the first batch included. */
  predictWaitMs: number;
  /** The wait for the first batch (pipeline start-up: workers, first decodes). */
  firstBatchWaitMs: number;
  /** From the end of the last engine call to the end of the run (the last encodes and writes). */
  tailMs: number;
  /** Upsample + Lab -> sRGB + encode, in the workers. */
  composeMs: number;
  /** File writes (temp, fsync, rename). */
  writeMs: number;
  batches: number;
  /** Files written and found existing at write time (counted when done, also while a run stops). */
  written: number;
  existing: number;
}

export interface ColorizeSummary {
  /** Inputs considered (this rank's part). */
  total: number;
  written: number;
  skipped: number;
  failed: number;
  failures: { path: string; stage: string; reason: string }[];
  /** Set when the run stopped early: the reason (the first bad input with onError 'fail', or an abort). */
  stopped?: string;
  seconds: number;
  /** Written images per second of wall time. */
  imagesPerSecond: number;
  backend: string;
  timings: ColorizeTimings;
}

function positiveInt(v: unknown, name: string): number {
  if (!Number.isInteger(v) || (v as number) < 1) {
    throw new InvalidOptionError(`Expected positive integer for ${name} but received ${String(v)}`);
  }
  return v as number;
}

function validateCommon(o: ColorizeCommonOptions): void {
  if (o === null || typeof o !== 'object') throw new InvalidOptionError(`Expected object for options but received ${String(o)}`);
  if (o.model === undefined || o.model === null || o.model === '') {
    throw new InvalidOptionError(`Expected a model path or a loaded model for options.model but received ${String(o.model)}`);
  }
  positiveInt(o.batch ?? DEFAULT_BATCH, 'options.batch');
  positiveInt(o.batchPixels ?? DEFAULT_BATCH_PIXELS, 'options.batchPixels');
  positiveInt(o.prefetch ?? 2, 'options.prefetch');
  if (o.threads !== undefined) positiveInt(o.threads, 'options.threads');
  checkResolution(o.resolution ?? 'full', 'options.resolution');
  if (!FORMATS.includes(o.format ?? 'same')) {
    throw new InvalidOptionError(`Expected one of ${FORMATS.join('|')} for options.format but received ${String(o.format)}`);
  }
  const q = o.quality ?? 90;
  if (!Number.isInteger(q) || q < 1 || q > 100) throw new InvalidOptionError(`Expected integer in [1, 100] for options.quality but received ${String(q)}`);
}

/**
 * The model.json a model argument names: a file; a directory holding model.json; a run directory holding
 * model/model.json (what `pipe train` writes).
 * @throws InvalidOptionError when there is none.
 */
export async function resolveModelPath(p: string): Promise<string> {
  const st = await fsp.stat(p).catch(() => null);
  if (st?.isFile()) return path.resolve(p);
  if (st?.isDirectory()) {
    for (const c of [path.join(p, 'model.json'), path.join(p, 'model', 'model.json')]) {
      if (await fsp.stat(c).then((s) => s.isFile(), () => false)) return path.resolve(c);
    }
    throw new InvalidOptionError(`Expected a model: no model.json in ${p} or ${path.join(p, 'model')}`);
  }
  throw new InvalidOptionError(`Expected a model directory or model.json for --model but ${p} does not exist`);
}

interface LoadedModel {
  model: SplitColorizer | InferenceModel;
  /** Disposes the model when this graph loaded it. */
  release(): void;
}

async function loadModel(m: ColorizeModel): Promise<LoadedModel> {
  if (typeof m !== 'string') return { model: m, release: () => undefined };
  const file = await resolveModelPath(m);
  let c: Colorizer;
  try {
    c = await loadColorizer(file);
  } catch (err) {
    if (err instanceof InvalidOptionError) throw err;
    throw new InvalidOptionError(`Cannot load the model ${file}: ${reasonOf(err)}`);
  }
  return { model: c, release: () => disposeColorizer(c) };
}

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

export function emptyTimings(): ColorizeTimings {
  return {
    prepareMs: 0, predictMs: 0, predictWaitMs: 0, firstBatchWaitMs: 0, tailMs: 0, composeMs: 0, writeMs: 0, batches: 0,
    written: 0, existing: 0,
  };
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
  let loaded: LoadedModel | null = null;
  let engine: Engine;
  let S: number;
  let style: Float32Array | undefined;
  try {
    engine = o.engine ?? (await setupEngine({ backend: o.backend ?? 'auto' }));
    loaded = await loadModel(o.model);
    S = globalSizeOf(loaded.model);
    if (o.style !== undefined) style = await styleInput(o.style, S, o.limitInputPixels);
  } catch (err) {
    loaded?.release();
    await pool.destroy();
    throw err;
  }
  const model = loaded;
  const batchPixels = o.batchPixels ?? DEFAULT_BATCH_PIXELS;
  const t = o.timings;
  let lastPredictEnd = 0;
  async function* results(): AsyncGenerator<ColorizedImage> {
    try {
      const p = pipeline(
        o.source,
        prepare({
          resolution: o.resolution ?? 'full', globalSize: S, limitInputPixels: o.limitInputPixels, keepRgb: o.keepRgb ?? false,
          pool, concurrency: prepareConcurrency, onImage: (ms) => (t.prepareMs += ms),
        }),
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
          tf: engine.tf, model: model.model, style,
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
      await pool.destroy();
      model.release();
    }
  }
  return { results: results(), backend: engine.describe };
}

/** Reads files lazily (one per pull); an unreadable file is reported and skipped. */
function readFiles(list: (ImageFile & { index: number })[]): (ctx: StageContext) => AsyncIterable<IndexedSample> {
  return async function* readFilesSource(ctx) {
    for (const f of list) {
      throwIfAborted(ctx.signal);
      let image: Buffer;
      try {
        image = await fsp.readFile(f.abs, { signal: ctx.signal });
      } catch (err) {
        if (ctx.signal.aborted) throw new AbortError();
        ctx.reporter.report('files', f.abs, `cannot read file: ${reasonOf(err)}`, err);
        continue;
      }
      const ext = f.relPath.includes('.') ? f.relPath.slice(f.relPath.lastIndexOf('.') + 1).toLowerCase() : '';
      const key = ext ? f.relPath.slice(0, f.relPath.length - ext.length - 1) : f.relPath;
      yield { key, url: f.abs, relPath: f.relPath, image, imageExt: ext, fields: {}, index: f.index };
    }
  };
}

/**
 * Checks --in and --out: the input exists, --out is not a file, not --in and not inside it (real paths).
 * @throws InvalidOptionError.
 */
export async function checkPaths(input: string, out: string): Promise<{ inputReal: string; inputIsFile: boolean; outReal: string }> {
  const st = await fsp.stat(input).catch(() => null);
  if (!st) throw new InvalidOptionError(`Expected an existing directory or image file for --in but ${input} does not exist`);
  const inputReal = await fsp.realpath(input);
  const outReal = await realPathOf(out);
  const outSt = await fsp.stat(out).catch(() => null);
  if (outSt && !outSt.isDirectory()) throw new InvalidOptionError(`Expected a directory for --out but ${out} is a file`);
  if (st.isDirectory() && isInside(outReal, inputReal)) {
    throw new InvalidOptionError(
      outReal === inputReal
        ? `Refusing to write into the input: --out ${out} is --in ${input}`
        : `Refusing to write into the input: --out ${out} is inside --in ${input}`,
    );
  }
  if (st.isFile() && outReal === inputReal) throw new InvalidOptionError(`Refusing to write over the input ${input}`);
  return { inputReal, inputIsFile: st.isFile(), outReal };
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
  if (typeof o.input !== 'string' || o.input === '') throw new InvalidOptionError(`Expected non-empty string for options.input but received ${String(o.input)}`);
  if (typeof o.out !== 'string' || o.out === '') throw new InvalidOptionError(`Expected non-empty string for options.out but received ${String(o.out)}`);
  const world = positiveInt(o.world ?? 1, 'options.world');
  const rank = o.rank ?? 0;
  if (!Number.isInteger(rank) || rank < 0 || rank >= world) {
    throw new InvalidOptionError(`Expected integer in [0, ${world - 1}] for options.rank but received ${String(rank)}`);
  }
  const t0 = performance.now();
  await checkPaths(o.input, o.out);
  const outRoot = path.resolve(o.out);
  const format = o.format ?? 'same';
  const overwrite = o.overwrite ?? false;
  const reporter = o.reporter ?? new Reporter({ onError: o.onError ?? 'skip', log: o.log });

  // The stable, disjoint part of this rank, then the outputs already there (skipped before any read).
  const all = await listImageFiles(o.input);
  const mine = all.map((f, index) => ({ ...f, index })).filter((f) => f.index % world === rank);
  const todo: (ImageFile & { index: number })[] = [];
  const targets = new Map<string, string>();
  let skipped = 0;
  let written = 0;
  let stopped: string | undefined;
  const timings = emptyTimings();
  const failStop = (err: unknown) => {
    if (err instanceof BadInputError) {
      stopped = `${err.key}: ${err.reason}`;
      return true;
    }
    if (err instanceof AbortError || (o.signal?.aborted && (err as Error)?.name === 'AbortError')) {
      stopped = 'interrupted';
      return true;
    }
    return false;
  };
  try {
    for (const f of mine) {
      const target = path.join(outRoot, ...outputFor(f.relPath, format, extFormat(path.extname(f.relPath))).relPath.split('/'));
      const first = targets.get(target);
      if (first !== undefined) {
        reporter.report('files', f.abs, `its output ${target} is also the output of ${first}; rename one of them or choose another --format`);
        continue;
      }
      targets.set(target, f.abs);
      if (!overwrite && (await fsp.lstat(target).then(() => true, () => false))) {
        skipped++;
        continue;
      }
      todo.push(f);
    }
  } catch (err) {
    if (!failStop(err)) throw err;
  }

  let backend = o.engine?.describe ?? '';
  if (!stopped && todo.length > 0) {
    await fsp.mkdir(outRoot, { recursive: true });
    const stream = await openStream({
      ...o,
      source: readFiles(todo),
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
    total: mine.length,
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
  const list = (await listImageFiles(o.input)).map((f, index) => ({ ...f, index }));
  const stream = await openStream({ ...o, source: readFiles(list), out: null, timings: emptyTimings(), quiet: true });
  return { ...stream, total: list.length };
}

