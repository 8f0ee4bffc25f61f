/**
 * The inference runner: what colorize asks of an engine, whichever runs it (onnx/runner.ts, tfjs/runner.ts).
 * It lives here, below the engines' rooms, so that each implements it (as onnxruntime-common's Backend and
 * SessionHandler sit below its runtimes); colorize/runner.ts picks one (loadRunner).
 *
 * Arrays in and out, no engine types: L is L / 100; local [batch, height, width] (height and width multiples
 * of 8); global [batch, S, S], or [S, S] shared by the whole batch (`sharedGlobal`: a style reference, or one
 * image's tiles). ab comes back NHWC [batch, height / 2, width / 2, 2], a and b interleaved, as (ab + 128) / 255.
 */
import type { TrainingScale } from '../types.js';

/** The shape of one run's inputs. */
export interface RunShape {
  batch: number;
  height: number;
  width: number;
  /** One global input of S x S for the whole batch instead of one per image. */
  sharedGlobal: boolean;
}

export interface RunResult {
  /** (ab + 128) / 255, NHWC, a and b interleaved. */
  ab: Float32Array;
  abHeight: number;
  abWidth: number;
}

/**
 * A model loaded on an engine. One `run` at a time. A runner may keep what the global path computed for the
 * shared global array it saw last (by identity, so callers never change an array they passed): a style
 * reference's or a tiled image's global features are then computed once.
 */
export interface Runner {
  /** S: the global input's side. */
  readonly globalSize: number;
  /** One line for logs and summaries: the runtime, its device or backend, and why `auto` chose it. */
  readonly describe: string;
  /** How the model was trained, when it records it (colorize's default resolution follows it). */
  readonly trainingScale?: TrainingScale;
  /**
   * The network on one batch.
   * @throws the engine's errors when the promise is awaited (out of memory among them); InvalidOptionError for
   *   inputs of the wrong size.
   */
  run(local: Float32Array, global: Float32Array, shape: RunShape): Promise<RunResult>;
  /** Frees what the runner holds (a model it loaded, cached features); never a model it was handed. */
  release(): Promise<void>;
}
