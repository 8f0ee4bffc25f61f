/**
 * A seeded buffer shuffle whose state can be saved at any moment and restored so that a resumed run emits exactly
 * what the uninterrupted run would have (training's exact resume).
 *
 * Algorithm: the first `size` items fill a buffer of `size` slots; after that each incoming item takes the slot
 * `rng.int(size)` and the item it evicts is emitted; when the source ends the rest is emitted in random order
 * (`rng.int(remaining)`, the last slot moving into the emptied one).
 *
 * Bookkeeping for resume (items carry `position` and `rank`, set by the shards source and kept by decode/lab):
 * - the rng state and the positions of the buffered items, slot by slot;
 * - `pending`: positions of the items emitted but not yet acknowledged, in emit order; the consumer acknowledges
 *   them once trained on: `ackThrough(position)` of a batch's last sample (what `pipe train` does: items dropped
 *   between the shuffle and the consumer go with it) or `ack(n)` by count;
 * - `received`: per rank, the position of the last item received from that rank: the readers resume after it.
 *
 * `state()` is synchronous and consistent: every update happens in one synchronous step between awaits.
 *
 * Restoring: `shuffle({ size, seed, restore })` expects its source to start with the `pending` items (in order)
 * and the `buffer` items (in slot order), typically `readSamplesAt([...pending, ...buffer])` through the same
 * decode, followed by the readers resumed after `received`. It emits the pending items as they come, puts the
 * buffered ones back in their slots, restores the rng, and then runs exactly as the uninterrupted run. Items are
 * matched by position: a replayed item that never comes (its sample went bad in the meantime; the reader reports
 * it) is skipped, a missing buffer slot is closed up (the run stays valid, no item is lost or doubled, but from
 * then on the order differs from the uninterrupted run's).
 *
 * Errors surface at the consumer's next `await`: the source's errors, and AbortError on ctx.signal's abort.
 */
import type { Stage, StageContext } from '../core/pipeline.js';
import type { ShardPosition } from '../types.js';
import { abortErrorOf } from '../core/abort.js';
import { invalidOption, nonNegativeInt, object, positiveInt } from '../core/validate.js';
import { Rng } from '../core/rng.js';

/** JSON-serializable state of a shuffle stage (see the module comment). */
export interface ShuffleState {
  rng: number[];
  buffer: ShardPosition[];
  pending: ShardPosition[];
  received: Record<number, ShardPosition>;
}

/** What the shuffle needs of an item: where it came from. Items without a position cannot be resumed exactly. */
export interface Positioned {
  position?: ShardPosition;
  rank?: number;
}

export interface ShuffleOptions {
  /** Buffer slots (items held). */
  size: number;
  /** Seed of the slot choices (the stream is `new Rng(seed).fork('shuffle')`). */
  seed: number | string;
  /** A saved state to continue from (see the module comment for what the source must deliver first). */
  restore?: ShuffleState | null;
}

/** The resume bookkeeping a shuffle stage carries (for the run that called it last). */
export interface ShuffleControls {
  /** A snapshot, as if the first `consumed` pending items had also been acknowledged (default 0; no mutation). */
  state(consumed?: number): ShuffleState;
  /** The first n emitted, not yet acknowledged items have been consumed: drop them from the pending log. */
  ack(n: number): void;
  /**
   * Acknowledges every pending item up to and including the one at `position` (e.g. a batch's last position),
   * so items dropped between this stage and the consumer (a malformed sample the batch stage reported) cannot
   * shift the log the way a count would. Returns how many were dropped from the log; 0 if the position is not
   * pending.
   */
  ackThrough(position: ShardPosition): number;
  /** How many emitted items await acknowledgement. */
  readonly pendingCount: number;
}

/** The stage of one item type, with its resume bookkeeping attached: what `shuffle<T>(options)` returns. */
export interface ShuffleStage<T extends Positioned> extends Stage<T, T>, ShuffleControls {}

