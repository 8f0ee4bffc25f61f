/**
 * The parent's side of the loader: merges the ranks' kept samples by (the shard's place in its rank's list,
 * the sample's index in its shard, rank) (mergeBefore), epoch by epoch, after yielding the replay positions of
 * a resumed run. With shards of equal length (what `pipe shard` writes) that is a round robin by raw sample,
 * one sample of each rank in turn; a dropped sample just leaves its turn empty. Epochs are barriers: epoch
 * e + 1 starts once every rank has finished e (children may decode ahead into it meanwhile).
 *
 * Because the merge key is a function of positions alone, "the last position each rank delivered" is a
 * complete resume state (resume.ts): no turn counter, no record of drops. The price: while one rank reads a
 * shard much longer than the others' shard at the same place in their lists, the others wait, so keep shard
 * lengths even.
 */
import type { StageContext } from '../../core/pipeline.js';
import type { ShardPosition } from '../../types.js';
import { ColorpipeError, Reporter } from '../../core/errors.js';
import { labelProblem } from '../labels.js';
import { toSample, type DropFrame, type LoaderSample, type SampleFrame } from './frames.js';
import { mergeBefore, replay, type LoaderJob } from './rank-stream.js';
import { ChildSources, InProcessSources, type RankSources } from './processes.js';

/** What loaderCore needs: plain data, so that it can be handed to the hub worker. */
export interface LoaderCore {
  job: LoaderJob;
  /** Child processes (0: the ranks' streams run in the calling thread). */
  processes: number;
  /** One past the last epoch (Infinity allowed). */
  end: number;
  endless: boolean;
  replay: ShardPosition[];
  resumeEpoch: number | null;
  /** The shard spec as given, for messages. */
  spec: string | string[];
  /** The model's class count: a label outside [0, numClasses) is reported and dropped (0: labels unused). */
  numClasses: number;
}

/**
 * The loader's reports, once per run: a bad input (a corrupt image, a 0-byte shard, a label outside the head)
 * is reported, and a note given (an animated GIF's first frame), the first time the merge meets it, not once
 * per epoch. The merge is where every rank's reports meet, whichever process or thread read them, so one
 * such reporter in front of the run's covers them all. Keyed by (stage, key); what it lets through goes to
 * `inner`, whose onError applies as usual.
 */
export class OncePerRun extends Reporter {
  private readonly seen = new Set<string>();
  constructor(private readonly inner: Reporter) {
    super({ onError: inner.onError, log: null });
  }
  override report(stage: string, key: string, reason: string, cause?: unknown): void {
    if (this.first('report', stage, key)) this.inner.report(stage, key, reason, cause);
  }
  override notice(stage: string, key: string, reason: string): void {
    if (this.first('notice', stage, key)) this.inner.notice(stage, key, reason);
  }
  private first(kind: string, stage: string, key: string): boolean {
    const id = `${kind}\u0000${stage}\u0000${key}`;
    if (this.seen.has(id)) return false;
    this.seen.add(id);
    return true;
  }
}

/**
 * The loader's merge (see the module comment), over in-process rank streams or child processes. Runs on the
 * main thread with `processes: 0`, otherwise in the hub worker (hub.ts). Bad input goes to ctx.reporter, once
 * per run (OncePerRun), filtered samples to onFiltered (counted each time).
 */
export async function* loaderCore(
  c: LoaderCore,
  outer: StageContext,
  onFiltered: (key: string, reason: string) => void,
): AsyncGenerator<LoaderSample> {
  const { job } = c;
  const world = job.world;
  const first = job.startEpoch;
  // What the rank streams, the children and the replay report passes through OncePerRun.
  const ctx: StageContext = { ...outer, reporter: new OncePerRun(outer.reporter) };
  const reportDrop = (f: DropFrame) => {
    if (f.stage === 'filter') onFiltered(f.key, f.reason);
    else ctx.reporter.report(f.stage, f.key, f.reason);
  };
  // A kept sample: its note (only the first frame of an animated GIF was decoded), and a label the head cannot
  // hold reported and dropped (the sample's colours are still good data).
  const admit = (f: SampleFrame) => {
    if (f.note !== undefined) ctx.reporter.notice('decode', f.note.key, f.note.reason);
    const problem = f.cls === undefined ? null : labelProblem(f.cls, c.numClasses);
    if (problem !== null) {
      ctx.reporter.report('labels', `${f.position.shard}#${f.key}`, problem);
      delete f.cls;
    }
  };
  let sources: RankSources | null = null;
  try {
    sources = c.processes === 0 ? new InProcessSources(job, ctx) : new ChildSources(job, c.processes, ctx);
    if (c.replay.length > 0) yield* replay(c.replay, job, ctx, reportDrop, admit);
    for (let e = first; e < c.end; e++) {
      // The head of each rank: its next kept sample in epoch e; a rank leaves when it ends the epoch.
      const heads = new Map<number, SampleFrame>();
      const advance = async (rank: number): Promise<void> => {
        for (;;) {
          const f = await sources!.next(rank);
          if (f.t === 'drop') {
            reportDrop(f);
          } else if (f.t === 'sample') {
            if (f.position.epoch !== e) {
              throw new ColorpipeError('ERR_LOADER_PROTOCOL', `rank ${rank} sent a sample of epoch ${f.position.epoch} during epoch ${e}`);
            }
            admit(f);
            heads.set(rank, f);
            return;
          } else if (f.t === 'end') {
            if (f.epoch !== e) throw new ColorpipeError('ERR_LOADER_PROTOCOL', `rank ${rank} ended epoch ${f.epoch} during epoch ${e}`);
            heads.delete(rank);
            return;
          } else {
            throw new ColorpipeError('ERR_LOADER_PROTOCOL', `unexpected '${f.t}' frame for rank ${rank}`);
          }
        }
      };
      for (const r of job.ranks) await advance(r);
      let kept = 0;
      while (heads.size > 0) {
        let best: SampleFrame | null = null;
        for (const h of heads.values()) if (best === null || mergeBefore(h, best, world)) best = h;
        kept++;
        yield toSample(best!, false);
        await advance(best!.rank);
      }
      if (kept === 0 && c.endless && e !== c.resumeEpoch) {
        throw new ColorpipeError('ERR_NO_SAMPLES', `No usable sample in epoch ${e} of ${JSON.stringify(c.spec)}: every shard or image was bad or filtered`);
      }
    }
  } finally {
    await sources?.close();
  }
}
