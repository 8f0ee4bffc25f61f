/**
 * The data of a data-parallel run: each rank trains on its own part of the shards and keeps its own shuffle
 * buffer, and a checkpoint holds every rank's position.
 *
 * The loader's world (its streams: shard i belongs to stream i % world) is ranks x streams per rank, and rank r
 * reads the streams s with s % ranks === r. A run of one rank is the loader as it always was. The world and the
 * rank count are fixed when the run starts: the data order depends on both, so a run resumes only with the
 * number of ranks it was started with (a different one is refused, naming it).
 */
import type { Config } from '../config.js';
import { InvalidOptionError } from '../core/errors.js';
import type { ShuffleState } from '../stages/shuffle.js';
import { loaderResumeFrom, type LoaderResume } from './loader/index.js';

/** A checkpoint's `data`: one rank's (as before data-parallel runs) or every rank's. */
export type DataState =
  | { world: number; shuffle: ShuffleState }
  | { world: number; ranks: number; shuffles: ShuffleState[] };

export interface DataShare {
  /** The loader's world and this rank's streams in it (undefined: all of them). */
  world: number;
  streams: number[] | undefined;
  /** This rank's shuffle seed and restored state. */
  seed: number;
  restore: ShuffleState | null;
  resume: LoaderResume | undefined;
}

/**
 * This rank's share of the data, from the checkpoint's data state on resume.
 * @throws InvalidOptionError when there are fewer shards than ranks, or the checkpoint was written by another
 *   number of ranks.
 */
export function dataShare(o: { urls: string[]; processes: number; rank: number; ranks: number; config: Config; data: unknown; runDir: string }): DataShare {
  const { rank, ranks } = o;
  const data = (o.data ?? null) as DataState | null;
  const savedRanks = data ? ('ranks' in data ? data.ranks : 1) : ranks;
  if (savedRanks !== ranks) {
    throw new InvalidOptionError(
      `${o.runDir} was trained on ${savedRanks} rank${savedRanks === 1 ? '' : 's'}, this run has ${ranks}: resume it with ${savedRanks} ` +
        `(--devices, --nodes), since each rank's data order depends on the number of ranks`,
    );
  }
  if (o.urls.length < ranks) throw new InvalidOptionError(`${ranks} ranks need at least ${ranks} shards (one each), found ${o.urls.length}`);
  // Streams per rank: the decode processes, at most the rank's shards; fixed by the first run.
  const world = data ? data.world : ranks * Math.max(1, Math.min(o.processes, Math.floor(o.urls.length / ranks)));
  const restore = data ? ('shuffles' in data ? data.shuffles[rank] ?? null : data.shuffle) : null;
  return {
    world,
    streams: ranks > 1 ? Array.from({ length: world / ranks }, (_, i) => rank + i * ranks) : undefined,
    // Ranks shuffle with different seeds: the same seed on each would pair their buffers' orders.
    seed: o.config.train.seed + rank,
    restore,
    resume: restore ? loaderResumeFrom(restore) : undefined,
  };
}

/** The checkpoint's data state from every rank's shuffle state (rank order). */
export function dataState(world: number, shuffles: ShuffleState[]): DataState {
  return shuffles.length === 1 ? { world, shuffle: shuffles[0]! } : { world, ranks: shuffles.length, shuffles };
}