/**
 * The stage generic in its item type (a PassThroughStage of Positioned items) with its resume bookkeeping: what
 * `shuffle(options)` returns, so that `pipeline(source, ..., shuffle(options), batch(...))` infers the items'
 * type from the stage before the shuffle.
 */
export interface PassThroughShuffleStage extends ShuffleControls {
  <T extends Positioned>(source: AsyncIterable<T>, ctx: StageContext): AsyncIterable<T>;
}

/** True when two positions name the same sample. */
export const samePosition = (a: ShardPosition | undefined, b: ShardPosition): boolean =>
  a !== undefined && a.epoch === b.epoch && a.shardIndex === b.shardIndex && a.sample === b.sample && a.shard === b.shard;

const positionId = (p: ShardPosition): string => `${p.epoch}:${p.shardIndex}:${p.sample}:${p.shard}`;

function clonePosition(p: ShardPosition): ShardPosition {
  return { epoch: p.epoch, shardIndex: p.shardIndex, shard: p.shard, sample: p.sample };
}

/** A placeholder for an item without a position, so pending/buffer lists keep their shape. */
const NO_POSITION: ShardPosition = Object.freeze({ epoch: -1, shardIndex: -1, shard: '', sample: -1 });

interface RunState<T> {
  rng: Rng;
  buffer: T[];
  pending: ShardPosition[];
  received: Map<number, ShardPosition>;
  /** While the restored buffer is being refilled: its positions, which state() reports as the buffer. */
  replayBuffer: ShardPosition[] | null;
}

/**
 * The seeded, exactly resumable buffer shuffle.
 * @throws InvalidOptionError at once for a bad size, seed or restore state.
 * @example
 * const sh = shuffle({ size: 512, seed: 1 });
 * for await (const b of pipeline(source, sh, batch({ size: 32 }))) { train(b); sh.ack(b.size); save(sh.state()); }
 */
export function shuffle(options: ShuffleOptions): PassThroughShuffleStage;
export function shuffle<T extends Positioned>(options: ShuffleOptions): ShuffleStage<T>;
export function shuffle(options: ShuffleOptions): PassThroughShuffleStage {
  object(options, 'options');
  const size = positiveInt(options.size, 'options.size');
  const { seed } = options;
  if (!(typeof seed === 'string' || (typeof seed === 'number' && Number.isFinite(seed)))) {
    throw invalidOption('options.seed', 'finite number or string', seed);
  }
  const restore = options.restore ?? null;
  if (restore !== null) validateState(restore, size);

  let run: RunState<Positioned> | null = null;

  const stage = (<T extends Positioned>(source: AsyncIterable<T>, ctx: StageContext) => {
    const st: RunState<T> = {
      rng: restore ? Rng.fromState(restore.rng) : new Rng(seed).fork('shuffle'),
      buffer: [],
      pending: restore ? restore.pending.map(clonePosition) : [],
      received: new Map(restore ? Object.entries(restore.received).map(([r, p]) => [Number(r), clonePosition(p)]) : []),
      replayBuffer: restore && restore.buffer.length > 0 ? restore.buffer.map(clonePosition) : null,
    };
    run = st;
    return shuffleRun(source, ctx, st, size, restore);
  }) as unknown as PassThroughShuffleStage; // its controls are attached below

  stage.state = (consumed = 0): ShuffleState => {
    nonNegativeInt(consumed, 'consumed');
    if (run === null) {
      if (restore !== null) return structuredClone({ ...restore, pending: restore.pending.slice(consumed) });
      return { rng: new Rng(seed).fork('shuffle').state(), buffer: [], pending: [], received: {} };
    }
    const r = run;
    if (consumed > r.pending.length) {
      throw invalidOption('consumed', `at most ${r.pending.length}`, consumed);
    }
    return {
      rng: r.rng.state(),
      buffer: r.replayBuffer ? r.replayBuffer.map(clonePosition) : r.buffer.map((x) => clonePosition(x.position ?? NO_POSITION)),
      pending: r.pending.slice(consumed).map(clonePosition),
      received: Object.fromEntries([...r.received].map(([k, p]) => [k, clonePosition(p)])),
    };
  };
  stage.ack = (n: number) => {
    const pending = run?.pending ?? [];
    if (!Number.isInteger(n) || n < 0 || n > pending.length) {
      throw invalidOption('n', `integer in [0, ${pending.length}]`, n);
    }
    pending.splice(0, n);
  };
  stage.ackThrough = (position: ShardPosition) => {
    const pending = run?.pending ?? [];
    const at = pending.findIndex((p) => samePosition(p, position));
    if (at < 0) return 0;
    pending.splice(0, at + 1);
    return at + 1;
  };
  Object.defineProperty(stage, 'pendingCount', { get: () => run?.pending.length ?? restore?.pending.length ?? 0 });
  return stage;
}

