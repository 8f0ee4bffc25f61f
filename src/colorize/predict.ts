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
 * Large images: a local input of more than tile x tile pixels runs in overlapping windows (tiles.ts) whose
 * halo covers the local path's reach, so the result is the one-pass result while the engine's memory stays
 * bounded by the window (a 24-megapixel photo at `--resolution full` runs in 1024 x 1024 windows).
 *
 * Errors: an engine failure (e.g. out of memory) on a batch retries its images one at a time; an image that
 * still fails is reported (stage 'predict', its path, the engine's reason) and the run goes on. Errors that
 * surface at the consumer's await: AbortError on abort, BadInputError from the reporter with onError 'fail',
 * InvalidOptionError for a wrong input (a bug upstream). The factory throws InvalidOptionError for a model
 * without the two inputs, a style input of the wrong size or a bad tile.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import type { Stage, StageContext } from '../core/pipeline.js';
import { InvalidOptionError, OutOfMemoryError, reasonOf } from '../core/errors.js';
import { abortErrorOf } from '../core/abort.js';
import { invalidOption, object, positiveInt } from '../core/validate.js';
import type { PreparedImage } from './image.js';
import type { OnnxColorizer } from '../onnx/session.js';
import { DEFAULT_TILE, TILE_HALO, checkTile, cutWindow, pasteKept, planTiles, type TilePlan } from './tiles.js';

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
  /**
   * Largest local input run in one pass, as a side (default DEFAULT_TILE): an image of more than tile x tile
   * pixels runs in overlapping windows of at most tile x tile (tiles.ts; the same result, bounded memory).
   * A multiple of 8, more than twice the halo.
   */
  tile?: number;
  /** Pixels of the windows run in one engine call (default tile x tile: one at a time). */
  batchPixels?: number;
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
  const halo = TILE_HALO;
  const tile = checkTile(options.tile ?? DEFAULT_TILE, 'options.tile');
  const batchPixels = positiveInt(options.batchPixels ?? tile * tile, 'options.batchPixels');
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
        const out = await predictOrReport(group, styleFeatures, ctx);
        const t2 = performance.now();
        onBatch?.({ size: group.length, waitMs: t1 - t0, computeMs: t2 - t1 });
        for (const p of out) yield p;
      }
    } finally {
      styleFeatures?.dispose();
      await it.return?.();
    }
  };

  /**
   * A group's predictions; when the engine fails on it, each image again on its own (a batch too large for the
   * engine's memory may fit one at a time), and an image that still fails is reported (stage 'predict', its
   * path and the engine's reason) and left out: one image never ends the run. Aborts and usage errors
   * (InvalidOptionError) are thrown.
   */
  async function predictOrReport(group: PreparedImage[], styleFeatures: Tensor | null, ctx: StageContext): Promise<PredictedImage[]> {
    try {
      return await predictGroup(group, styleFeatures, ctx.signal);
    } catch (err) {
      if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
      if (err instanceof InvalidOptionError) throw err;
      if (group.length === 1) {
        dropped(group[0]!, err, ctx);
        return [];
      }
    }
    const out: PredictedImage[] = [];
    for (const p of group) {
      if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
      try {
        out.push(...(await predictGroup([p], styleFeatures, ctx.signal)));
      } catch (err) {
        if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
        if (err instanceof InvalidOptionError) throw err;
        dropped(p, err, ctx);
      }
    }
    return out;
  }

  /**
   * The engine on one batch of local inputs (n x h x w) with the global path's input for them: `global` holds
   * n per-image inputs, or one shared by all (`shared`: a style reference, or an image's tiles), or
   * styleFeatures stand in for it. Returns the ab, NHWC.
   */
  async function runEngine(
    local: Float32Array, n: number, h: number, w: number,
    global: Float32Array | null, shared: boolean, styleFeatures: Tensor | null,
  ): Promise<{ data: Float32Array; abH: number; abW: number }> {
    if (onnx) {
      let r;
      try {
        r = await onnx.predict({ local, global: global!, batch: n, height: h, width: w });
      } catch (err) {
        throw outOfMemory(err, n, w, h) ?? err;
      }
      return { data: r.ab, abH: r.abHeight, abW: r.abWidth };
    }
    let ab: Tensor;
    try {
      ab = tf.tidy(() => {
        const localT = tf.tensor4d(local, [n, h, w, 1]);
        const globalT = () => (shared ? tf.tile(tf.tensor4d(global!, [1, S, S, 1]), [n, 1, 1, 1]) : tf.tensor4d(global!, [n, S, S, 1]));
        if (split) {
          const feats = styleFeatures
            ? tf.tile(styleFeatures, [n, 1])
            : shared
              ? tf.tile(first(split.global.predict(tf.tensor4d(global!, [1, S, S, 1]))), [n, 1])
              : first(split.global.predict(globalT()));
          return first(split.local.predict([localT, feats]));
        }
        const inputs: Tensor[] = [];
        inputs[io!.localIndex] = localT;
        inputs[io!.globalIndex] = globalT();
        return first(infer!.predict(inputs));
      });
    } catch (err) {
      throw outOfMemory(err, n, w, h) ?? err;
    }
    try {
      const [, abH, abW] = ab.shape as [number, number, number, number];
      return { data: (await ab.data()) as Float32Array, abH, abW };
    } catch (err) {
      throw outOfMemory(err, n, w, h) ?? err;
    } finally {
      ab.dispose();
    }
  }

  /** The global input of one image: the style reference's, or its own (checked against S). */
  function globalOf(p: PreparedImage): Float32Array {
    const g = style ?? p.global;
    if (g.length !== S * S) {
      throw new InvalidOptionError(`Expected a global input of ${S}x${S} for ${p.key} but received ${g.length} values (prepare's globalSize must be the model's)`);
    }
    return g;
  }

  async function predictGroup(group: PreparedImage[], styleFeatures: Tensor | null, signal: AbortSignal): Promise<PredictedImage[]> {
    const B = group.length;
    const { localWidth: w, localHeight: h } = group[0]!;
    // An image over tile x tile never runs in one pass, in a batch or not.
    const plan = planTiles(w, h, tile, halo);
    if (plan) {
      const out: PredictedImage[] = [];
      for (const p of group) out.push(await predictTiled(p, plan, styleFeatures, signal));
      return out;
    }
    const px = w * h;
    const local = new Float32Array(B * px);
    // With split style features, or a style image (one global input for the batch), the per-image global
    // inputs are not needed at all.
    const shared = Boolean(styleFeatures || style);
    const global = styleFeatures ? null : shared ? style! : new Float32Array(B * S * S);
    group.forEach((p, i) => {
      if (p.localWidth !== w || p.localHeight !== h || p.local.length !== px) {
        throw new InvalidOptionError(`Expected one processing shape per batch (${w}x${h}) but received ${p.localWidth}x${p.localHeight} for ${p.key}`);
      }
      local.set(p.local, i * px);
      if (global && !shared) global.set(globalOf(p), i * S * S);
    });
    const r = await runEngine(local, B, h, w, global, shared, styleFeatures);
    return withAb(group, r.data, r.abH, r.abW);
  }

  /**
   * One image too large for one pass: its local input in overlapping windows (tiles.ts), as many per engine
   * call as `batchPixels` allows, each with the image's one global input; the kept parts of their ab make the
   * image's, exactly as one pass would.
   */
  async function predictTiled(p: PreparedImage, plan: TilePlan, styleFeatures: Tensor | null, signal: AbortSignal): Promise<PredictedImage> {
    const { localWidth: w, localHeight: h } = p;
    const { tileWidth: tw, tileHeight: th } = plan;
    if (p.local.length !== w * h) throw new InvalidOptionError(`Expected a local input of ${w}x${h} for ${p.key} but received ${p.local.length} values`);
    // The split model's global features, once for all the windows (ONNX runs its graph whole: the global
    // input goes in once per call, shared by the windows of the call).
    const features = styleFeatures ?? (split ? tf.tidy(() => tf.keep(first(split.global.predict(tf.tensor4d(globalOf(p), [1, S, S, 1]))))) : null);
    try {
      const global = features ? null : globalOf(p);
      const abW = w / 2;
      const ab = new Float32Array(abW * (h / 2) * 2);
      const per = Math.max(1, Math.min(plan.tiles.length, Math.floor(batchPixels / (tw * th))));
      const local = new Float32Array(per * tw * th);
      for (let i = 0; i < plan.tiles.length; i += per) {
        // A photo in many windows can take minutes on a slow engine: an abort (Ctrl-C) stops between calls.
        if (signal.aborted) throw abortErrorOf(signal);
        const chunk = plan.tiles.slice(i, i + per);
        chunk.forEach((t, j) => cutWindow(p.local, w, t.x.origin, t.y.origin, tw, th, local, j * tw * th));
        const n = chunk.length;
        const r = await runEngine(n === per ? local : local.subarray(0, n * tw * th), n, th, tw, global, true, features);
        if (r.abW !== tw / 2 || r.abH !== th / 2) throw new Error(`Expected ab of ${tw / 2}x${th / 2} per tile but the engine returned ${r.abW}x${r.abH}`);
        chunk.forEach((t, j) => pasteKept(r.data, j * r.abW * r.abH * 2, tw, t, ab, abW));
      }
      return withAb([p], ab, h / 2, abW)[0]!;
    } finally {
      if (features !== styleFeatures) features?.dispose();
    }
  }
}

