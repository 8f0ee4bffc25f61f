/**
 * `parallelMap(fn, { concurrency, ordered })`: calls an async function on up to `concurrency` items at once.
 * Ordered by default, with a FIFO of started calls like Node's `Readable.map`: results come out in input order,
 * and a slow item holds back the ones after it (they keep running, up to the bound). `ordered: false` emits
 * results as they finish.
 *
 * Bound: calls started but not yet taken by the consumer (running, or finished and waiting for their turn)
 * never exceed `concurrency`. The source is pulled one item at a time, never concurrently.
 *
 * Errors: a rejection of `fn` surfaces at the consumer's `next()` when that item's turn comes (ordered) or as
 * soon as it settles (unordered); a source error after the results of the items already started. Bad input
 * should be reported by `fn` to ctx.reporter (return a value the next stage skips); an error ends the run.
 *
 * Early stop (a `break`, an error, an abort): no new call starts and the source is returned. Calls already
 * running are awaited, their results dropped, before the stage's `finally` completes, so nothing is left
 * running once the pipeline has returned; `fn` receives ctx and should stop early when ctx.signal aborts (the
 * pipeline aborts it before returning its stages).
 */
import type { Stage, StageContext } from '../core/pipeline.js';
import { mapConcurrent } from '../core/map-concurrent.js';
import { bool, fn as checkFn, object, positiveInt } from '../core/validate.js';

export interface ParallelMapOptions {
  /** Calls in flight at most (at least 1). */
  concurrency: number;
  /** Keep input order (default true). */
  ordered?: boolean;
}

/**
 * @throws InvalidOptionError at once for a non-function fn, a bad concurrency or ordered.
 * @example pipeline(files({ input: 'in/' }), parallelMap((s, ctx) => decodeOne(s, ctx), { concurrency: 4 }))
 */
export function parallelMap<I, O>(
  fn: (item: I, ctx: StageContext) => Promise<O> | O,
  options: ParallelMapOptions,
): Stage<I, O> {
  checkFn(fn, 'fn');
  object(options, 'options');
  const concurrency = positiveInt(options.concurrency, 'options.concurrency');
  const ordered = options.ordered === undefined ? true : bool(options.ordered, 'options.ordered');
  return (source, ctx) => mapConcurrent(source, (item) => fn(item, ctx), { concurrency, ordered, signal: ctx.signal });
}
