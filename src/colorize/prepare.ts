/**
 * The `prepare` stage: image file Samples -> PreparedImages, the network's two inputs and what the write stage
 * needs to rebuild the image at its original size (the per-image work is image.ts's prepareImage).
 *
 * Where the work runs (`pool`): a piscina pool (pool.ts, worker.ts; the default, threads = cores) so that the
 * main thread stays free to drive the engine, or 'inline' (tests). Planes come back from the workers by
 * transfer. At most `concurrency` images are in flight; results keep input order.
 *
 * Bad input (empty, not an image, corrupt, truncated, over the pixel limit) is reported to ctx.reporter as
 * stage 'decode' with the file's path and the reason, and the stream goes on. An animated or multi-page input
 * is colorized by its first frame, and a notice says so. A sample's `lease` (the admit
 * stage's share of the memory budget) passes to its prepared image, or is released when the sample is bad. Errors that surface at the
 * consumer's await: AbortError when the pipeline aborts; BadInputError from the reporter with onError 'fail';
 * a worker crash (a bug, not bad input). InvalidOptionError is thrown by the factory.
 *
 * Cleanup: on an early stop no new task starts and the source is returned; tasks already handed to the
 * workers finish (they are short; piscina cannot cancel one running beside others in a worker without
 * losing track of that worker) and their results are dropped; a pool the stage created is destroyed before
 * its iterator returns.
 */
import type { Piscina } from 'piscina';
import type { Stage, StageContext } from '../core/pipeline.js';
import type { Sample } from '../types.js';
import { BadInputError } from '../core/errors.js';
import { parallelMap } from '../stages/parallel-map.js';
import {
  prepareImage, prepareSettings, type PreparedImage, type PrepareSettingsOptions, type PrepareTask, type PrepareTaskResult,
} from './image.js';
import { createColorizePool, poolSettings } from './pool.js';
import type { Lease } from '../core/budget.js';

/** The prepared image with the sample's lease of the memory budget (it stays with the image to the write). */
function leased(image: PreparedImage, lease: Lease | undefined): PreparedImage {
  if (lease) image.lease = lease;
  return image;
}

export interface PrepareOptions extends PrepareSettingsOptions {
  /** 'inline', a piscina pool running worker.ts (shared with write), or undefined: a pool of `threads`. */
  pool?: Piscina | 'inline';
  /** Threads of the pool the stage creates (default os.availableParallelism()). */
  threads?: number;
  /** Images in flight (default threads + 1 with a pool, 1 inline). */
  concurrency?: number;
  /** Called with the time each image took to decode and prepare (ms, in its worker). */
  onImage?: (ms: number) => void;
}

/**
 * The prepare stage. See the module comment.
 * @throws InvalidOptionError at once for a wrong option.
 * @example pipeline(files({ input: 'in/' }), prepare({ resolution: 'full' }), ...)
 */
export function prepare(options: PrepareOptions = {}): Stage<Sample & { index?: number; lease?: Lease }, PreparedImage> {
  const settings = prepareSettings(options);
  const { given, threads, concurrency } = poolSettings(options);
  return async function* prepareStage(source, ctx: StageContext): AsyncGenerator<PreparedImage> {
    const pool = given ?? createColorizePool(threads);
    const one = async (sample: Sample & { index?: number; lease?: Lease }): Promise<PreparedImage | BadInputError> => {
      const t0 = performance.now();
      try {
        if (pool === 'inline') {
          const image = await prepareImage(sample, settings);
          options.onImage?.(performance.now() - t0);
          return leased(image, sample.lease);
        }
        const task: PrepareTask = {
          sample: { key: sample.key, image: sample.image, imageExt: sample.imageExt, url: sample.url, relPath: sample.relPath, index: sample.index },
          settings,
        };
        const r = (await pool.run(task, { name: 'prepareTask' })) as PrepareTaskResult;
        options.onImage?.(r.ms);
        if (r.bad) {
          sample.lease?.release();
          return new BadInputError(r.bad.key, r.bad.reason);
        }
        return leased(r.image!, sample.lease);
      } catch (err) {
        sample.lease?.release();
        if (err instanceof BadInputError) return err;
        throw err;
      }
    };
    try {
      const results = parallelMap(one, { concurrency })(source, ctx);
      for await (const r of results) {
        if (r instanceof BadInputError) ctx.reporter.report('decode', r.key, r.reason, r.cause);
        else {
          if (r.note !== undefined) ctx.reporter.notice('decode', r.url ?? r.key, r.note);
          yield r;
        }
      }
    } finally {
      if (given === undefined && pool !== 'inline') await pool.destroy();
    }
  };
}
