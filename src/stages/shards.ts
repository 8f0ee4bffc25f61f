/**
 * The `shards` source: WebDataset tar shards in, samples out, streaming (a shard is never held in memory).
 *
 * Order: per epoch e the global shard list is permuted with `new Rng(seed).fork('shards', e)` (kept as given
 * when no seed), and rank r of world w reads the permuted indices i with i % w === r, so several processes
 * read disjoint shards with no coordination. Every sample carries its `position` (epoch, index in the epoch's
 * permuted list, shard, sample index in the shard) and its `rank`: give the last position a rank consumed back
 * as `resumeAfter` and the stream continues right after it, opening no earlier shard and decoding no earlier
 * sample (their tar members are drained, not buffered or parsed).
 *
 * Reading a shard (webdataset grouping, the image member, bad input, cleanup): src/webdataset/tar.ts; shard
 * lists (braces, globs, comma lists): src/webdataset/spec.ts.
 *
 * Errors that do surface, at the consumer's next `await`: InvalidOptionError from `expandShardSpec` (nothing
 * matches) or from a `resumeAfter` that does not fit the shard list; AbortError when the pipeline aborts; a
 * BadInputError from the reporter when the run said `onError: 'fail'`.
 *
 * Cleanup: an early stop (`break`) or an abort closes the shard being read at once (see tar.ts).
 */
import type { StageContext } from '../core/pipeline.js';
import type { Sample, ShardPosition } from '../types.js';
import { ColorpipeError, InvalidOptionError } from '../core/errors.js';
import { abortErrorOf } from '../core/abort.js';
import { invalidOption, nonNegativeInt, object, positiveInt, rankAndWorld } from '../core/validate.js';
import { Rng, shuffleInPlace } from '../core/rng.js';
import { expandShardSpec } from '../webdataset/spec.js';
import { readShard, type IndexedSample } from '../webdataset/tar.js';

// ---------------------------------------------------------------------------------------------------------
// The source

export interface ShardsOptions {
  /** Shard spec: brace ranges, globs, paths, or a list of them (see expandShardSpec). */
  urls: string | string[];
  /** Shuffles the shard order per epoch; without it shards are read in the order given. */
  seed?: number;
  /** First epoch (default 0). */
  epoch?: number;
  /** How many epochs to run (default 1; Infinity runs until stopped). */
  epochs?: number;
  /** This reader's rank in [0, world) (default 0). */
  rank?: number;
  /** Number of readers splitting the shards (default 1). */
  world?: number;
  /** The last position this rank already consumed: the stream resumes right after it. */
  resumeAfter?: ShardPosition | null;
}

/** A sample from the shards source: its position and the rank that read it are always set. */
export type ShardSample = Sample & { rank: number; position: ShardPosition };

/**
 * A Source of samples from WebDataset shards (pass it to `pipeline()`).
 * @throws InvalidOptionError at once for a bad option value; at the first `next()` when the spec matches nothing
 *   or `resumeAfter` does not fit the shard list (another seed, world or list than the run it came from).
 * @example
 * for await (const s of pipeline(shards({ urls: 'data/train-{000..009}.tar', seed: 1, epochs: Infinity }))) ...
 */
