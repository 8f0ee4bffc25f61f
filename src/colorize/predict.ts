/**
 * The `predict` stage: groups of prepared images (one processing shape per group, see group-by-shape.ts) ->
 * the same images with the network's ab. The pipeline's only stage that asks the engine for anything: it packs
 * a group's inputs into plain arrays, hands them to the runner (network/runner.ts: ONNX Runtime or tfjs, picked
 * by runner.ts) and gives each image its slice of the ab.
 *
 * Iizuka et al. 2016: the local path sees each image at its processing size, the global path an S x S rescale
 * of the same image; both run batched. The paper's style transfer (global features computed from one image,
 * local features from another): with `style`, the reference's global input replaces every image's, as one
 * global input shared by the batch (so a runner computes its features once). L is L / 100 throughout; H and W
 * are multiples of 8.
 *
 * Timing: `onBatch` receives, per batch, the time the stage waited for its input and the engine's time
 * (upload, predict, download): the data-stall figure of the colorize benchmark.
 *
 * Large images: a local input of more than tile x tile pixels runs in overlapping windows (tiles.ts) whose
 * halo covers the local path's reach, so the result is the one-pass result while the engine's memory stays
 * bounded by the window (a 24-megapixel photo at `--resolution full` runs in 1024 x 1024 windows).
 *
 * Errors: an engine failure (e.g. out of memory) on a batch retries its images one at a time; an image that
 * still fails is reported (stage 'predict', its path, the engine's reason) and the run goes on. Errors that
 * surface at the consumer's await: AbortError on abort, BadInputError from the reporter with onError 'fail',
 * InvalidOptionError for a wrong input (a bug upstream). The factory throws InvalidOptionError for a missing
 * runner, a style input of the wrong size or a bad tile.
 */
import type { Stage, StageContext } from '../core/pipeline.js';
import { InvalidOptionError, OutOfMemoryError, reasonOf } from '../core/errors.js';
import { abortErrorOf } from '../core/abort.js';
import { invalidOption, object, positiveInt } from '../core/validate.js';
import type { Runner, RunResult, RunShape } from '../network/runner.js';
import type { PreparedImage } from './image.js';
import { DEFAULT_TILE, TILE_HALO, checkTile, cutWindow, pasteKept, planTiles, type TilePlan } from './tiles.js';

/** A prepared image with the network's prediction: ab / normalized, at (localWidth / 2) x (localHeight / 2). */
export interface PredictedImage extends PreparedImage {
  /** (ab + 128) / 255, interleaved a, b, row-major, abWidth x abHeight. */
  ab: Float32Array;
  abWidth: number;
  abHeight: number;
}

export interface BatchTiming {
  size: number;
  /** Time the stage waited for this batch (ms). */
  waitMs: number;
  /** Engine time: upload, predict, download (ms). */
  computeMs: number;
}

export interface PredictOptions {
  /** The network on its engine (runner.ts loadRunner, or a runner from onnx/ or tfjs/). */
  runner: Runner;
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
 * The predict stage.
 * @throws InvalidOptionError at once for a missing runner or a wrong style size.
 * @example pipeline(source, prepare({}), groupByShape({ size: 8, shapeOf }), prefetch(2), predict({ runner }))
 */
export function predict(options: PredictOptions): Stage<PreparedImage[], PredictedImage> {
  object(options, 'options');
  const { runner, style, onBatch } = options;
  if (typeof runner?.run !== 'function' || !Number.isInteger(runner.globalSize)) throw invalidOption('options.runner', 'a Runner', runner);
  const S = runner.globalSize;
  if (style !== undefined && (!(style instanceof Float32Array) || style.length !== S * S)) {
    throw invalidOption('options.style', `Float32Array of ${S}x${S} values`, style instanceof Float32Array ? style.length : style);
  }
  const halo = TILE_HALO;
  const tile = checkTile(options.tile ?? DEFAULT_TILE, 'options.tile');
  const batchPixels = positiveInt(options.batchPixels ?? tile * tile, 'options.batchPixels');
  return async function* predictStage(source: AsyncIterable<PreparedImage[]>, ctx: StageContext): AsyncGenerator<PredictedImage> {
    const it = source[Symbol.asyncIterator]();
    try {
      for (;;) {
        const t0 = performance.now();
        const r = await it.next();
        if (r.done) return;
        if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
        const group = r.value;
        if (group.length === 0) continue;
        const t1 = performance.now();
        const out = await predictOrReport(group, ctx);
        const t2 = performance.now();
        onBatch?.({ size: group.length, waitMs: t1 - t0, computeMs: t2 - t1 });
        for (const p of out) yield p;
      }
    } finally {
      await it.return?.();
    }
  };

  /**
   * A group's predictions; when the engine fails on it, each image again on its own (a batch too large for the
   * engine's memory may fit one at a time), and an image that still fails is reported (stage 'predict', its
   * path and the engine's reason) and left out: one image never ends the run. Aborts and usage errors
   * (InvalidOptionError) are thrown.
   */
  async function predictOrReport(group: PreparedImage[], ctx: StageContext): Promise<PredictedImage[]> {
    try {
      return await predictGroup(group, ctx.signal);
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
        out.push(...(await predictGroup([p], ctx.signal)));
      } catch (err) {
        if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
        if (err instanceof InvalidOptionError) throw err;
        dropped(p, err, ctx);
      }
    }
    return out;
  }

