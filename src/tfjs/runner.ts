/**
 * The tfjs runner (network/runner.ts) of a model in memory:
 * - a Colorizer (network.ts) split in its two paths: `global` maps global L [B, S, S, 1] to [features [B, C],
 *   logits?], `local` maps [local L [B, H, W, 1], features] to ab [B, H/2, W/2, 2]. The features of a shared
 *   global input are computed once and kept until another shared input comes or the runner is released, so a
 *   style reference's are computed once per run and a tiled image's once per image;
 * - or a bare inference model (a tfjs LayersModel, e.g. from tf.loadLayersModel) with the two inputs local L and
 *   global L, told apart by shape (the global one has fixed spatial dimensions); further outputs such as class
 *   logits are ignored.
 * Every tensor a run makes is disposed before its promise settles.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { InvalidOptionError, reasonOf } from '../core/errors.js';
import { invalidOption } from '../core/validate.js';
import type { TrainingScale } from '../types.js';
import type { Runner, RunResult, RunShape } from '../network/runner.js';
import type { TfjsBackend } from './backend.js';
import { disposeColorizer, loadColorizer, type Colorizer } from './network.js';

/** What the runner needs of a tfjs LayersModel. */
export interface InferenceModel {
  inputs: { shape: (number | null)[] }[];
  predict(x: Tensor | Tensor[]): Tensor | Tensor[];
}

/** The network split in its two paths (network.ts Colorizer). */
export interface SplitColorizer {
  global: InferenceModel;
  local: InferenceModel;
  infer?: InferenceModel;
  trainingScale?: TrainingScale;
}

/** What the runner needs of tfjs-core (TfjsBackend.tf). */
export interface RunnerTf {
  tensor4d(values: Float32Array, shape: [number, number, number, number]): Tensor;
  tidy<T extends Tensor | Tensor[]>(fn: () => T): T;
  tile<T extends Tensor>(x: T, reps: number[]): T;
  keep<T extends Tensor>(x: T): T;
}

export interface TfjsRunnerOptions {
  /** Appended to the engine line (e.g. why auto chose tfjs). */
  note?: string;
  /** Frees the model on release: only for a model the caller hands over. */
  dispose?: () => void;
}

/**
 * Which of a bare model's inputs is local and which global, and S.
 * @throws InvalidOptionError when the model does not have the two expected inputs.
 */
export function modelInputs(model: InferenceModel): { localIndex: number; globalIndex: number; globalSize: number } {
  const shapes = model?.inputs?.map((i) => i.shape);
  if (!Array.isArray(shapes) || shapes.length !== 2) {
    throw new InvalidOptionError(`Expected an inference model with two inputs (local L, global L) but received one with ${shapes?.length ?? 'no'} inputs`);
  }
  const fixed = shapes.map((s) => s.length === 4 && Number.isInteger(s[1]) && s[1] === s[2] && s[3] === 1);
  const free = shapes.map((s) => s.length === 4 && s[3] === 1 && (s[1] === null || s[1] === undefined || s[1] === -1));
  let globalIndex = fixed.indexOf(true);
  let localIndex = free.indexOf(true);
  if (globalIndex < 0 || localIndex < 0 || globalIndex === localIndex) {
    // Both fixed (a model saved for one size): the paper's order, local first.
    if (fixed[0] && fixed[1]) {
      localIndex = 0;
      globalIndex = 1;
    } else {
      throw new InvalidOptionError(`Expected model inputs [B, H, W, 1] and [B, S, S, 1] but received ${JSON.stringify(shapes)}`);
    }
  }
  return { localIndex, globalIndex, globalSize: shapes[globalIndex]![1] as number };
}

function isSplit(m: unknown): m is SplitColorizer {
  const s = m as SplitColorizer;
  return typeof s?.global?.predict === 'function' && typeof s.local?.predict === 'function';
}

