/**
 * A bounded, order-keeping concurrent map over an async iterable, for code that is not a pipeline stage (the
 * decode and lab stages, the loader): the engine of the parallelMap stage
 * (src/stages/parallel-map.ts; Node's `stream.map(fn, { concurrency })` shape, which keeps order with a FIFO of
 * promises), here with its ordered mode for code outside a pipeline.
 *
 * At most `concurrency` calls of `fn` are in flight or waiting to be taken; results come out in input order.
 * The source is pulled one item at a time (never two `next()` calls at once), in the background while there
 * is room, so calls keep starting while the consumer works on a result.
 *
 * Errors surface at the consumer's `await` in input order: when `fn` rejects for item k, items before k are
 * still yielded first, then the error is thrown; nothing after k is yielded. A source error surfaces after the
 * results of the items already started. On an early stop (`break`), an error, or an abort, the source iterator
 * is returned and the calls still in flight are awaited (their results and errors dropped), so no work of
 * this map outlives it.
 */
import { abortErrorOf } from './abort.js';
import { pullAhead } from './pull-ahead.js';
import { positiveInt } from './validate.js';

export interface MapOrderedOptions {
  /** Calls of fn in flight at most (>= 1). */
  concurrency: number;
  /** Stops pulling and throws AbortError when aborted. */
  signal?: AbortSignal;
}

/**
 * parallelMap's ordered engine for code outside a pipeline (no ctx; a plain iterable is accepted too).
 * @throws InvalidOptionError at once unless concurrency is a positive integer.
 */
export function mapOrdered<I, O>(
  source: AsyncIterable<I> | Iterable<I>,
  fn: (item: I) => Promise<O> | O,
  options: MapOrderedOptions,
): AsyncGenerator<O> {
  const concurrency = positiveInt(options.concurrency, 'options.concurrency');
  const { signal } = options;
  const items = Symbol.asyncIterator in source ? (source as AsyncIterable<I>) : fromSync(source as Iterable<I>);
  return mapConcurrent(items, fn, { concurrency, ordered: true, signal: signal ?? new AbortController().signal });
}

/** A plain iterable as an async one, its items passed on as they are (an async generator would await them). */
function fromSync<I>(source: Iterable<I>): AsyncIterable<I> {
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.iterator]();
      return {
        next: async () => it.next(),
        return: async () => it.return?.() ?? { done: true, value: undefined },
      };
    },
  };
}

interface Slot<O> {
  settled: boolean;
  ok: boolean;
  value?: O;
  error?: unknown;
  promise: Promise<void>;
}

/** What `mapConcurrent` needs, already validated (parallelMap and mapOrdered validate). */
export interface MapConcurrentOptions {
  concurrency: number;
  ordered: boolean;
  signal: AbortSignal;
}

/**
 * The engine of parallelMap (src/stages/parallel-map.ts) and mapOrdered, with the bound, order, error and
 * early-stop behaviour described at the top of this file.
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
