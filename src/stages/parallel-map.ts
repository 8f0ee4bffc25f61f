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
import type { Stage, StageContext } from '../pipeline.js';
import { AbortError, InvalidOptionError } from '../errors.js';
import { pullAhead } from '../pull-ahead.js';

export interface ParallelMapOptions {
  /** Calls in flight at most (at least 1). */
  concurrency: number;
  /** Keep input order (default true). */
  ordered?: boolean;
}

interface Slot<O> {
  settled: boolean;
  ok: boolean;
  value?: O;
  error?: unknown;
  promise: Promise<void>;
}

/**
 * @throws InvalidOptionError at once for a non-function fn, a bad concurrency or ordered.
 * @example pipeline(files({ input: 'in/' }), parallelMap((s, ctx) => decodeOne(s, ctx), { concurrency: 4 }))
 */
export function parallelMap<I, O>(
  fn: (item: I, ctx: StageContext) => Promise<O> | O,
  options: ParallelMapOptions,
): Stage<I, O> {
  if (typeof fn !== 'function') {
    throw new InvalidOptionError(`Expected function for fn but received ${typeof fn}`);
  }
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError(`Expected object for options but received ${String(options)}`);
  }
  const { concurrency } = options;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new InvalidOptionError(`Expected positive integer for options.concurrency but received ${String(concurrency)}`);
  }
  const ordered = options.ordered ?? true;
  if (typeof ordered !== 'boolean') {
    throw new InvalidOptionError(`Expected boolean for options.ordered but received ${String(ordered)}`);
  }
  return (source, ctx) => mapConcurrent(source, (item) => fn(item, ctx), { concurrency, ordered, signal: ctx.signal });
}

/** What `mapConcurrent` needs, already validated (parallelMap and mapOrdered validate). */
export interface MapConcurrentOptions {
  concurrency: number;
  ordered: boolean;
  signal: AbortSignal;
}

/**
 * The engine of parallelMap and mapOrdered (src/ordered.ts), with the bound, order, error and early-stop
 * behaviour described at the top of this file.
 */
export async function* mapConcurrent<I, O>(
  source: AsyncIterable<I>,
  fn: (item: I) => Promise<O> | O,
  options: MapConcurrentOptions,
): AsyncGenerator<O> {
  const { concurrency, ordered, signal } = options;
  const slots: Slot<O>[] = [];
  // Unordered mode takes results in the order they settled.
  const settledOrder: Slot<O>[] = [];
  const start = (item: I) => {
    const slot = { settled: false, ok: false } as Slot<O>;
    slot.promise = (async () => {
      try {
        slot.value = await fn(item);
        slot.ok = true;
      } catch (err) {
        slot.error = err;
      } finally {
        slot.settled = true;
        if (!ordered) settledOrder.push(slot);
        puller.wake();
      }
    })();
    slots.push(slot);
  };
  const puller = pullAhead(source, signal, () => slots.length < concurrency, start);

  try {
    for (;;) {
      if (signal.aborted) throw abortErrorOf(signal);
      const i = ordered ? (slots[0]?.settled ? 0 : -1) : settledOrder.length > 0 ? slots.indexOf(settledOrder.shift()!) : -1;
      if (i >= 0) {
        const slot = slots.splice(i, 1)[0]!;
        puller.roomMade();
        if (!slot.ok) throw slot.error;
        yield slot.value as O;
        continue;
      }
      if (puller.ended && slots.length === 0) {
        if (puller.failed) throw puller.error;
        return;
      }
      await puller.wait();
    }
  } finally {
    await puller.close();
    await Promise.all(slots.map((s) => s.promise));
    slots.length = 0;
  }
}

function abortErrorOf(signal: AbortSignal): Error {
  const r = signal.reason;
  return r instanceof Error ? r : new AbortError(r === undefined ? undefined : String(r));
}
