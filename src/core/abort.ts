/**
 * Abort helpers shared by every stage: an abort always surfaces as the signal's own reason (an Error passed to
 * `abort(reason)`, such as the one that failed another stage), or an AbortError that carries it as text, so
 * the consumer sees why the pipeline stopped and not a bare "aborted".
 */
import { AbortError } from './errors.js';

/**
 * The error an aborted signal should surface as: its reason when that is an Error (the error that failed
 * another stage, say), else an AbortError. The platform's default reason (a DOMException named AbortError,
 * from `abort()` with no argument) becomes colorpipe's AbortError, so callers test one class.
 */
export function abortErrorOf(signal: AbortSignal): Error {
  const r = signal.reason;
  if (r instanceof AbortError) return r;
  if (r instanceof Error && r.name === 'AbortError') return new AbortError(r.message, { cause: r });
  if (r instanceof Error) return r;
  return new AbortError(r === undefined ? undefined : String(r));
}

/**
 * Whether `err` is an abort rather than a failure: colorpipe's AbortError, the platform's (a DOMException named
 * AbortError, code ABORT_ERR in Node) or piscina's (named AbortError), or an error caused by one (its `cause`
 * chain, up to 8 levels: a stage that wraps the abort it met). With `signal`, also the reason that signal was
 * aborted with, whatever it is (`abort(reason)` with the error that failed another stage): the abort's own
 * error, surfacing where the abort was felt.
 */
export function isAbortError(err: unknown, signal?: AbortSignal): boolean {
  if (signal?.aborted && err === signal.reason) return true;
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e.name === 'AbortError' || (e as { code?: unknown }).code === 'ABORT_ERR') return true;
  }
  return false;
}

/** Throws the signal's reason (see abortErrorOf) if it is aborted (for loops inside stages). */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortErrorOf(signal);
}

/**
 * Calls `fn` once when the signal aborts (at once if it already has). Returns a dispose function that removes
 * the listener: call it in `finally` so a long-lived signal does not collect listeners.
 */
export function onAbort(signal: AbortSignal | undefined, fn: (reason: unknown) => void): () => void {
  if (!signal) return () => undefined;
  if (signal.aborted) {
    fn(signal.reason);
    return () => undefined;
  }
  const listener = () => fn(signal.reason);
  signal.addEventListener('abort', listener, { once: true });
  return () => signal.removeEventListener('abort', listener);
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts; the timer never outlives it. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortErrorOf(signal));
    let dispose = () => undefined as void;
    const t = setTimeout(() => {
      dispose();
      resolve();
    }, ms);
    dispose = onAbort(signal, () => {
      clearTimeout(t);
      reject(abortErrorOf(signal!));
    });
  });
}
