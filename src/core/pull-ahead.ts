/**
 * The background puller shared by the stages that work ahead of their consumer (prefetch, parallelMap, the
 * eager groupByShape): it pulls the source while the stage says there is room, one `next()` at a time (a
 * source is never called concurrently), and hands each item to the stage. The stage's consumer loop waits
 * on it between items.
 *
 * Errors: a source error is caught and kept (`failed`, `error`); each stage decides when it surfaces. An
 * abort of the signal stops pulling and wakes both sides, so a consumer already waiting sees the abort.
 *
 * Early stop: `close()` stops pulling, returns the source (after the `next()` already in flight: async
 * generators queue the request; quick, since the pipeline aborts ctx.signal before returning its stages) and
 * waits for the puller to exit, so nothing of it outlives the stage.
 */
export interface PullAhead {
  /** The puller has exited: the source is done, failed, or pulling was stopped. */
  readonly ended: boolean;
  /** The source threw; `error` is what it threw. */
  readonly failed: boolean;
  readonly error: unknown;
  /** Resolves at the next `wake()` (an item accepted, the puller exiting, an abort, or the stage's own call). */
  wait(): Promise<void>;
  /** Wakes a consumer waiting in `wait()`. */
  wake(): void;
  /** Room may have been made: wakes the puller if it waits for room. */
  roomMade(): void;
  /** Stops pulling, returns the source and waits for the puller to exit. Call it in the stage's `finally`. */
  close(): Promise<void>;
}

/**
 * Starts pulling `source` at once: while `hasRoom()`, each item goes to `accept`; when there is no room, the
 * puller waits for `roomMade()`.
 */
export function pullAhead<T>(
  source: AsyncIterable<T>,
  signal: AbortSignal,
  hasRoom: () => boolean,
  accept: (item: T) => void,
): PullAhead {
  const it = source[Symbol.asyncIterator]();
  let ended = false;
  let failed = false;
  let error: unknown;
  let stopped = false;
  let wakeConsumer: (() => void) | null = null;
  let wakeProducer: (() => void) | null = null;
  const wake = () => {
    const w = wakeConsumer;
    wakeConsumer = null;
    w?.();
  };
  const roomMade = () => {
    const w = wakeProducer;
    wakeProducer = null;
    w?.();
  };
  const onAbort = () => {
    stopped = true;
    wake();
    roomMade();
  };
  signal.addEventListener('abort', onAbort, { once: true });

  const pump = (async () => {
    try {
      while (!stopped) {
        if (!hasRoom()) {
          await new Promise<void>((resolve) => (wakeProducer = resolve));
          continue;
        }
        const r = await it.next();
        if (r.done || stopped) break;
        accept(r.value);
        wake();
      }
    } catch (err) {
      failed = true;
      error = err;
    } finally {
      ended = true;
      wake();
    }
  })();

  return {
    get ended() {
      return ended;
    },
    get failed() {
      return failed;
    },
    get error() {
      return error;
    },
    wait: () => new Promise<void>((resolve) => (wakeConsumer = resolve)),
    wake,
    roomMade,
    async close() {
      stopped = true;
      signal.removeEventListener('abort', onAbort);
      roomMade();
      await it.return?.();
      await pump;
    },
  };
}
