/**
 * The options and results of the colorize graph (graph.ts), and the checks its entry points make on the
 * options they share, when called: InvalidOptionError, `Expected X for NAME but received Y`.
 */
import os from 'node:os';
import type { OnError, Reporter } from '../core/errors.js';
import { invalidOption, object, oneOf, positiveInt } from '../core/validate.js';
import type { BackendChoice, TfjsBackend } from '../tfjs/backend.js';
import { FORMATS, checkQuality, type FormatChoice } from './formats.js';
import { checkResolution, type Resolution } from './image.js';
import { DEFAULT_TILE, checkTile } from './tiles.js';
import { RUNTIMES, type ColorizeModel, type Runtime } from './runner.js';
import { ONNX_DEVICES, type OnnxDevice } from '../onnx/session.js';
import type { ColorizedImage } from './write.js';

export type { ColorizeModel } from './runner.js';

/** Default images per batch. */
export const DEFAULT_BATCH = 8;
/**
 * Default cap on the pixels of one batch (local path input): a batch of large images is split so that the
 * engine's activations fit (wasm32 has 4 GiB): 2048 x 2048 photos run one at a time, 256 x 256 ones 8 at once.
 */
export const DEFAULT_BATCH_PIXELS = 4 * 1024 * 1024;

/**
 * Default memory budget of the images in flight (decoded pixels, their planes and encodings; image.ts
 * imageCost): 1 GiB. With the process's own (Node, the engine, the workers) a run of 24-megapixel photos stays
 * within about 1.5 GB; small images are not held back by it (the counts of the stages bound them first).
 */
export const DEFAULT_MEMORY_BUDGET = 1024 * 1024 * 1024;

/**
 * What a decode/encode worker thread holds of its own (its isolate, sharp's per-thread buffers), taken off the
 * memory budget per thread, down to a quarter of it: measured 11-15 MB a thread (BENCHMARKS.md).
 */
export const WORKER_BYTES = 16 * 1024 * 1024;

/**
 * ONNX Runtime's CPU threads in a colorize run: cores - 1, at least 1 (the engine gets the cores the decode and
 * encode workers leave free while it predicts).
 */
export function defaultEngineThreads(): number {
  return Math.max(1, os.availableParallelism() - 1);
}

export interface ColorizeCommonOptions {
  model: ColorizeModel;
  /** Style transfer: a reference image (path or bytes) whose global features replace every image's. */
  style?: string | Buffer;
  /** Images per batch, at most (default 8). */
  batch?: number;
  /** Pixels per batch at most (default 4 Mi); a single image over it runs alone. */
  batchPixels?: number;
  /**
   * Processing size of the local path (default 'auto': the scale the model trained at when it records one,
   * else the original size; the long side at most MAX_AUTO_SIDE). 'full' and N override it.
   */
  resolution?: Resolution;
  /**
   * Largest local input run in one pass, as a side (default 1024, tiles.ts DEFAULT_TILE): larger ones run in
   * overlapping windows of it, with the same result and the engine's memory bounded by the window.
   */
  tile?: number;
  /** Output format (default 'same'). */
  format?: FormatChoice;
  /** Quality 1..100 of lossy formats (default 90). */
  quality?: number;
  /**
   * The runtime (`--engine`): 'auto' (default: ONNX Runtime when onnxruntime-node loads, else tfjs; a model
   * passed in memory runs on tfjs), 'onnx' or 'tfjs'. See runner.ts.
   */
  runtime?: Runtime;
  /** ONNX Runtime's device (`--device`): auto (cuda, then a real GPU through webgpu, then cpu), cpu, webgpu, cuda. */
  device?: OnnxDevice;
  /** The tfjs backend (`--backend`), when the runtime is tfjs. */
  backend?: BackendChoice;
  /** A tfjs backend already set up (its `tf` must be the one the model was built on). */
  tfjsBackend?: TfjsBackend;
  /**
   * ONNX Runtime's CPU threads (default: cores - 1, at least 1: the engine gets the cores the decode and encode
   * workers leave free while it predicts).
   */
  engineThreads?: number;
  /** Worker threads for decode and encode (default: cores). */
  threads?: number;
  /**
   * Bytes the images in flight and the worker threads may take (default DEFAULT_MEMORY_BUDGET, 1 GiB): each
   * thread counts WORKER_BYTES, each image its estimate from its header; an image waits before its decode until
   * it fits, and one larger than the images' share runs alone.
   */
  memoryBudget?: number;
  /** Batches of prepared images held ahead of the engine (default 2). */
  prefetch?: number;
  /** sharp's decompression-bomb guard (default config.loader.limitInputPixels). */
  limitInputPixels?: number;
  onError?: OnError;
  /** Aborts the stream (the iterators of colorizeBuffers and colorizeStream throw AbortError). */
  signal?: AbortSignal;
  /** Where bad-input lines go (default stderr; null: nowhere). Ignored when `reporter` is given. */
  log?: ((line: string) => void) | null;
  reporter?: Reporter;
}

export interface ColorizeOptions extends Omit<ColorizeCommonOptions, 'signal'> {
  /**
   * Graceful stop (the same name as trainGraph's; `pipe colorize` aborts it on Ctrl-C): no new file is started,
   * the files being written are finished whole, and the summary says `stopped: 'interrupted'`.
   */
  stop?: AbortSignal;
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
  /** The most bytes of the memory budget held at once (image.ts imageCost's estimates). */
  inFlightPeakBytes: number;
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

/**
 * Checks the options every colorize entry point shares.
 * @throws InvalidOptionError for a wrong value.
 */
export function validateCommon(o: ColorizeCommonOptions): void {
  object(o, 'options');
  if (o.model === undefined || o.model === null || o.model === '') {
    throw invalidOption('options.model', 'a model path or a loaded model', o.model);
  }
  positiveInt(o.batch ?? DEFAULT_BATCH, 'options.batch');
  positiveInt(o.batchPixels ?? DEFAULT_BATCH_PIXELS, 'options.batchPixels');
  positiveInt(o.prefetch ?? 2, 'options.prefetch');
  if (o.threads !== undefined) positiveInt(o.threads, 'options.threads');
  if (o.engineThreads !== undefined) positiveInt(o.engineThreads, 'options.engineThreads');
  positiveInt(o.memoryBudget ?? DEFAULT_MEMORY_BUDGET, 'options.memoryBudget');
  checkResolution(o.resolution ?? 'auto', 'options.resolution');
  checkTile(o.tile ?? DEFAULT_TILE, 'options.tile');
  oneOf(o.runtime ?? 'auto', 'options.runtime', RUNTIMES);
  oneOf(o.device ?? 'auto', 'options.device', ONNX_DEVICES);
  oneOf(o.format ?? 'same', 'options.format', FORMATS);
  checkQuality(o.quality ?? 90, 'options.quality');
}

export function emptyTimings(): ColorizeTimings {
  return {
    prepareMs: 0, predictMs: 0, predictWaitMs: 0, firstBatchWaitMs: 0, tailMs: 0, composeMs: 0, writeMs: 0, batches: 0,
    written: 0, existing: 0, inFlightPeakBytes: 0,
  };
}
