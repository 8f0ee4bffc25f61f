/**
 * The `predict` stage: groups of prepared images (one processing shape per group, see group-by-shape.ts) ->
 * the same images with the network's ab. The pipeline's only stage that touches the engine: it creates the
 * input tensors, runs the inference model, reads the ab back into a plain Float32Array per image, and disposes
 * every tensor it made before yielding.
 *
 * Iizuka et al. 2016: the local path sees each image at its processing size, the global path an S x S rescale
 * of the same image; both run batched. The paper's style transfer (global features computed from one image,
 * local features from another): with `style`, the reference's global input replaces every image's.
 *
 * The model: a Colorizer of src/model/network.ts, whose two paths run as two models (`global`: global L
 * [B, S, S, 1] -> features [B, C]; `local`: [local L [B, H, W, 1], features] -> ab [B, H/2, W/2, 2] as
 * (ab + 128) / 255), so a style reference's features are computed once for the whole run; or a bare
 * inference model (tfjs Layers, two inputs local L and global L; further outputs such as class logits are
 * ignored), whose inputs are told apart by shape (the global one has fixed spatial dimensions); or an ONNX
 * Runtime colorizer (src/model/onnx/engine.ts: plain arrays in and out, no tfjs; a style reference goes in as
 * a global input of batch 1, which the exported graph broadcasts). L is L / 100 throughout; H and W are
 * multiples of 8.
 *
 * Timing: `onBatch` receives, per batch, the time the stage waited for its input and the engine's time
 * (tensor upload, predict, download): the data-stall figure of the colorize benchmark.
 *
 * Errors that surface at the consumer's await: the engine's (e.g. out of memory: OutOfMemoryError naming a
 * smaller --batch), AbortError on abort. The factory throws InvalidOptionError for a model without the two
 * inputs or a style input of the wrong size.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import type { Stage, StageContext } from '../core/pipeline.js';
import { InvalidOptionError, OutOfMemoryError } from '../core/errors.js';
import { abortErrorOf } from '../core/abort.js';
import { invalidOption, object } from '../core/validate.js';
import type { PreparedImage } from './image.js';
import type { OnnxColorizer } from '../model/onnx/engine.js';

/** A prepared image with the network's prediction: ab / normalized, at (localWidth / 2) x (localHeight / 2). */
export interface PredictedImage extends PreparedImage {
  /** (ab + 128) / 255, interleaved a, b, row-major, abWidth x abHeight. */
  ab: Float32Array;
  abWidth: number;
  abHeight: number;
}

/** What predict needs of a tfjs LayersModel. */
export interface InferenceModel {
  inputs: { shape: (number | null)[] }[];
  predict(x: Tensor | Tensor[]): Tensor | Tensor[];
}

/**
 * The network split in its two paths (src/model/network.ts Colorizer): `global` maps global L [B, S, S, 1] to
 * [features [B, C], logits?]; `local` maps [local L [B, H, W, 1], features [B, C]] to ab. With it a style
 * reference's features are computed once, not once per image.
 */
export interface SplitColorizer {
  global: InferenceModel;
  local: InferenceModel;
  infer?: InferenceModel;
}

/** What predict needs of tfjs-core (the engine's `tf`). */
export interface PredictTf {
  tensor4d(values: Float32Array, shape: [number, number, number, number]): Tensor;
  tidy<T extends Tensor | Tensor[]>(fn: () => T): T;
  tile<T extends Tensor>(x: T, reps: number[]): T;
  keep<T extends Tensor>(x: T): T;
}

export interface BatchTiming {
  size: number;
  /** Time the stage waited for this batch (ms). */
  waitMs: number;
  /** Engine time: upload, predict, download (ms). */
  computeMs: number;
}

export interface PredictOptions {
  /** The engine's tfjs-core (Engine.tf); not needed for an ONNX model. */
  tf?: PredictTf;
  /** The network: a Colorizer (global and local paths), a bare inference model (two inputs), or ONNX Runtime's. */
  model: SplitColorizer | InferenceModel | OnnxColorizer;
  /** Style transfer: the reference image's global input, L / 100 at S x S (PreparedImage.global). */
  style?: Float32Array;
  /** Called after each batch with its timing. */
  onBatch?: (t: BatchTiming) => void;
}

/**
 * Which of the model's inputs is local and which global, and S.
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

/** S, the global input's size, of a model (split, bare or ONNX). */
export function globalSizeOf(model: SplitColorizer | InferenceModel | OnnxColorizer): number {
  if (isOnnx(model)) return model.inputSize;
  if (isSplit(model)) {
    const shape = model.global.inputs[0]?.shape;
    if (!shape || shape.length !== 4 || !Number.isInteger(shape[1])) {
      throw new InvalidOptionError(`Expected a global model input [B, S, S, 1] but received ${JSON.stringify(shape)}`);
    }
    return shape[1] as number;
  }
  return modelInputs(model).globalSize;
}

export function isOnnx(m: unknown): m is OnnxColorizer {
  const o = m as OnnxColorizer;
  return typeof o?.inputSize === 'number' && typeof o.predict === 'function' && typeof o.release === 'function';
}

function isSplit(m: SplitColorizer | InferenceModel | OnnxColorizer): m is SplitColorizer {
  const s = m as SplitColorizer;
  return typeof s.global?.predict === 'function' && typeof s.local?.predict === 'function';
}

const first = (y: Tensor | Tensor[]): Tensor => (Array.isArray(y) ? y[0]! : y);

/**
 * The predict stage.
 * @throws InvalidOptionError at once for a wrong model or style size.
 * @example pipeline(source, prepare({}), groupByShape({ size: 8, shapeOf }), prefetch(2), predict({ tf, model }))
 */
