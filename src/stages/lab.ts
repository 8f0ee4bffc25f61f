/**
 * The `lab` stage: DecodedImage (sRGB bytes) -> LabSample (L / 100 and (ab + 128) / 255, see src/color/lab.ts),
 * with the paper's colourfulness filter applied on the way (src/stages/filter.ts).
 *
 * Where the work runs (`pool`):
 * - 'piscina' (default): a pool of `threads` worker threads (lab-worker.ts). The RGB buffer is transferred
 *   in and the two planes are transferred back (Piscina.move), never copied. At most `threads * 2` tasks are
 *   in flight, so a slow consumer holds back decode instead of filling a queue; results keep input order.
 * - 'inline': on the calling thread (tests, tiny runs, or a process that has nothing else to do).
 * The training loader does not use this stage: its decode processes let libvips convert (decodeTrainLab),
 * which costs less CPU per image than this stage's JS conversion, inline or pooled (bench/lab.ts).
 *
 * Filtered images are dropped and counted with recordFiltered (not reported as bad input: see filter.ts).
 *
 * Errors that surface at the consumer's await: AbortError when the pipeline aborts; a worker failure (which
 * would be a bug, not bad input) as itself. InvalidOptionError is thrown by the factory.
 *
 * Cleanup: on an early stop, an error or an abort, no new task starts, the (at most threads * 2) tasks in
 * flight are awaited, and the pool is destroyed before the stage's iterator returns: no thread outlives it.
 */
import os from 'node:os';
import { Piscina } from 'piscina';
import type { Stage, StageContext } from '../core/pipeline.js';
import type { DecodedImage, LabSample } from '../types.js';
import type { FilterConfig } from '../config.js';
import { object, oneOf, positiveInt } from '../core/validate.js';
import { splitLab } from '../color/lab.js';
import { mapOrdered } from '../core/map-concurrent.js';
import { colourFilter, filterReason, recordFiltered, type ColourFilter } from './filter.js';
import type { LabWorkerResult } from './lab-worker.js';

export interface LabOptions {
  /** The colourfulness thresholds (config.filter; minSide is decode's); false turns the filter off. */
  filter?: Partial<FilterConfig> | false;
  /** 'piscina' (default) or 'inline'. */
  pool?: 'piscina' | 'inline';
  /** Worker threads of the pool (default os.availableParallelism()). */
  threads?: number;
}

/** The worker file, next to this one in src/ or dist/src/. */
const WORKER = new URL('./lab-worker.js', import.meta.url).href;

/**
 * The lab stage.
 * @throws InvalidOptionError at once for a wrong option.
 * @example pipeline(shards({ urls }), decode({ mode: 'train' }), lab({ filter: config.filter }), batch({ size: 32 }))
 */
export function lab(options: LabOptions = {}): Stage<DecodedImage, LabSample> {
  object(options, 'options');
  const thresholds = colourFilter(options.filter === false ? false : options.filter);
  const mode = oneOf(options.pool ?? 'piscina', 'options.pool', ['piscina', 'inline'] as const);
  const threads = positiveInt(options.threads ?? os.availableParallelism(), 'options.threads');
  return mode === 'inline' ? inlineStage(thresholds) : poolStage(thresholds, threads);
}

function toSample(img: DecodedImage, L: Float32Array, ab: Float32Array): LabSample {
  const s: LabSample = { key: img.key, width: img.width, height: img.height, L, ab };
  if (img.cls !== undefined) s.cls = img.cls;
  if (img.position !== undefined) s.position = img.position;
  return s;
}

function inlineStage(f: ColourFilter): Stage<DecodedImage, LabSample> {
  return async function* labInline(source: AsyncIterable<DecodedImage>, ctx: StageContext): AsyncGenerator<LabSample> {
    for await (const img of source) {
      const { L, ab, stats } = splitLab(img.rgb);
      const reason = filterReason(stats, f);
      if (reason === null) yield toSample(img, L, ab);
      else recordFiltered(ctx.reporter, img.key, reason);
    }
  };
}

function poolStage(f: ColourFilter, threads: number): Stage<DecodedImage, LabSample> {
  return async function* labPool(source: AsyncIterable<DecodedImage>, ctx: StageContext): AsyncGenerator<LabSample> {
    const pool = new Piscina({
      filename: WORKER,
      minThreads: threads,
      maxThreads: threads,
      // Every task is pulled by mapOrdered only when there is room: the queue never exceeds threads * 2.
      maxQueue: threads * 2,
      workerData: { filter: f },
    });
    // Tasks are not given an abort signal: piscina ends a worker to abort its task, and an abortable task can
    // share its worker with others (piscina issue #934), whose late replies then throw "Unexpected message from
    // Worker" outside any await. A task is one image's Lab conversion (milliseconds) and at most threads * 2 are
    // in flight, so on an early stop mapOrdered just waits for them before the pool is destroyed.
    try {
      const results = mapOrdered(
        source,
        async (img: DecodedImage) => {
          // decode hands over a fresh, whole buffer; anything else is copied once so the transfer cannot
          // detach memory that someone else still uses.
          const rgb = img.rgb.byteOffset === 0 && img.rgb.byteLength === img.rgb.buffer.byteLength ? img.rgb : img.rgb.slice();
          const r: LabWorkerResult = await pool.run(Piscina.move(rgb));
          return { img, r };
        },
        { concurrency: threads * 2, signal: ctx.signal },
      );
      for await (const { img, r } of results) {
        if (r.reason === null) yield toSample(img, r.L, r.ab);
        else recordFiltered(ctx.reporter, img.key, r.reason);
      }
    } finally {
      await pool.destroy();
    }
  };
}
