/**
 * The stage type and its composition. A stage is a function from an async iterable to an async iterable,
 * called with the pipeline's context: `stage(source, { signal, reporter })` (Node's stream operators' shape).
 *
 * Ownership: a pipeline owns one AbortController. It aborts it when the consumer stops early (`break`),
 * when any stage throws, when the caller's own signal aborts, or when the stream ends. Stages release what
 * they hold (tar handles, pool tasks, child processes, timers) in `finally` and on `signal`'s abort event,
 * so nothing is left running once the pipeline's iterator has returned.
 *
 * Errors surface at the consumer's next `await` on the pipeline's iterator; bad inputs never do, they go to
 * `ctx.reporter` (see errors.ts).
 */
import { AbortError, Reporter } from './errors.js';
import { abortErrorOf } from './abort.js';

export interface StageContext {
  /** Aborted when the pipeline ends for any reason. */
  readonly signal: AbortSignal;
  /** Where stages report bad inputs (counted, one warning line each; fatal with onError 'fail'). */
  readonly reporter: Reporter;
}

/** A stage: `(source, ctx) => AsyncIterable`. Factories take an options object and return one. */
export type Stage<I, O> = (source: AsyncIterable<I>, ctx: StageContext) => AsyncIterable<O>;

/**
 * A stage that hands on the items it receives, of whatever type (prefetch, shuffle), as a generic function: in
 * `pipeline(source, a, b, prefetch(4))` TypeScript then infers its item type from the stage before it, where a
 * `Stage<T, T>` made by a call without a type argument would be a `Stage<unknown, unknown>`. It is assignable to
 * any `Stage<T, T>` whose T satisfies `Bound`.
 */
export type PassThroughStage<Bound = unknown> = <T extends Bound>(source: AsyncIterable<T>, ctx: StageContext) => AsyncIterable<T>;

/** The head of a pipeline: a function of the context, or any (async) iterable. */
export type Source<O> = ((ctx: StageContext) => AsyncIterable<O>) | AsyncIterable<O> | Iterable<O>;

export interface PipelineOptions {
  /** The caller's signal: aborting it aborts the pipeline. */
  signal?: AbortSignal;
  /** Where bad inputs go; a new skip-and-warn reporter by default. */
  reporter?: Reporter;
}

/** Composes stages left to right into one stage. A wrongly typed chain does not compile. */
export function compose<A, B>(s1: Stage<A, B>): Stage<A, B>;
export function compose<A, B, C>(s1: Stage<A, B>, s2: Stage<B, C>): Stage<A, C>;
export function compose<A, B, C, D>(s1: Stage<A, B>, s2: Stage<B, C>, s3: Stage<C, D>): Stage<A, D>;
export function compose<A, B, C, D, E>(s1: Stage<A, B>, s2: Stage<B, C>, s3: Stage<C, D>, s4: Stage<D, E>): Stage<A, E>;
export function compose<A, B, C, D, E, F>(
  s1: Stage<A, B>, s2: Stage<B, C>, s3: Stage<C, D>, s4: Stage<D, E>, s5: Stage<E, F>,
): Stage<A, F>;
export function compose<A, B, C, D, E, F, G>(
  s1: Stage<A, B>, s2: Stage<B, C>, s3: Stage<C, D>, s4: Stage<D, E>, s5: Stage<E, F>, s6: Stage<F, G>,
): Stage<A, G>;
export function compose<A, B, C, D, E, F, G, H>(
  s1: Stage<A, B>, s2: Stage<B, C>, s3: Stage<C, D>, s4: Stage<D, E>, s5: Stage<E, F>, s6: Stage<F, G>, s7: Stage<G, H>,
): Stage<A, H>;
export function compose(...stages: Stage<any, any>[]): Stage<any, any> {
  return composeAll(stages);
}

/** Untyped composition (a public `Stage<any, any>[]` overload would let any mistyped chain compile). */
function composeAll(stages: Stage<any, any>[]): Stage<any, any> {
  return (source, ctx) => stages.reduce<AsyncIterable<any>>((it, stage) => stage(it, ctx), source);
}

/**
 * A running pipeline: iterate it to pull results. `abort()` stops every stage; `return()` (a `break` in
 * `for await`) does the same. `ctx.reporter` holds the bad inputs seen so far.
 */
export interface Pipeline<O> extends AsyncIterable<O> {
  readonly ctx: StageContext;
  abort(reason?: unknown): void;
}

