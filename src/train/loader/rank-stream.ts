/**
 * A rank's stream: its raw shard samples in the merge order, each decoded (train crop, Lab in libvips) and
 * filtered into one frame, a kept 'sample' or a 'drop' with the reason. The same code runs in a child process
 * (child.ts) and in the calling thread (`processes: 0`), so both give the same frames, in the same order, with
 * the same bytes. Replay (the positions a resumed run yields first) goes through the same frameOf.
 */
import os from 'node:os';
import type { StageContext } from '../../core/pipeline.js';
import type { ShardPosition } from '../../types.js';
import { BadInputError } from '../../core/errors.js';
import { mapOrdered } from '../../core/map-concurrent.js';
import { shards, readSamplesAt, type ShardSample } from '../../stages/shards.js';
import { decodeTrainLab, sampleName, type DecodeSettings } from '../../stages/decode.js';
import { filterReason, type ColourFilter } from '../../stages/filter.js';
import { toSample, type DropFrame, type Frame, type LoaderSample, type SampleFrame } from './frames.js';

/** Everything a rank's stream depends on; sent to each child as one JSON line on its stdin. */
export interface LoaderJob {
  urls: string[];
  world: number;
  ranks: number[];
  seed: number;
  startEpoch: number;
  /** null = Infinity (JSON). */
  epochs: number | null;
  /** Per rank, the position to resume after in startEpoch. */
  after: Record<number, ShardPosition | null | undefined>;
  decode: DecodeSettings;
  filter: ColourFilter;
  concurrency: number;
}

/**
 * The merge order within an epoch: by (the shard's place in its rank's list, the sample's index in its shard,
 * rank). A pure function of positions, so the order never depends on timing, on drops, or on anything but
 * the positions each rank has delivered: that is what makes LoaderResume's `after` a complete resume state.
 */
export function mergeBefore(a: { rank: number; position: ShardPosition }, b: { rank: number; position: ShardPosition }, world: number): boolean {
  const ka = Math.floor(a.position.shardIndex / world);
  const kb = Math.floor(b.position.shardIndex / world);
  if (ka !== kb) return ka < kb;
  if (a.position.sample !== b.position.sample) return a.position.sample < b.position.sample;
  return a.rank < b.rank;
}

/** One raw sample decoded and filtered into a frame: 'sample' when kept, 'drop' (bad input or filtered) otherwise. */
export async function frameOf(s: ShardSample, rank: number, decode: DecodeSettings, filter: ColourFilter): Promise<Frame> {
  const position = s.position;
  try {
    const q = await decodeTrainLab(s, decode);
    const reason = filterReason(q.stats, filter);
    if (reason !== null) return { t: 'drop', rank, key: s.key, position, stage: 'filter', reason };
    const frame: Frame = { t: 'sample', rank, key: s.key, position, width: q.width, height: q.height, L: q.L, ab: q.ab };
    if (s.cls !== undefined) frame.cls = s.cls;
    if (q.note !== undefined) frame.note = { key: sampleName(s), reason: q.note };
    return frame;
  } catch (err) {
    if (!(err instanceof BadInputError)) throw err;
    return { t: 'drop', rank, key: err.key, position, stage: 'decode', reason: err.reason };
  }
}

/**
 * The frames of some ranks, all epochs: raw shard samples taken from the ranks in turn (one each), decoded
 * `concurrency` at a time in order, each becoming a 'sample' or a 'drop' frame, with an 'end' frame where a
 * rank finishes an epoch and a final 'done'. Reports of the shards stage go to ctx.reporter; other errors
 * surface at the consumer's next await.
 */
export async function* rankFrames(job: LoaderJob, ctx: StageContext): AsyncGenerator<Frame> {
  yield* mapOrdered(
    rawItems(job, ctx),
    (item): Promise<Frame> => (item.t === 'raw' ? frameOf(item.sample, item.rank, job.decode, job.filter) : Promise.resolve(item)),
    { concurrency: job.concurrency, signal: ctx.signal },
  );
}

type RawItem = { t: 'raw'; rank: number; sample: ShardSample } | { t: 'end'; rank: number; epoch: number } | { t: 'done' };

async function* rawItems(job: LoaderJob, ctx: StageContext): AsyncGenerator<RawItem> {
  const end = job.epochs === null ? Infinity : job.startEpoch + job.epochs;
  for (let e = job.startEpoch; e < end; e++) {
    const active = job.ranks.map((rank) => ({
      rank,
      it: shards({
        urls: job.urls,
        seed: job.seed,
        epoch: e,
        epochs: 1,
        rank,
        world: job.world,
        resumeAfter: e === job.startEpoch ? job.after[rank] ?? null : null,
      })(ctx)[Symbol.asyncIterator](),
    }));
    try {
      // The same merge order as the parent's (mergeBefore), over raw samples: this stream then arrives in
      // the order the parent consumes it, whatever the drops.
      const heads = new Map<number, ShardSample>();
      const pull = async (a: (typeof active)[number]): Promise<boolean> => {
        const r = await a.it.next();
        if (r.done) return false;
        heads.set(a.rank, r.value);
        return true;
      };
      for (let i = 0; i < active.length; ) {
        if (await pull(active[i]!)) i++;
        else yield { t: 'end', rank: active.splice(i, 1)[0]!.rank, epoch: e };
      }
      while (active.length > 0) {
        let best = 0;
        for (let i = 1; i < active.length; i++) {
          if (mergeBefore(heads.get(active[i]!.rank)!, heads.get(active[best]!.rank)!, job.world)) best = i;
        }
        const a = active[best]!;
        yield { t: 'raw', rank: a.rank, sample: heads.get(a.rank)! };
        if (!(await pull(a))) {
          heads.delete(a.rank);
          active.splice(best, 1);
          yield { t: 'end', rank: a.rank, epoch: e };
        }
      }
    } finally {
      for (const a of active) await a.it.return?.(undefined);
    }
  }
  yield { t: 'done' };
}

/**
 * The replay positions (a shuffle buffer's content, so few), read with readSamplesAt and decoded here with the
 * same deterministic crop, in the given order, marked `replayed: true`; dropped ones go to reportDrop, kept
 * ones to onSample before they are yielded (for their note).
 */
export async function* replay(
  positions: ShardPosition[],
  job: LoaderJob,
  ctx: StageContext,
  reportDrop: (f: DropFrame) => void,
  onSample: (f: SampleFrame) => void = () => undefined,
): AsyncGenerator<LoaderSample> {
  const frames = mapOrdered(
    readSamplesAt(positions, ctx, { world: job.world }),
    (s) => frameOf(s, s.rank, job.decode, job.filter),
    { concurrency: Math.max(2, os.availableParallelism()), signal: ctx.signal },
  );
  for await (const f of frames) {
    if (f.t === 'sample') {
      onSample(f);
      yield toSample(f, true);
    } else if (f.t === 'drop') reportDrop(f);
  }
}