function validateState(s: ShuffleState, size: number): void {
  const ok =
    s !== null &&
    typeof s === 'object' &&
    Array.isArray(s.rng) &&
    Array.isArray(s.buffer) &&
    Array.isArray(s.pending) &&
    s.received !== null &&
    typeof s.received === 'object';
  if (!ok) throw invalidOption('options.restore', 'a ShuffleState', s);
  Rng.fromState(s.rng);
  if (s.buffer.length > size) {
    throw invalidOption('options.restore.buffer', `at most ${size} positions`, s.buffer.length);
  }
}

async function* shuffleRun<T extends Positioned>(
  source: AsyncIterable<T>,
  ctx: StageContext,
  st: RunState<T>,
  size: number,
  restore: ShuffleState | null,
): AsyncGenerator<T> {
  const { rng, buffer, pending, received } = st;
  const emit = (x: T): T => {
    pending.push(x.position ? clonePosition(x.position) : NO_POSITION);
    return x;
  };

  // Replay phase. The pending log starts as the saved one: re-emitting a replayed item leaves it in place (it is
  // still unacknowledged), a replayed item that never comes is taken out. The buffered items go back to their
  // slots; until they all have, state() reports the saved buffer.
  const replayPending = pending.slice();
  const replayBuffer = restore ? restore.buffer.map(clonePosition) : [];
  const slots: (T | undefined)[] = new Array(replayBuffer.length);
  const replayIds = new Map<string, number>();
  replayPending.forEach((p, i) => replayIds.set(positionId(p), i));
  replayBuffer.forEach((p, i) => replayIds.set(positionId(p), replayPending.length + i));
  let expected = 0; // index into replayPending ++ replayBuffer
  const total = replayPending.length + replayBuffer.length;
  let replaying = total > 0;
  const dropMissingPending = (upTo: number) => {
    for (let k = expected; k < Math.min(upTo, replayPending.length); k++) {
      const at = pending.indexOf(replayPending[k]!);
      if (at >= 0) pending.splice(at, 1);
    }
  };
  const finishReplay = () => {
    dropMissingPending(total);
    expected = total;
    replaying = false;
    for (const x of slots) if (x !== undefined) buffer.push(x);
    st.replayBuffer = null;
  };

  for await (const item of source) {
    if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
    if (replaying) {
      const at = item.position ? replayIds.get(positionId(item.position)) : undefined;
      if (at !== undefined && at >= expected) {
        // Items between `expected` and `at` never came: they are skipped (see the module comment).
        dropMissingPending(at);
        expected = at + 1;
        if (at < replayPending.length) yield item;
        else slots[at - replayPending.length] = item;
        if (expected === total) finishReplay();
        continue;
      }
      finishReplay();
    }
    if (item.position) received.set(item.rank ?? 0, clonePosition(item.position));
    if (buffer.length < size) {
      buffer.push(item);
      continue;
    }
    const j = rng.int(size);
    const out = buffer[j]!;
    buffer[j] = item;
    yield emit(out);
  }
  if (replaying) finishReplay();
  while (buffer.length > 0) {
    if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
    const j = rng.int(buffer.length);
    const out = buffer[j]!;
    const last = buffer.pop()!;
    if (j < buffer.length) buffer[j] = last;
    yield emit(out);
  }
}
