/**
 * `prefetch(n)`: pulls up to n items ahead of the consumer in the background, so the stages before it work
 * while the consumer (the engine) computes. The model is streaming-iterables' `buffer`: at most n items wait
 * in the queue and at most one `next()` on the source is outstanding (a source is never called concurrently).
 *
 * Errors: a source error surfaces at the consumer's next `next()`, ahead of any items still queued (they are
 * dropped: the run is failing anyway). An abort of ctx.signal surfaces as AbortError at the consumer's next
 * `next()`, including one already waiting.
 *
 * Early stop: when the consumer returns (a `break`), pulling stops, queued items are dropped, and the source is
 * returned (its `finally` runs); a `next()` already in flight on the source is let finish first, which is
 * quick because the pipeline aborts ctx.signal before returning its stages.
 */
import type { PassThroughStage, Stage, StageContext } from '../core/pipeline.js';
import { abortErrorOf } from '../core/abort.js';
import { positiveInt } from '../core/validate.js';
import { pullAhead } from '../core/pull-ahead.js';

export interface PrefetchOptions {
  /** Items pulled ahead of the consumer (at least 1). */
  size: number;
}

/**
 * @param options the number of items to pull ahead, or `{ size }`.
 * @returns a stage generic in its item type (pipeline() infers it from the stage before), or with a type
 *   argument (`prefetch<LabBatch>(4)`) a `Stage` of that type.
 * @throws InvalidOptionError at once unless the size is a positive integer.
 * @example pipeline(source, batch({ size: 32 }), prefetch(4))
 */
export function prefetch(options: number | PrefetchOptions): PassThroughStage;
export function prefetch<T>(options: number | PrefetchOptions): Stage<T, T>;
export function prefetch(options: number | PrefetchOptions): PassThroughStage {
  const size = positiveInt(typeof options === 'number' ? options : options?.size, 'options.size');
  return (source, ctx) => prefetchRun(source, ctx, size);
}

async function* prefetchRun<T>(source: AsyncIterable<T>, ctx: StageContext, size: number): AsyncGenerator<T> {
  const queue: T[] = [];
  const puller = pullAhead(
    source,
    ctx.signal,
    () => queue.length < size,
    (x) => queue.push(x),
  );
  try {
    for (;;) {
      if (puller.failed) throw puller.error;
      if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
      if (queue.length > 0) {
        const x = queue.shift()!;
        puller.roomMade();
        yield x;
        continue;
      }
      if (puller.ended) return;
      await puller.wait();
    }
  } finally {
    queue.length = 0;
    await puller.close();
  }
}