export function predict(options: PredictOptions): Stage<PreparedImage[], PredictedImage> {
  object(options, 'options');
  const { model, style, onBatch } = options;
  const onnx = isOnnx(model) ? model : null;
  const tf = options.tf as PredictTf;
  if (!onnx && (!tf || typeof tf.tensor4d !== 'function' || typeof tf.tidy !== 'function')) {
    throw invalidOption('options.tf', 'tfjs-core', tf);
  }
  const split = !onnx && model !== null && typeof model === 'object' && isSplit(model) ? model : null;
  const infer = split || onnx ? null : (model as InferenceModel);
  if (!onnx && !split && (!infer || typeof infer.predict !== 'function')) {
    throw invalidOption('options.model', 'a Colorizer, a tfjs LayersModel or an ONNX colorizer', model);
  }
  const io = infer ? modelInputs(infer) : null;
  const S = globalSizeOf(model);
  if (style !== undefined && (!(style instanceof Float32Array) || style.length !== S * S)) {
    throw invalidOption('options.style', `Float32Array of ${S}x${S} values`, style instanceof Float32Array ? style.length : style);
  }
  return async function* predictStage(source: AsyncIterable<PreparedImage[]>, ctx: StageContext): AsyncGenerator<PredictedImage> {
    const it = source[Symbol.asyncIterator]();
    // The style reference's global features, [1, C], computed once and kept for the stage's life.
    let styleFeatures: Tensor | null = null;
    try {
      if (split && style) {
        styleFeatures = tf.tidy(() => tf.keep(first(split.global.predict(tf.tensor4d(style, [1, S, S, 1])))));
      }
      for (;;) {
        const t0 = performance.now();
        const r = await it.next();
        if (r.done) return;
        if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
        const group = r.value;
        if (group.length === 0) continue;
        const t1 = performance.now();
        const out = await predictGroup(group, styleFeatures);
        const t2 = performance.now();
        onBatch?.({ size: group.length, waitMs: t1 - t0, computeMs: t2 - t1 });
        for (const p of out) yield p;
      }
    } finally {
      styleFeatures?.dispose();
      await it.return?.();
    }
  };

  async function predictGroup(group: PreparedImage[], styleFeatures: Tensor | null): Promise<PredictedImage[]> {
    const B = group.length;
    const { localWidth: w, localHeight: h } = group[0]!;
    const px = w * h;
    const local = new Float32Array(B * px);
    // With split style features, or a style image for ONNX (one global input for the batch), the per-image
    // global inputs are not needed at all.
    const global = styleFeatures || (onnx && style) ? null : new Float32Array(B * S * S);
    group.forEach((p, i) => {
      if (p.localWidth !== w || p.localHeight !== h || p.local.length !== px) {
        throw new InvalidOptionError(`Expected one processing shape per batch (${w}x${h}) but received ${p.localWidth}x${p.localHeight} for ${p.key}`);
      }
      local.set(p.local, i * px);
      if (global) {
        const g = style ?? p.global;
        if (g.length !== S * S) {
          throw new InvalidOptionError(`Expected a global input of ${S}x${S} for ${p.key} but received ${g.length} values (prepare's globalSize must be the model's)`);
        }
        global.set(g, i * S * S);
      }
    });
    if (onnx) {
      let r;
      try {
        r = await onnx.predict({ local, global: global ?? style!, batch: B, height: h, width: w });
      } catch (err) {
        throw outOfMemory(err, B, w, h) ?? err;
      }
      return withAb(group, r.ab, r.abHeight, r.abWidth);
    }
    let ab: Tensor;
    try {
      ab = tf.tidy(() => {
        const localT = tf.tensor4d(local, [B, h, w, 1]);
        if (split) {
          const feats = styleFeatures ? tf.tile(styleFeatures, [B, 1]) : first(split.global.predict(tf.tensor4d(global!, [B, S, S, 1])));
          return first(split.local.predict([localT, feats]));
        }
        const inputs: Tensor[] = [];
        inputs[io!.localIndex] = localT;
        inputs[io!.globalIndex] = tf.tensor4d(global!, [B, S, S, 1]);
        return first(infer!.predict(inputs));
      });
    } catch (err) {
      throw outOfMemory(err, B, w, h) ?? err;
    }
    let data: Float32Array;
    let abH: number;
    let abW: number;
    try {
      [, abH, abW] = ab.shape as [number, number, number, number];
      data = (await ab.data()) as Float32Array;
    } catch (err) {
      throw outOfMemory(err, B, w, h) ?? err;
    } finally {
      ab.dispose();
    }
    return withAb(group, data, abH, abW);
  }
}

/** The group's images with their slice of the batch's ab (NHWC, interleaved a, b). */
function withAb(group: PreparedImage[], data: Float32Array, abH: number, abW: number): PredictedImage[] {
  const per = abH * abW * 2;
  return group.map((p, i) => {
    const q: PredictedImage = { ...p, ab: data.slice(i * per, (i + 1) * per), abWidth: abW, abHeight: abH };
    // The network's inputs are no longer needed: let them go (the write stage keeps L and alpha).
    q.local = q.local === p.L ? p.L : new Float32Array(0);
    q.global = new Float32Array(0);
    return q;
  });
}

function outOfMemory(err: unknown, B: number, w: number, h: number): OutOfMemoryError | null {
  const msg = err instanceof Error ? err.message : String(err);
  if (!/out of memory|OOM|allocat|Aborted\(\)|memory access out of bounds/i.test(msg)) return null;
  return new OutOfMemoryError(
    `The engine ran out of memory predicting a batch of ${B} at ${w}x${h}; try --batch ${Math.max(1, Math.floor(B / 2))} or a smaller --resolution (${msg.split('\n')[0]})`,
    { cause: err },
  );
}