export function shards(options: ShardsOptions): (ctx: StageContext) => AsyncIterable<ShardSample> {
  object(options, 'options');
  const { urls, seed } = options;
  if (typeof urls !== 'string' && !Array.isArray(urls)) throw invalidOption('options.urls', 'string or string[]', urls);
  if (seed !== undefined && !Number.isFinite(seed)) throw invalidOption('options.seed', 'finite number', seed);
  const firstEpoch = options.epoch === undefined ? 0 : nonNegativeInt(options.epoch, 'options.epoch');
  const epochs = options.epochs ?? 1;
  if (epochs !== Infinity) positiveInt(epochs, 'options.epochs');
  const { rank, world } = rankAndWorld(options);
  const resume = options.resumeAfter ?? null;
  if (resume !== null) {
    validatePosition(resume, 'options.resumeAfter');
    if (resume.epoch < firstEpoch || resume.epoch >= firstEpoch + epochs) {
      throw new InvalidOptionError(
        `Expected options.resumeAfter.epoch in [${firstEpoch}, ${firstEpoch + epochs - 1}] but received ${resume.epoch}`,
      );
    }
    if (resume.shardIndex % world !== rank) {
      throw new InvalidOptionError(
        `Expected options.resumeAfter.shardIndex read by rank ${rank} of ${world} but received ${resume.shardIndex}`,
      );
    }
  }
  const end = firstEpoch + epochs;

  return async function* shardsSource(ctx: StageContext): AsyncGenerator<ShardSample> {
    const list = await expandShardSpec(urls);
    if (list.length <= rank) {
      throw new InvalidOptionError(`Expected at least ${rank + 1} shards for rank ${rank} of ${world} but found ${list.length}`);
    }
    const start = resume?.epoch ?? firstEpoch;
    for (let e = start; e < end; e++) {
      if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
      const order = seed === undefined ? list.slice() : shuffleInPlace(list.slice(), new Rng(seed).fork('shards', e));
      const resuming = resume !== null && e === resume.epoch;
      if (resuming && (resume.shardIndex >= order.length || order[resume.shardIndex] !== resume.shard)) {
        throw new InvalidOptionError(
          `Expected shard ${resume.shard} at index ${resume.shardIndex} of epoch ${e} for options.resumeAfter but found ` +
            `${order[resume.shardIndex] ?? 'none'}: the shard list or the seed changed since that position was saved`,
        );
      }
      let yielded = 0;
      for (let i = resuming ? resume.shardIndex : rank; i < order.length; i += world) {
        const url = order[i]!;
        const skipThrough = resuming && i === resume.shardIndex ? resume.sample : -1;
        const include = skipThrough >= 0 ? (j: number) => j > skipThrough : undefined;
        for await (const s of readShard(url, ctx, { include })) {
          const { index, ...sample } = s;
          yielded++;
          yield { ...sample, position: { epoch: e, shardIndex: i, shard: url, sample: index }, rank };
        }
      }
      if (yielded === 0 && !resuming && epochs === Infinity) {
        // Every shard of this rank was unreadable: looping forever over them would only repeat the reports.
        throw new ColorpipeError('ERR_NO_SAMPLES', `No readable sample in the shards of rank ${rank} of ${world} in epoch ${e}`);
      }
    }
  };
}

function validatePosition(p: ShardPosition, name: string): void {
  if (p === null || typeof p !== 'object') throw invalidOption(name, 'a ShardPosition', p);
  nonNegativeInt(p.epoch, `${name}.epoch`);
  nonNegativeInt(p.shardIndex, `${name}.shardIndex`);
  nonNegativeInt(p.sample, `${name}.sample`);
  if (typeof p.shard !== 'string' || p.shard === '') throw invalidOption(`${name}.shard`, 'non-empty string', p.shard);
}

// ---------------------------------------------------------------------------------------------------------
// Exact samples, for refilling a shuffle buffer on resume

export interface ReadSamplesAtOptions {
  /** Readers the positions came from: each sample's rank is `shardIndex % world` (default 1: rank 0). */
  world?: number;
}

/**
 * Yields exactly the samples at `positions`, in that order, each with that position and its rank. Each shard is
 * read once, streaming, decoding only the requested samples and closing the shard after the last one; only
 * samples read ahead of their turn are held in memory. A position that cannot be read (shard gone, sample
 * missing or bad) is reported and left out.
 * @throws AbortError when ctx.signal aborts; BadInputError from the reporter with onError 'fail'.
 */
export async function* readSamplesAt(
  positions: readonly ShardPosition[],
  ctx: StageContext,
  options: ReadSamplesAtOptions = {},
): AsyncGenerator<ShardSample> {
  const world = options.world === undefined ? 1 : positiveInt(options.world, 'options.world');
  positions.forEach((p, i) => validatePosition(p, `positions[${i}]`));
  const wanted = new Map<string, Set<number>>();
  for (const p of positions) {
    let set = wanted.get(p.shard);
    if (!set) wanted.set(p.shard, (set = new Set()));
    set.add(p.sample);
  }
  // Remaining uses of each (shard, sample), so a sample is dropped from memory after its last turn.
  const uses = new Map<string, number>();
  const id = (shard: string, sample: number) => `${sample}\u0000${shard}`;
  for (const p of positions) uses.set(id(p.shard, p.sample), (uses.get(id(p.shard, p.sample)) ?? 0) + 1);
  const held = new Map<string, IndexedSample>();
  const read = new Set<string>();
  for (const p of positions) {
    const k = id(p.shard, p.sample);
    if (!read.has(p.shard)) {
      read.add(p.shard);
      const set = wanted.get(p.shard)!;
      let last = -1;
      for (const j of set) last = Math.max(last, j);
      for await (const s of readShard(p.shard, ctx, { include: (j) => set.has(j), last })) held.set(id(p.shard, s.index), s);
      for (const j of set) {
        if (!held.has(id(p.shard, j))) ctx.reporter.report('shards', `${p.shard}#${j}`, 'sample to resume from not found in shard');
      }
    }
    const s = held.get(k);
    const left = (uses.get(k) ?? 1) - 1;
    uses.set(k, left);
    if (left === 0) held.delete(k);
    if (s === undefined) continue;
    const { index: _index, ...sample } = s;
    yield { ...sample, position: { ...p }, rank: p.shardIndex % world };
  }
}
