/**
 * `groupByShape`: items -> arrays of items of one shape (the engine batches only same-sized inputs), for a
 * stream of mixed sizes such as colorize's. Each shape has an open group; a group is emitted when it is full,
 * and the open groups are flushed, oldest first, when the input ends.
 *
 * Bounded memory and latency: a folder of photos in many sizes would otherwise hold one partial group per
 * shape until the end. So a group is also emitted, short, when
 * - the items held in all open groups weigh more than `maxPending` (the oldest group goes first; an item
 *   weighs 1, or `weightOf(item)`: colorize weighs images by their pixels, so memory is what is bounded), or
 * - `maxWait` items have arrived since the group's first one (a rare shape waits that long at most).
 * Every item is emitted exactly once; order across groups follows completion, not input. With `eager`, the
 * stage pulls ahead by itself and never keeps an asking consumer waiting while it holds items (see there).
 *
 * `size` may depend on the shape (`sizeOf`): colorize caps the pixels per batch so that a batch of large
 * images fits the engine's memory.
 *
 * Errors surface at the consumer's await: the source's, and AbortError on abort. InvalidOptionError from the
 * factory.
 */
import type { Stage, StageContext } from '../core/pipeline.js';
import { abortErrorOf } from '../core/abort.js';
import { bool, fn, object, optional, positiveInt, positiveNumber } from '../core/validate.js';
import { pullAhead } from '../core/pull-ahead.js';

export interface GroupByShapeOptions<T> {
  /** Largest group (at least 1). */
  size: number;
  /** The shape of an item, as a string key (e.g. `${w}x${h}`). */
  shapeOf: (item: T) => string;
  /** Largest group for one item's shape (default: `size` for every shape); clamped to [1, size]. */
  sizeOf?: (item: T) => number;
  /** Weight of the items held in open groups at most (default 2 * size). */
  maxPending?: number;
  /** Weight of an item (default 1). */
  weightOf?: (item: T) => number;
  /** Items that may arrive after a group's first before it is flushed short (default 4 * size). */
  maxWait?: number;
  /**
   * Dynamic batching (default false): pull ahead in the background, holding up to maxPending, and when the
   * consumer asks while no group is full, hand it the largest group (the oldest of equals) at once instead of
   * waiting. An engine that would idle takes what is ready; one that is the bottleneck finds full (or the
   * fullest possible) groups waiting. This mode is its own prefetch: put it directly before the consumer.
   */
  eager?: boolean;
}

interface Group<T> {
  key: string;
  items: T[];
  weight: number;
  capacity: number;
  /** Arrival number of its first item. */
  born: number;
}

/**
 * @throws InvalidOptionError at once for a bad option.
 * @example groupByShape({ size: 8, shapeOf: (p) => `${p.localWidth}x${p.localHeight}` })
 */
export function groupByShape<T>(options: GroupByShapeOptions<T>): Stage<T, T[]> {
  object(options, 'options');
  const size = positiveInt(options.size, 'options.size');
  const shapeOf = fn<(item: T) => string>(options.shapeOf, 'options.shapeOf');
  const sizeOf = optional(options.sizeOf, 'options.sizeOf', (v, n) => fn<(item: T) => number>(v, n), undefined);
  const maxPending = optional(options.maxPending, 'options.maxPending', positiveNumber, 2 * size);
  const weightOf = optional(options.weightOf, 'options.weightOf', (v, n) => fn<(item: T) => number>(v, n), () => 1);
  const maxWait = optional(options.maxWait, 'options.maxWait', positiveInt, 4 * size);
  const eager = optional(options.eager, 'options.eager', bool, false);

  /**
   * The open groups (Map insertion order is age order) and the full ones waiting to be taken (eager mode
   * only: without it a full group is yielded at once).
   */
  class Groups {
    readonly open = new Map<string, Group<T>>();
    readonly ready: Group<T>[] = [];
    pending = 0;
    arrived = 0;
    add(item: T): void {
      const key = shapeOf(item);
      let g = this.open.get(key);
      if (!g) {
        const cap = sizeOf ? Math.max(1, Math.min(size, Math.floor(sizeOf(item)) || 1)) : size;
        g = { key, items: [], weight: 0, capacity: cap, born: this.arrived };
        this.open.set(key, g);
      }
      const w = weightOf(item);
      g.items.push(item);
      g.weight += w;
      this.pending += w;
      this.arrived++;
      if (g.items.length >= g.capacity) {
        this.open.delete(key);
        this.ready.push(g);
      }
    }
    take(g: Group<T>): T[] {
      if (this.open.get(g.key) === g) this.open.delete(g.key);
      else this.ready.splice(this.ready.indexOf(g), 1);
      this.pending -= g.weight;
      return g.items;
    }
    oldestOpen(): Group<T> | undefined {
      return this.open.values().next().value;
    }
    /** The open group with the most items (the oldest of equals). */
    largestOpen(): Group<T> | undefined {
      let best: Group<T> | undefined;
      for (const g of this.open.values()) if (!best || g.items.length > best.items.length) best = g;
      return best;
    }
    /** The group that must go now: a full one, else one that waited too long or is past maxPending. */
    due(): Group<T> | undefined {
      if (this.ready.length) return this.ready[0];
      const old = this.oldestOpen();
      if (old && (this.arrived - old.born > maxWait || this.pending > maxPending)) return old;
      return undefined;
    }
  }

  if (!eager) {
    return async function* groupByShapeStage(source: AsyncIterable<T>, ctx: StageContext): AsyncGenerator<T[]> {
      const gs = new Groups();
      for await (const item of source) {
        if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
        gs.add(item);
        // Full, then oldest first while too many are held or one waited too long.
        for (let g = gs.due(); g; g = gs.due()) yield gs.take(g);
      }
      for (const g of [...gs.open.values()]) yield gs.take(g);
    };
  }

  return async function* groupByShapeEager(source: AsyncIterable<T>, ctx: StageContext): AsyncGenerator<T[]> {
    const gs = new Groups();
    /** The consumer has had its turn of the event loop for this request. */
    let settled = false;
    // Pulls ahead while less than maxPending is held (one next() on the source at a time).
    const puller = pullAhead(
      source,
      ctx.signal,
      () => gs.pending < maxPending,
      (x) => gs.add(x),
    );
    try {
      for (;;) {
        if (puller.failed) throw puller.error;
        if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
        // The consumer is asking: a due group, else (it would idle otherwise) the largest group there is.
        // Before settling for a partial group, one turn of the event loop: items that finished while the
        // consumer was busy (a synchronous engine call holds the main thread; worker results wait as
        // messages) land first, instead of the consumer always finding the queue as it left it.
        let g = gs.due();
        if (!g && !puller.ended && !settled) {
          settled = true;
          await new Promise<void>((resolve) => setImmediate(resolve));
          continue;
        }
        settled = false;
        g ??= gs.largestOpen();
        if (g) {
          const items = gs.take(g);
          puller.roomMade();
          yield items;
          continue;
        }
        if (puller.ended) return;
        await puller.wait();
      }
    } finally {
      await puller.close();
    }
  };
}