/** Builds a pipeline from a source and stages. Nothing runs until it is iterated. */
export function pipeline<A>(source: Source<A>, options?: PipelineOptions): Pipeline<A>;
export function pipeline<A, B>(source: Source<A>, s1: Stage<A, B>, options?: PipelineOptions): Pipeline<B>;
export function pipeline<A, B, C>(source: Source<A>, s1: Stage<A, B>, s2: Stage<B, C>, options?: PipelineOptions): Pipeline<C>;
export function pipeline<A, B, C, D>(
  source: Source<A>, s1: Stage<A, B>, s2: Stage<B, C>, s3: Stage<C, D>, options?: PipelineOptions,
): Pipeline<D>;
export function pipeline<A, B, C, D, E>(
  source: Source<A>, s1: Stage<A, B>, s2: Stage<B, C>, s3: Stage<C, D>, s4: Stage<D, E>, options?: PipelineOptions,
): Pipeline<E>;
export function pipeline<A, B, C, D, E, F>(
  source: Source<A>, s1: Stage<A, B>, s2: Stage<B, C>, s3: Stage<C, D>, s4: Stage<D, E>, s5: Stage<E, F>,
  options?: PipelineOptions,
): Pipeline<F>;
export function pipeline<A, B, C, D, E, F, G>(
  source: Source<A>, s1: Stage<A, B>, s2: Stage<B, C>, s3: Stage<C, D>, s4: Stage<D, E>, s5: Stage<E, F>,
  s6: Stage<F, G>, options?: PipelineOptions,
): Pipeline<G>;
export function pipeline<A, B, C, D, E, F, G, H>(
  source: Source<A>, s1: Stage<A, B>, s2: Stage<B, C>, s3: Stage<C, D>, s4: Stage<D, E>, s5: Stage<E, F>,
  s6: Stage<F, G>, s7: Stage<G, H>, options?: PipelineOptions,
): Pipeline<H>;
export function pipeline<A, B, C, D, E, F, G, H, I>(
  source: Source<A>, s1: Stage<A, B>, s2: Stage<B, C>, s3: Stage<C, D>, s4: Stage<D, E>, s5: Stage<E, F>,
  s6: Stage<F, G>, s7: Stage<G, H>, s8: Stage<H, I>, options?: PipelineOptions,
): Pipeline<I>;
export function pipeline(source: Source<any>, ...rest: any[]): Pipeline<any> {
  let options: PipelineOptions = {};
  if (rest.length > 0 && typeof rest[rest.length - 1] !== 'function') options = rest.pop() ?? {};
  const stages = rest as Stage<any, any>[];
  const controller = new AbortController();
  const ctx: StageContext = { signal: controller.signal, reporter: options.reporter ?? new Reporter() };
  const abort = (reason?: unknown) => {
    if (!controller.signal.aborted) controller.abort(reason ?? new AbortError());
  };
  let started = false;
  return {
    ctx,
    abort,
    [Symbol.asyncIterator](): AsyncIterator<any> {
      if (started) throw new Error('A pipeline can be iterated once');
      started = true;
      const outer = options.signal;
      const onOuterAbort = () => abort(outer?.reason);
      if (outer?.aborted) onOuterAbort();
      else outer?.addEventListener('abort', onOuterAbort, { once: true });
      const head = toAsyncIterable(source, ctx);
      const it = composeAll(stages)(head, ctx)[Symbol.asyncIterator]();
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        outer?.removeEventListener('abort', onOuterAbort);
        abort();
      };
      return {
        async next() {
          if (controller.signal.aborted && !done) {
            // An outside abort: close the chain, then surface the reason at the consumer's await.
            const err = abortErrorOf(controller.signal);
            await it.return?.().catch(() => undefined);
            finish();
            throw err;
          }
          try {
            const r = await it.next();
            if (r.done) finish();
            return r;
          } catch (err) {
            finish();
            await it.return?.().catch(() => undefined);
            throw err;
          }
        },
        async return(value?: any) {
          // Abort first so background work (prefetch, pools, child processes) stops at once, then let
          // each generator run its finally.
          finish();
          await it.return?.(value);
          return { done: true, value };
        },
      };
    },
  };
}

/** Drains a pipeline (or any async iterable), returning how many items came out. */
export async function drain(source: AsyncIterable<unknown>): Promise<number> {
  let n = 0;
  for await (const _ of source) n++;
  return n;
}

/** Collects everything into an array (tests, small inputs). */
export async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of source) out.push(x);
  return out;
}

function toAsyncIterable<O>(source: Source<O>, ctx: StageContext): AsyncIterable<O> {
  if (typeof source === 'function') return source(ctx);
  if (Symbol.asyncIterator in (source as object)) return source as AsyncIterable<O>;
  const iterable = source as Iterable<O>;
  return (async function* () {
    yield* iterable;
  })();
}