  /** The runner on one batch; a failure for want of memory becomes OutOfMemoryError with advice. */
  async function run(local: Float32Array, global: Float32Array, shape: RunShape): Promise<RunResult> {
    try {
      return await runner.run(local, global, shape);
    } catch (err) {
      throw outOfMemory(err, shape.batch, shape.width, shape.height) ?? err;
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

  async function predictGroup(group: PreparedImage[], signal: AbortSignal): Promise<PredictedImage[]> {
    const B = group.length;
    const { localWidth: w, localHeight: h } = group[0]!;
    // An image over tile x tile never runs in one pass, in a batch or not.
    const plan = planTiles(w, h, tile, halo);
    if (plan) {
      const out: PredictedImage[] = [];
      for (const p of group) out.push(await predictTiled(p, plan, signal));
      return out;
    }
    const px = w * h;
    const local = new Float32Array(B * px);
    // A style reference is one global input for the whole batch.
    const global = style ?? new Float32Array(B * S * S);
    group.forEach((p, i) => {
      if (p.localWidth !== w || p.localHeight !== h || p.local.length !== px) {
        throw new InvalidOptionError(`Expected one processing shape per batch (${w}x${h}) but received ${p.localWidth}x${p.localHeight} for ${p.key}`);
      }
      local.set(p.local, i * px);
      if (!style) global.set(globalOf(p), i * S * S);
    });
    const r = await run(local, global, { batch: B, height: h, width: w, sharedGlobal: style !== undefined });
    return withAb(group, r.ab, r.abHeight, r.abWidth);
  }

  /**
   * One image too large for one pass: its local input in overlapping windows (tiles.ts), as many per engine
   * call as `batchPixels` allows, each with the image's one global input (shared by the windows, so a runner
   * computes its features once); the kept parts of their ab make the image's, exactly as one pass would.
   */
  async function predictTiled(p: PreparedImage, plan: TilePlan, signal: AbortSignal): Promise<PredictedImage> {
    const { localWidth: w, localHeight: h } = p;
    const { tileWidth: tw, tileHeight: th } = plan;
    if (p.local.length !== w * h) throw new InvalidOptionError(`Expected a local input of ${w}x${h} for ${p.key} but received ${p.local.length} values`);
    const global = globalOf(p);
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
      const r = await run(n === per ? local : local.subarray(0, n * tw * th), global, { batch: n, height: th, width: tw, sharedGlobal: true });
      if (r.abWidth !== tw / 2 || r.abHeight !== th / 2) throw new Error(`Expected ab of ${tw / 2}x${th / 2} per tile but the engine returned ${r.abWidth}x${r.abHeight}`);
      chunk.forEach((t, j) => pasteKept(r.ab, j * r.abWidth * r.abHeight * 2, tw, t, ab, abW));
    }
    return withAb([p], ab, h / 2, abW)[0]!;
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
