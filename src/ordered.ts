/**
 * A bounded, order-keeping concurrent map over an async iterable: the engine of the decode and lab stages
 * (Node's `stream.map(fn, { concurrency })` shape, which keeps order with a FIFO of promises).
 *
 * At most `concurrency` calls of `fn` are in flight; results come out in input order. The source is pulled
 * one item at a time (never two `next()` calls at once), only while there is room.
 *
 * Errors surface at the consumer's `await` in input order: when `fn` rejects for item k, items before k are
 * still yielded first, then the error is thrown; nothing after k is yielded. On an early stop (`break`), an
 * error, or an abort, the source iterator is returned and the calls still in flight are awaited (their
 * results and errors dropped), so no work of this map outlives it.
 */
import { AbortError } from './errors.js';

export interface MapOrderedOptions {
  /** Calls of fn in flight at most (>= 1). */
  concurrency: number;
  /** Stops pulling and throws AbortError when aborted. */
  signal?: AbortSignal;
}

interface Slot<O> {
  settled: boolean;
  ok: boolean;
  value?: O;
  error?: unknown;
  promise: Promise<void>;
}

export async function* mapOrdered<I, O>(
  source: AsyncIterable<I> | Iterable<I>,
  fn: (item: I) => Promise<O> | O,
  options: MapOrderedOptions,
): AsyncGenerator<O> {
  const { concurrency, signal } = options;
  const it: AsyncIterator<I> | Iterator<I> =
    Symbol.asyncIterator in source ? (source as AsyncIterable<I>)[Symbol.asyncIterator]() : (source as Iterable<I>)[Symbol.iterator]();
  const queue: Slot<O>[] = [];
  let exhausted = false;
  const start = (item: I): Slot<O> => {
    const slot = { settled: false, ok: false } as Slot<O>;
    slot.promise = (async () => {
      try {
        slot.value = await fn(item);
        slot.ok = true;
      } catch (err) {
        slot.error = err;
      } finally {
        slot.settled = true;
      }
    })();
    return slot;
  };
  try {
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      const head = queue[0];
      if (head !== undefined && head.settled) {
        queue.shift();
        if (!head.ok) throw head.error;
        yield head.value as O;
        continue;
      }
      if (!exhausted && queue.length < concurrency) {
        const r = await it.next();
        if (r.done) exhausted = true;
        else queue.push(start(r.value));
        continue;
      }
      if (head === undefined) return;
      await head.promise;
    }
  } finally {
    if (!exhausted) await it.return?.(undefined);
    await Promise.all(queue.map((s) => s.promise));
  }
}

function abortError(signal: AbortSignal): Error {
  const r = signal.reason;
  return r instanceof Error ? r : new AbortError(r === undefined ? undefined : String(r));
}
