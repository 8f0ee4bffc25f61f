/**
 * `admit({ budget, costOf })`: bounds what the stages after it hold by bytes. Each item waits for a lease of
 * its estimated bytes (core/budget.ts) before it is passed on, with the lease attached; whoever finishes the
 * item (writes it, drops it as bad, fails on it) calls `item.lease.release()`. So a run of large images keeps
 * a few in flight and a run of small ones many, within the same memory; one image larger than the budget
 * still goes, alone.
 *
 * Errors: `costOf`'s rejection is the item's: such an item gets a lease of 0 bytes (the stages after it report
 * what is wrong with it). AbortError (the signal's reason) while waiting when the pipeline aborts.
 */
import type { Stage, StageContext } from '../core/pipeline.js';
import type { ByteBudget, Lease } from '../core/budget.js';
import { object } from '../core/validate.js';
import { InvalidOptionError } from '../core/errors.js';

/** An item with its lease of the budget. */
export type Leased<T> = T & { lease: Lease };

export interface AdmitOptions<T> {
  budget: ByteBudget;
  /** The bytes the item will take at most while in flight (an estimate that errs high). */
  costOf: (item: T) => number | Promise<number>;
}

/**
 * @throws InvalidOptionError at once for a missing budget or costOf.
 * @example pipeline(files, admit({ budget: new ByteBudget(2 ** 30), costOf: (s) => s.image.length * 10 }), decode(), ...)
 */
export function admit<T extends object>(options: AdmitOptions<T>): Stage<T, Leased<T>> {
  object(options, 'options');
  const { budget, costOf } = options;
  if (typeof budget?.acquire !== 'function') throw new InvalidOptionError('Expected options.budget to be a ByteBudget');
  if (typeof costOf !== 'function') throw new InvalidOptionError('Expected options.costOf to be a function');
  return async function* admitStage(source: AsyncIterable<T>, ctx: StageContext): AsyncGenerator<Leased<T>> {
    for await (const item of source) {
      let cost = 0;
      try {
        cost = Math.max(0, Number(await costOf(item)) || 0);
      } catch {
        cost = 0;
      }
      const lease = await budget.acquire(cost, ctx.signal);
      yield { ...item, lease };
    }
  };
}
