/**
 * Where an interrupted run continues: `{ epoch, after, replay }`. Rank r restarts right after `after[r]` (the
 * shards stage's resumeAfter; from the start of the epoch when absent), and before that the loader yields the
 * `replay` positions in the given order, decoded with the same deterministic crop and marked `replayed: true`.
 *
 * The one path that builds it: the training graph saves the shuffle stage's state in each checkpoint, and on
 * --resume loaderResumeFrom turns that state into a LoaderResume: the shuffle's `received` (per rank, the last
 * position it took from the loader) is `after`, and its `pending` then `buffer` (samples emitted but not yet
 * trained on, then the buffer's slots) are `replay`, which the restored shuffle expects first. Because the
 * loader's merge order is a function of positions alone (merge.ts), that is a complete state.
 */
import type { ShardPosition } from '../../types.js';
import type { ShuffleState } from '../../stages/shuffle.js';
import { invalidOption, nonNegativeInt, object } from '../../core/validate.js';

/** Where to continue an interrupted run (see the module comment); JSON-serializable. */
export interface LoaderResume {
  /** The epoch to continue. */
  epoch: number;
  /** The world of the interrupted run (required to reproduce its order; default: the loader's world). */
  world?: number;
  /** Per rank, the last position it delivered in `epoch`; a rank with none starts the epoch afresh. */
  after: Record<number, ShardPosition | null | undefined>;
  /** Positions to yield first, in this order (e.g. the shuffle buffer's content at the checkpoint). */
  replay?: ShardPosition[];
}

/** The loader's resume point from a shuffle stage's saved state (see the module comment). */
export function loaderResumeFrom(state: ShuffleState): LoaderResume {
  const received = Object.entries(state.received).map(([rank, p]) => [Number(rank), p] as const);
  const epoch = received.length ? Math.max(...received.map(([, p]) => p.epoch)) : 0;
  const after: Record<number, ShardPosition> = {};
  for (const [rank, p] of received) if (p.epoch === epoch) after[rank] = p;
  return { epoch, after, replay: [...state.pending, ...state.buffer] };
}

/**
 * Checks a resume state against the loader's epochs when the factory is called.
 * @throws InvalidOptionError naming the field.
 */
export function checkResume(resume: LoaderResume, startEpoch: number, epochs: number): void {
  object(resume, 'options.resume');
  nonNegativeInt(resume.epoch, 'options.resume.epoch');
  if (resume.epoch < startEpoch || resume.epoch >= startEpoch + epochs) {
    throw invalidOption('options.resume.epoch', `integer in [${startEpoch}, ${startEpoch + epochs - 1}]`, resume.epoch);
  }
  object(resume.after, 'options.resume.after');
  if (resume.replay !== undefined && !Array.isArray(resume.replay)) throw invalidOption('options.resume.replay', 'array', resume.replay);
}

/**
 * The per-rank positions to resume after, once the world is known (at the loader's first `next()`).
 * @throws InvalidOptionError for a rank outside the world or a position of another epoch.
 */
export function resumeAfter(resume: LoaderResume | null, world: number): Record<number, ShardPosition | null | undefined> {
  const after: Record<number, ShardPosition | null | undefined> = {};
  if (resume === null) return after;
  for (const [k, p] of Object.entries(resume.after)) {
    const r = Number(k);
    if (!Number.isInteger(r) || r < 0 || r >= world) throw invalidOption('options.resume.after', `ranks in [0, ${world - 1}]`, k);
    if (p !== null && p !== undefined && p.epoch !== resume.epoch) {
      throw invalidOption(`options.resume.after[${k}].epoch`, String(resume.epoch), p.epoch);
    }
    after[r] = p;
  }
  return after;
}