/** S of a split model: its global path's input side. */
function splitGlobalSize(split: SplitColorizer): number {
  const shape = split.global.inputs[0]?.shape;
  if (!shape || shape.length !== 4 || !Number.isInteger(shape[1])) {
    throw new InvalidOptionError(`Expected a global model input [B, S, S, 1] but received ${JSON.stringify(shape)}`);
  }
  return shape[1] as number;
}

const first = (y: Tensor | Tensor[]): Tensor => (Array.isArray(y) ? y[0]! : y);

/**
 * A runner over a model in memory, on the engine it was built on.
 * @throws InvalidOptionError for a model without the two inputs or an engine without tfjs-core.
 * @example const runner = tfjsRunner(buildColorizer(config), await setupTfjs({ backend: 'wasm' }));
 */
export function tfjsRunner(model: SplitColorizer | InferenceModel, engine: Pick<TfjsBackend, 'describe'> & { tf: RunnerTf }, options: TfjsRunnerOptions = {}): Runner {
  const tf = engine?.tf;
  if (!tf || typeof tf.tensor4d !== 'function' || typeof tf.tidy !== 'function') throw invalidOption('engine.tf', 'tfjs-core', tf);
  const split = isSplit(model) ? model : null;
  const infer = split ? null : (model as InferenceModel);
  if (!split && typeof infer?.predict !== 'function') throw invalidOption('model', 'a Colorizer or a tfjs LayersModel', model);
  const io = infer ? modelInputs(infer) : null;
  const S = split ? splitGlobalSize(split) : io!.globalSize;
  // The split model's features [1, C] of the shared global input seen last.
  let kept: { global: Float32Array; features: Tensor } | null = null;
  const featuresOf = (split: SplitColorizer, global: Float32Array): Tensor => {
    if (kept?.global !== global) {
      kept?.features.dispose();
      kept = null;
      kept = { global, features: tf.tidy(() => tf.keep(first(split.global.predict(tf.tensor4d(global, [1, S, S, 1]))))) };
    }
    return kept.features;
  };
  return {
    globalSize: S,
    describe: `tfjs ${engine.describe}${options.note ?? ''}`,
    trainingScale: (model as { trainingScale?: TrainingScale }).trainingScale,
    async run(local: Float32Array, global: Float32Array, { batch: n, height: h, width: w, sharedGlobal }: RunShape): Promise<RunResult> {
      const features = split && sharedGlobal ? featuresOf(split, global) : null;
      const ab = tf.tidy(() => {
        const localT = tf.tensor4d(local, [n, h, w, 1]);
        const globalT = () => (sharedGlobal ? tf.tile(tf.tensor4d(global, [1, S, S, 1]), [n, 1, 1, 1]) : tf.tensor4d(global, [n, S, S, 1]));
        if (split) return first(split.local.predict([localT, features ? tf.tile(features, [n, 1]) : first(split.global.predict(globalT()))]));
        const inputs: Tensor[] = [];
        inputs[io!.localIndex] = localT;
        inputs[io!.globalIndex] = globalT();
        return first(infer!.predict(inputs));
      });
      try {
        const [, abHeight, abWidth] = ab.shape as [number, number, number, number];
        return { ab: (await ab.data()) as Float32Array, abHeight, abWidth };
      } finally {
        ab.dispose();
      }
    },
    async release() {
      kept?.features.dispose();
      kept = null;
      options.dispose?.();
    },
  };
}

/**
 * The runner of a model.json on a tfjs engine; release frees the model.
 * @throws InvalidOptionError naming the file when it cannot be loaded.
 */
export async function loadTfjsRunner(file: string, engine: TfjsBackend, options: Omit<TfjsRunnerOptions, 'dispose'> = {}): Promise<Runner> {
  let c: Colorizer;
  try {
    c = await loadColorizer(file);
  } catch (err) {
    if (err instanceof InvalidOptionError) throw err;
    throw new InvalidOptionError(`Cannot load the model ${file}: ${reasonOf(err)}`);
  }
  return tfjsRunner(c, engine, { ...options, dispose: () => disposeColorizer(c) });
}