/** The group's images with their slice of the batch's ab (NHWC, interleaved a, b). */
function withAb(group: PreparedImage[], data: Float32Array, abH: number, abW: number): PredictedImage[] {
  const per = abH * abW * 2;
  return group.map((p, i) => {
    const ab = group.length === 1 && data.length === per ? data : data.slice(i * per, (i + 1) * per);
    const q: PredictedImage = { ...p, ab, abWidth: abW, abHeight: abH };
    // The network's inputs are no longer needed: let them go (the write stage keeps L and alpha).
    q.local = q.local === p.L ? p.L : new Float32Array(0);
    q.global = new Float32Array(0);
    return q;
  });
}

/** An image the engine failed on: reported once with its path and the engine's reason. */
function dropped(p: PreparedImage, err: unknown, ctx: StageContext): void {
  p.lease?.release();
  ctx.reporter.report('predict', p.url ?? p.key, `the engine failed on this image: ${reasonOf(err).split('\n')[0]}`, err);
}

function outOfMemory(err: unknown, B: number, w: number, h: number): OutOfMemoryError | null {
  const msg = err instanceof Error ? err.message : String(err);
  if (!/out of memory|OOM|allocat|Aborted\(\)|memory access out of bounds/i.test(msg)) return null;
  const advice = B > 1 ? `try --batch ${Math.floor(B / 2)}, a smaller --tile or --resolution` : 'try a smaller --tile or --resolution';
  return new OutOfMemoryError(
    `The engine ran out of memory predicting a batch of ${B} at ${w}x${h}; ${advice} (${msg.split('\n')[0]})`,
    { cause: err },
  );
}
