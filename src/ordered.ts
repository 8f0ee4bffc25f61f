/**
 * A bounded, order-keeping concurrent map over an async iterable, for code that is not a pipeline stage (the
 * decode and lab stages, the loader): parallelMap's engine (src/stages/parallel-map.ts, Node's
 * `stream.map(fn, { concurrency })` shape, which keeps order with a FIFO of promises) in ordered mode.
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
import { InvalidOptionError } from './errors.js';
import { mapConcurrent } from './stages/parallel-map.js';

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
  const { concurrency, signal } = options;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new InvalidOptionError(`Expected positive integer for options.concurrency but received ${String(concurrency)}`);
  }
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
