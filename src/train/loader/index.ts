/**
 * The training loader: shards -> decode (train crop) -> Lab + filter, scaled over processes, not threads
 * (one Node process running sharp tops out near 500-600 img/s however many threads it is given; separate
 * processes scale: issue 2, ../shared/device/README.md).
 *
 * Work split. `world` ranks read disjoint shards (rank r reads the epoch's permuted shard indices i with
 * i % world === r: see shards.ts). `processes` child processes (loader-child.ts) host the ranks, child c the
 * ranks r with r % processes === c, and run shards -> decodeTrainLab (libvips Lab, the faster path: see
 * decode.ts) -> filter there. Each raw shard sample becomes one frame on a binary pipe (fd 3; never JSON
 * IPC): a kept sample as quantized bytes (L * 2.55 and ab + 128, one byte each: 3 bytes a pixel instead of
 * 12) behind a small JSON header, or a 'drop' frame with the reason. In the parent, a worker thread (the hub,
 * loader-hub.ts) owns the children: it reads the pipes, merges, and turns bytes into the network's floats;
 * the main thread only receives finished samples, their planes transferred (measured: 0.3 ms of main-thread
 * CPU per 224x224 sample with the hub, 0.6 without, on this project's 2-core machine). With `processes: 0`
 * the same per-rank streams run in the calling thread: same frames, same order, same bytes (tests, tiny runs).
 *
 * Order is deterministic, whatever the number of processes and however fast each one is. Within an epoch
 * the parent merges the ranks' kept samples by (the shard's place in its rank's list, the sample's index in
 * its shard, rank): with shards of equal length (what `pipe shard` writes) that is a round robin by raw
 * sample, one sample of each rank in turn, and a dropped sample just leaves its turn empty. Epochs are
 * barriers: epoch e + 1 starts once every rank has finished e (children may decode ahead into it meanwhile).
 * Because the merge key is a function of positions alone, "the last position each rank delivered" is a
 * complete resume state: no turn counter, no record of drops. (A round robin by *kept* sample would also
 * need to know whose turn came next; one by raw sample in arrival order would shift the rotation by every
 * drop consumed after a rank's last delivered sample.) The price: while one rank reads a shard much longer
 * than the others' shard at the same place in their lists, the others wait (their children fill their pipes
 * and pause), so keep shard lengths even.
 *
 * Resume: `resume = { epoch, after, replay }` (LoaderCursor.resume() builds it, and so does the shuffle
 * stage's `received` map). Rank r restarts right after `after[r]` (shards' resumeAfter; from the start of the
 * epoch when absent), and before that the loader yields the `replay` positions (a shuffle buffer's content)
 * in the given order, read with readSamplesAt and decoded with the same deterministic crop, marked
 * `replayed: true`.
 *
 * Backpressure: a child writes frames only as fast as the parent reads them; the parent stops reading a
 * child's pipe when it holds more than ~4 MiB of that child's frames, so children never run far ahead.
 *
 * Errors. Bad input (decode failures, shard damage) is reported to ctx.reporter as it would be in-process;
 * filtered images are counted with recordFiltered (filter.ts). A child that dies (OOM killer, a crash in
 * libvips) ends the run with a ColorpipeError 'ERR_LOADER_CHILD' naming its ranks, exit code and signal:
 * carrying on without it would silently drop its shards and break the deterministic order that resume relies
 * on; the run's last checkpoint resumes exactly. An error inside a child (e.g. a resume position that does not
 * fit the shard list) is rethrown in the parent with its code. InvalidOptionError for bad options is thrown
 * by the factory; ColorpipeError 'ERR_NO_SAMPLES' when a whole epoch of an endless run yields nothing.
 *
 * Cleanup: on an early stop, an abort or an error, every child is sent SIGTERM (SIGKILL after 2 s), its pipes
 * are closed, and the loader's iterator returns only once every child and the hub thread have exited. A child also exits by
 * itself when its stdin closes, so a parent killed outright leaves no orphan decoding.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import type { Stage, StageContext } from '../../core/pipeline.js';
import type { LabSample, Sample, ShardPosition } from '../../types.js';
import { AbortError, BadInputError, ColorpipeError, InvalidOptionError } from '../../core/errors.js';
import type { Config } from '../../config.js';
import { dequantizeAb, dequantizeL } from '../../color/lab.js';
import { mapOrdered } from '../../core/map-concurrent.js';
import { shards, readSamplesAt, type ShardSample } from '../../stages/shards.js';
import { expandShardSpec } from '../../webdataset/spec.js';
import { decodeSettings, decodeTrainLab, type DecodeSettings } from '../../stages/decode.js';
import { colourFilter, filterReason, recordFiltered, type ColourFilter } from '../../stages/filter.js';

/** A sample from the loader: Lab normalized for the network, with the rank that read it and its position. */
export type LoaderSample = LabSample & { rank: number; position: ShardPosition; replayed?: boolean };

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

export interface LoaderOptions {
  /** Shard spec: brace ranges, globs, paths, or a list (see expandShardSpec). */
  urls: string | string[];
  /** augment (resize, crop, flip), filter (thresholds, minSide), loader (processes, limitInputPixels). */
  config: Config;
  /** Seeds the shard order per epoch and every crop and flip (default config.train.seed). */
  seed?: number;
  /** Child processes; 0 runs everything in this process (default config.loader.processes; 0 there = cores). */
  processes?: number;
  /** Ranks the shards are split over; fixes the order (default: resume.world, else max(1, processes)),
   *  capped at the number of shards when not given explicitly. */
  world?: number;
  /** First epoch (default 0). */
  startEpoch?: number;
  /** Epochs to run (default 1; Infinity runs until the consumer stops). */
  epochs?: number;
  resume?: LoaderResume | null;
  /** Decodes in flight per process (default max(2, ceil(2 * cores / processes))). */
  concurrency?: number;
}

// ---------------------------------------------------------------------------------------------------------
// Frames: what a rank's stream is made of, in-process or on the pipe.

export type Frame =
  | {
      t: 'sample';
      rank: number;
      key: string;
      cls?: number;
      position: ShardPosition;
      width: number;
      height: number;
      /** round(L * 2.55), length width * height. */
      L: Uint8Array;
      /** round(ab) + 128, interleaved, length 2 * width * height. */
      ab: Uint8Array;
    }
  | { t: 'drop'; rank: number; key: string; position: ShardPosition; stage: 'decode' | 'filter'; reason: string }
  | { t: 'end'; rank: number; epoch: number }
  | { t: 'report'; stage: string; key: string; reason: string }
  | { t: 'fatal'; code: string; message: string }
  | { t: 'done' };

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
 * The frames of some ranks, all epochs: raw shard samples taken from the ranks in turn (one each), decoded
 * `concurrency` at a time in order, each becoming a 'sample' or a 'drop' frame, with an 'end' frame where a
 * rank finishes an epoch and a final 'done'. Reports of the shards stage go to ctx.reporter.
 */
export async function* rankFrames(job: LoaderJob, ctx: StageContext): AsyncGenerator<Frame> {
  const f = job.filter;
  const d = job.decode;
  yield* mapOrdered(
    rawItems(job, ctx),
    async (item): Promise<Frame> => {
      if (item.t !== 'raw') return item;
      const s = item.sample;
      const position = s.position!;
      try {
        const q = await decodeTrainLab(s, d);
        const reason = filterReason(q.stats, f);
        if (reason !== null) return { t: 'drop', rank: item.rank, key: s.key, position, stage: 'filter', reason };
        const frame: Frame = { t: 'sample', rank: item.rank, key: s.key, position, width: q.width, height: q.height, L: q.L, ab: q.ab };
        if (s.cls !== undefined) frame.cls = s.cls;
        return frame;
      } catch (err) {
        if (!(err instanceof BadInputError)) throw err;
        return { t: 'drop', rank: item.rank, key: err.key, position, stage: 'decode', reason: err.reason };
      }
    },
    { concurrency: job.concurrency, signal: ctx.signal },
  );
}

type RawItem = { t: 'raw'; rank: number; sample: Sample } | { t: 'end'; rank: number; epoch: number } | { t: 'done' };

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

// Wire format, little-endian: [u32 n = bytes after this field][u32 h = header bytes][header JSON][payload].
// The payload of a 'sample' frame is L then ab; other frames have none.

/** Encodes a frame as the buffers to write, in order (the planes are not copied). */
export function encodeFrame(f: Frame): Uint8Array[] {
  let header: string;
  let payload = 0;
  if (f.t === 'sample') {
    const { L, ab, ...rest } = f;
    header = JSON.stringify(rest);
    payload = L.length + ab.length;
  } else {
    header = JSON.stringify(f);
  }
  const h = Buffer.from(header, 'utf8');
  const head = Buffer.allocUnsafe(8 + h.length);
  head.writeUInt32LE(4 + h.length + payload, 0);
  head.writeUInt32LE(h.length, 4);
  h.copy(head, 8);
  return f.t === 'sample' ? [head, f.L, f.ab] : [head];
}

/** Splits a byte stream into frames; feed it chunks in order. */
export class FrameParser {
  private chunks: Buffer[] = [];
  private offset = 0;
  private have = 0;
  private need = -1;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.have += chunk.length;
    const out: Frame[] = [];
    for (;;) {
      if (this.need < 0) {
        if (this.have < 4) break;
        this.need = this.take(4).readUInt32LE(0);
      }
      if (this.have < this.need) break;
      const body = this.take(this.need);
      this.need = -1;
      out.push(parseBody(body));
    }
    return out;
  }

  /** Bytes received but not yet returned as frames. */
  get pending(): number {
    return this.have;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length - this.offset >= n) {
      out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
      if (this.offset === first.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const c = this.chunks[0]!;
        const k = Math.min(n - at, c.length - this.offset);
        c.copy(out, at, this.offset, this.offset + k);
        at += k;
        this.offset += k;
        if (this.offset === c.length) {
          this.chunks.shift();
          this.offset = 0;
        }
      }
    }
    this.have -= n;
    return out;
  }
}

function parseBody(body: Buffer): Frame {
  const h = body.readUInt32LE(0);
  const frame = JSON.parse(body.toString('utf8', 4, 4 + h)) as Frame;
  if (frame.t === 'sample') {
    const n = frame.width * frame.height;
    const at = body.byteOffset + 4 + h;
    frame.L = new Uint8Array(body.buffer, at, n);
    frame.ab = new Uint8Array(body.buffer, at + n, 2 * n);
  }
  return frame;
}

// ---------------------------------------------------------------------------------------------------------
// The parent

interface RankSources {
  /** The next frame of `rank` ('sample', 'drop' or 'end'). */
  next(rank: number): Promise<Frame>;
  close(): Promise<void>;
}

/** The ranks' streams run in this process: one generator per rank, pulled on its turn. */
class InProcessSources implements RankSources {
  private readonly gens = new Map<number, AsyncGenerator<Frame>>();
  constructor(job: LoaderJob, ctx: StageContext) {
    for (const r of job.ranks) this.gens.set(r, rankFrames({ ...job, ranks: [r] }, ctx));
  }
  async next(rank: number): Promise<Frame> {
    const r = await this.gens.get(rank)!.next();
    if (r.done) throw new ColorpipeError('ERR_LOADER_PROTOCOL', `rank ${rank}'s stream ended without a 'done'`);
    return r.value;
  }
  async close(): Promise<void> {
    for (const g of this.gens.values()) await g.return(undefined).catch(() => undefined);
  }
}

/** The path of the child entry, next to this file in src/ or dist/src/. */
const CHILD = fileURLToPath(new URL('./child.js', import.meta.url));

/** Bytes of parsed frames a child may have waiting in the parent before its pipe is paused. */
const HIGH_WATER = 4 << 20;

/** One child process and the frames it sent, sorted by rank. */
class Child {
  readonly proc: ChildProcess;
  private readonly pipe: Readable;
  private readonly parser = new FrameParser();
  private readonly queues = new Map<number, Frame[]>();
  private readonly reports: Frame[] = [];
  private buffered = 0;
  private paused = false;
  private fatal: (Frame & { t: 'fatal' }) | null = null;
  private closed = false;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private readonly exited: Promise<void>;
  private wake: (() => void) | null = null;

  constructor(readonly ranks: number[], job: LoaderJob, private readonly ctx: StageContext) {
    for (const r of ranks) this.queues.set(r, []);
    this.proc = spawn(process.execPath, [CHILD], {
      stdio: ['pipe', 'inherit', 'inherit', 'pipe'],
      env: { ...process.env, UV_THREADPOOL_SIZE: String(Math.max(4, job.concurrency + 1)) },
    });
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.exit = { code, signal };
        this.notify();
        resolve();
      });
    });
    // An error spawning shows up as 'error' then 'exit' (or only 'error' when it never started).
    this.proc.once('error', (err) => {
      if (this.exit === null) this.fatal = { t: 'fatal', code: 'ERR_LOADER_CHILD', message: `cannot start a decode process: ${err.message}` };
      this.notify();
    });
    this.pipe = this.proc.stdio[3] as Readable;
    this.pipe.on('data', (chunk: Buffer) => this.onData(chunk));
    this.pipe.on('close', () => {
      this.closed = true;
      this.notify();
    });
    this.pipe.on('error', () => undefined);
    this.proc.stdin!.on('error', () => undefined);
    this.proc.stdin!.write(JSON.stringify({ ...job, ranks }) + '\n');
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private onData(chunk: Buffer): void {
    for (const f of this.parser.push(chunk)) {
      if (f.t === 'sample' || f.t === 'drop' || f.t === 'end') {
        const q = this.queues.get(f.rank);
        if (q === undefined) {
          this.fatal = { t: 'fatal', code: 'ERR_LOADER_PROTOCOL', message: `frame for rank ${f.rank}, not hosted by this process` };
          continue;
        }
        q.push(f);
        if (f.t === 'sample') this.buffered += f.L.length + f.ab.length;
      } else if (f.t === 'report') {
        this.reports.push(f);
      } else if (f.t === 'fatal') {
        this.fatal = f;
      }
    }
    if (this.buffered + this.parser.pending > HIGH_WATER && !this.paused) {
      this.paused = true;
      this.pipe.pause();
    }
    this.notify();
  }

  async next(rank: number): Promise<Frame> {
    for (;;) {
      while (this.reports.length > 0) {
        const r = this.reports.shift() as Frame & { t: 'report' };
        this.ctx.reporter.report(r.stage, r.key, r.reason);
      }
      const q = this.queues.get(rank)!;
      const f = q.shift();
      if (f !== undefined) {
        if (f.t === 'sample') this.buffered -= f.L.length + f.ab.length;
        if (this.paused && this.buffered + this.parser.pending < HIGH_WATER / 2) this.resume();
        return f;
      }
      if (this.fatal !== null) throw childError(this.fatal);
      if (this.ctx.signal.aborted) throw abortError(this.ctx.signal);
      if (this.closed) {
        await this.exited;
        const e = this.exit!;
        throw new ColorpipeError(
          'ERR_LOADER_CHILD',
          `The decode process for rank${this.ranks.length > 1 ? 's' : ''} ${this.ranks.join(', ')} (pid ${this.proc.pid}) ` +
            `exited (code ${e.code}, signal ${e.signal}) before finishing its shards; resume from the last checkpoint`,
        );
      }
      // The rank we need has nothing queued: read on even above the high-water mark, or nothing could move.
      this.resume();
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private resume(): void {
    if (this.paused) {
      this.paused = false;
      this.pipe.resume();
    }
  }

  /** Wakes a pending next() (it then sees the abort). */
  interrupt(): void {
    this.notify();
  }

  async kill(): Promise<void> {
    this.proc.stdin?.destroy();
    this.pipe.destroy();
    if (this.exit === null && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      const t = setTimeout(() => this.proc.kill('SIGKILL'), 2000);
      await this.exited;
      clearTimeout(t);
    }
  }
}

class ChildSources implements RankSources {
  private readonly children: Child[] = [];
  private readonly onAbort = () => {
    for (const c of this.children) c.interrupt();
  };
  constructor(job: LoaderJob, processes: number, private readonly ctx: StageContext) {
    for (let c = 0; c < processes; c++) {
      const ranks = job.ranks.filter((r) => r % processes === c);
      this.children.push(new Child(ranks, job, ctx));
    }
    ctx.signal.addEventListener('abort', this.onAbort, { once: true });
  }
  next(rank: number): Promise<Frame> {
    return this.children[rank % this.children.length]!.next(rank);
  }
  async close(): Promise<void> {
    this.ctx.signal.removeEventListener('abort', this.onAbort);
    await Promise.all(this.children.map((c) => c.kill()));
  }
}

function childError(f: { code: string; message: string }): Error {
  if (f.code === 'ERR_INVALID_OPTION') return new InvalidOptionError(f.message);
  return new ColorpipeError(f.code, f.message);
}

function abortError(signal: AbortSignal): Error {
  const r = signal.reason;
  return r instanceof Error ? r : new AbortError(r === undefined ? undefined : String(r));
}

/**
 * The merge order within an epoch: by (the shard's place in its rank's list, the sample's index in its shard,
 * rank). A pure function of positions, so the order never depends on timing, on drops, or on anything but
 * the positions each rank has delivered: that is what makes LoaderResume's `after` a complete resume state.
 */
function mergeBefore(a: { rank: number; position: ShardPosition }, b: { rank: number; position: ShardPosition }, world: number): boolean {
  const ka = Math.floor(a.position.shardIndex / world);
  const kb = Math.floor(b.position.shardIndex / world);
  if (ka !== kb) return ka < kb;
  if (a.position.sample !== b.position.sample) return a.position.sample < b.position.sample;
  return a.rank < b.rank;
}

function toSample(f: Frame & { t: 'sample' }, replayed: boolean): LoaderSample {
  const s: LoaderSample = {
    key: f.key,
    rank: f.rank,
    position: f.position,
    width: f.width,
    height: f.height,
    L: dequantizeL(f.L),
    ab: dequantizeAb(f.ab),
  };
  if (f.cls !== undefined) s.cls = f.cls;
  if (replayed) s.replayed = true;
  return s;
}


/**
 * The training loader, a Source for `pipeline()` (see the module comment).
 * @throws InvalidOptionError at once for a wrong option; at the first `next()` when the shard spec matches
 *   nothing or the resume state does not fit the shard list.
 * @example
 * const cursor = new LoaderCursor();
 * for await (const s of pipeline(loader({ urls: 'data/*.tar', config, epochs: Infinity }), trackCursor(cursor))) ...
 */
export function loader(options: LoaderOptions): (ctx: StageContext) => AsyncIterable<LoaderSample> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError(`Expected object for options but received ${String(options)}`);
  }
  const { urls, config } = options;
  if (config === null || typeof config !== 'object' || !config.augment || !config.filter || !config.loader) {
    throw new InvalidOptionError('Expected a Config (makeConfig / loadConfig) for options.config');
  }
  const seed = options.seed ?? config.train.seed;
  if (!Number.isFinite(seed)) throw new InvalidOptionError(`Expected finite number for options.seed but received ${String(seed)}`);
  const cores = os.availableParallelism();
  const processes = options.processes ?? (config.loader.processes || cores);
  nonNegativeInt(processes, 'options.processes');
  const startEpoch = options.startEpoch ?? 0;
  nonNegativeInt(startEpoch, 'options.startEpoch');
  const epochs = options.epochs ?? 1;
  if (!(epochs === Infinity || (Number.isInteger(epochs) && epochs >= 1))) {
    throw new InvalidOptionError(`Expected positive integer or Infinity for options.epochs but received ${String(epochs)}`);
  }
  const resume = options.resume ?? null;
  const explicitWorld = options.world ?? resume?.world;
  if (explicitWorld !== undefined) positiveInt(explicitWorld, options.world !== undefined ? 'options.world' : 'options.resume.world');
  if (options.world !== undefined && resume?.world !== undefined && options.world !== resume.world) {
    throw new InvalidOptionError(`Expected options.world to equal options.resume.world but received ${options.world} and ${resume.world}`);
  }
  if (resume !== null) {
    if (typeof resume !== 'object') throw new InvalidOptionError(`Expected object for options.resume but received ${String(resume)}`);
    nonNegativeInt(resume.epoch, 'options.resume.epoch');
    if (resume.epoch < startEpoch || resume.epoch >= startEpoch + epochs) {
      throw new InvalidOptionError(
        `Expected options.resume.epoch in [${startEpoch}, ${startEpoch + epochs - 1}] but received ${resume.epoch}`,
      );
    }
    if (resume.after === null || typeof resume.after !== 'object') {
      throw new InvalidOptionError(`Expected object for options.resume.after but received ${String(resume.after)}`);
    }
    if (resume.replay !== undefined && !Array.isArray(resume.replay)) {
      throw new InvalidOptionError(`Expected array for options.resume.replay but received ${String(resume.replay)}`);
    }
  }
  const { concurrency: _unused, ...decode } = decodeSettings({
    mode: 'train',
    resize: config.augment.resize,
    crop: config.augment.crop,
    flip: config.augment.flip,
    seed,
    limitInputPixels: config.loader.limitInputPixels,
    minSide: config.filter.minSide,
  });
  const filter = colourFilter(config.filter);
  const concurrency = options.concurrency ?? Math.max(2, Math.ceil((2 * cores) / Math.max(1, processes)));
  positiveInt(concurrency, 'options.concurrency');

  return async function* loaderSource(ctx: StageContext): AsyncGenerator<LoaderSample> {
    const list = await expandShardSpec(urls);
    const world = explicitWorld ?? Math.max(1, Math.min(processes, list.length));
    if (world > list.length) {
      throw new InvalidOptionError(`Expected at most ${list.length} ranks (one per shard) for options.world but received ${world}`);
    }
    const after: Record<number, ShardPosition | null | undefined> = {};
    if (resume !== null) {
      for (const [k, p] of Object.entries(resume.after)) {
        const r = Number(k);
        if (!Number.isInteger(r) || r < 0 || r >= world) {
          throw new InvalidOptionError(`Expected ranks in [0, ${world - 1}] in options.resume.after but received ${k}`);
        }
        if (p !== null && p !== undefined && p.epoch !== resume.epoch) {
          throw new InvalidOptionError(`Expected epoch ${resume.epoch} in options.resume.after[${k}] but received ${p.epoch}`);
        }
        after[r] = p;
      }
    }
    const first = resume?.epoch ?? startEpoch;
    const job: LoaderJob = {
      urls: list,
      world,
      ranks: Array.from({ length: world }, (_, r) => r),
      seed,
      startEpoch: first,
      epochs: epochs === Infinity ? null : startEpoch + epochs - first,
      after,
      decode,
      filter,
      concurrency,
    };
    const core: LoaderCore = {
      job,
      processes: Math.min(processes, world),
      end: startEpoch + epochs,
      endless: epochs === Infinity,
      replay: resume?.replay ?? [],
      resumeEpoch: resume?.epoch ?? null,
      spec: urls,
    };
    if (core.processes === 0) {
      yield* loaderCore(core, ctx, (key, reason) => recordFiltered(ctx.reporter, key, reason));
    } else {
      yield* viaHub(core, ctx);
    }
  };
}

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
}

/**
 * The loader's merge (see the module comment), over in-process rank streams or child processes. Runs on the
 * main thread with `processes: 0`, otherwise in the hub worker (loader-hub.ts). Bad input goes to
 * ctx.reporter, filtered samples to onFiltered.
 */
export async function* loaderCore(
  c: LoaderCore,
  ctx: StageContext,
  onFiltered: (key: string, reason: string) => void,
): AsyncGenerator<LoaderSample> {
  const { job } = c;
  const world = job.world;
  const first = job.startEpoch;
  const reportDrop = (f: Frame & { t: 'drop' }) => {
    if (f.stage === 'filter') onFiltered(f.key, f.reason);
    else ctx.reporter.report(f.stage, f.key, f.reason);
  };
  let sources: RankSources | null = null;
  try {
    sources = c.processes === 0 ? new InProcessSources(job, ctx) : new ChildSources(job, c.processes, ctx);
    if (c.replay.length > 0) yield* replay(c.replay, job, ctx, reportDrop);
    for (let e = first; e < c.end; e++) {
      // The head of each rank: its next kept sample in epoch e; a rank leaves when it ends the epoch.
      const heads = new Map<number, Frame & { t: 'sample' }>();
      const advance = async (rank: number): Promise<void> => {
        for (;;) {
          const f = await sources!.next(rank);
          if (f.t === 'drop') {
            reportDrop(f);
          } else if (f.t === 'sample') {
            if (f.position.epoch !== e) {
              throw new ColorpipeError('ERR_LOADER_PROTOCOL', `rank ${rank} sent a sample of epoch ${f.position.epoch} during epoch ${e}`);
            }
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
        let best: (Frame & { t: 'sample' }) | null = null;
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

/** The hub worker's entry, next to this file in src/ or dist/src/. */
const HUB = new URL('./hub.js', import.meta.url);

/** Samples the hub may send ahead of the consumer (about two batches of 32; 600 KB each at 224). */
const HUB_WINDOW = 64;

/** Messages from the hub worker (loader-hub.ts) to the loader's iterator. */
export type HubMessage =
  | { t: 'sample'; s: LoaderSample }
  | { t: 'report'; stage: string; key: string; reason: string }
  | { t: 'filtered'; key: string; reason: string }
  | { t: 'error'; name: string; code: string; message: string }
  | { t: 'done' };

/**
 * Runs loaderCore in a worker thread (the hub) and relays its samples: pipe reading, frame parsing, the
 * merge and the dequantization (a fresh 600 KB of floats per 224x224 sample, 0.3-0.5 ms on this machine's
 * cores) stay off the main thread, which only receives each sample's two planes by transfer. The hub runs at
 * most HUB_WINDOW samples ahead (credits returned as samples are consumed). Reports and filter counts arrive
 * in order with the samples and go to ctx.reporter here, so onError 'fail' works as in-process.
 */
async function* viaHub(core: LoaderCore, ctx: StageContext): AsyncGenerator<LoaderSample> {
  const worker = new Worker(HUB, { workerData: core });
  const queue: HubMessage[] = [];
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  let exited = false;
  worker.on('message', (m: HubMessage) => {
    queue.push(m);
    notify();
  });
  worker.on('error', (err: Error) => {
    queue.push({ t: 'error', name: err.name, code: 'ERR_LOADER_HUB', message: `loader thread failed: ${err.message}` });
    notify();
  });
  const exit = new Promise<void>((resolve) =>
    worker.once('exit', () => {
      exited = true;
      notify();
      resolve();
    }),
  );
  const stop = () => worker.postMessage({ t: 'stop' });
  const onAbort = () => {
    stop();
    notify();
  };
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  worker.postMessage({ t: 'credit', n: HUB_WINDOW });
  let owed = 0;
  try {
    for (;;) {
      const m = queue.shift();
      if (m === undefined) {
        if (ctx.signal.aborted) throw abortError(ctx.signal);
        if (exited) throw new ColorpipeError('ERR_LOADER_HUB', 'The loader thread exited before the end of the data');
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        continue;
      }
      if (m.t === 'sample') {
        yield m.s;
        // Credits go back in eights: one message per sample would cost the main thread more than it saves.
        if (++owed === 8) {
          worker.postMessage({ t: 'credit', n: owed });
          owed = 0;
        }
      } else if (m.t === 'report') {
        ctx.reporter.report(m.stage, m.key, m.reason);
      } else if (m.t === 'filtered') {
        recordFiltered(ctx.reporter, m.key, m.reason);
      } else if (m.t === 'error') {
        if (m.code === 'ABORT_ERR' && ctx.signal.aborted) throw abortError(ctx.signal);
        throw m.code === 'ERR_INVALID_OPTION' ? new InvalidOptionError(m.message) : new ColorpipeError(m.code, m.message);
      } else {
        return;
      }
    }
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    if (!exited) {
      stop();
      // The hub stops its children and exits; terminate is the fallback for a hub that hangs.
      const t = setTimeout(() => void worker.terminate(), 5000);
      await exit;
      clearTimeout(t);
    }
  }
}

/** The replay positions, decoded here (they are few: a shuffle buffer), in the given order. */
async function* replay(
  positions: ShardPosition[],
  job: LoaderJob,
  ctx: StageContext,
  reportDrop: (f: Frame & { t: 'drop' }) => void,
): AsyncGenerator<LoaderSample> {
  const frames = mapOrdered(
    readSamplesAt(positions, ctx, { world: job.world }),
    async (s): Promise<Frame> => {
      try {
        const q = await decodeTrainLab(s, job.decode);
        const reason = filterReason(q.stats, job.filter);
        if (reason !== null) return { t: 'drop', rank: s.rank, key: s.key, position: s.position, stage: 'filter', reason };
        const frame: Frame = { t: 'sample', rank: s.rank, key: s.key, position: s.position, width: q.width, height: q.height, L: q.L, ab: q.ab };
        if (s.cls !== undefined) frame.cls = s.cls;
        return frame;
      } catch (err) {
        if (!(err instanceof BadInputError)) throw err;
        return { t: 'drop', rank: s.rank, key: err.key, position: s.position, stage: 'decode', reason: err.reason };
      }
    },
    { concurrency: Math.max(2, os.availableParallelism()), signal: ctx.signal },
  );
  for await (const f of frames) {
    if (f.t === 'sample') yield toSample(f, true);
    else if (f.t === 'drop') reportDrop(f);
  }
}

/**
 * Follows what a consumer has taken from the loader, to build the LoaderResume of that moment. Feed it every
 * sample in the order the loader yielded them (trackCursor does), not in training order; replayed samples
 * are ignored (they were counted before the resume). JSON-serializable through resume().
 */
export class LoaderCursor {
  private epoch: number;
  private after: Record<number, ShardPosition> = {};

  constructor(readonly world?: number, startEpoch = 0) {
    this.epoch = startEpoch;
  }

  /** Continues a cursor from a saved resume state. */
  static from(resume: LoaderResume): LoaderCursor {
    const c = new LoaderCursor(resume.world, resume.epoch);
    for (const [k, p] of Object.entries(resume.after)) if (p) c.after[Number(k)] = p;
    return c;
  }

  observe(s: { rank: number; position: ShardPosition; replayed?: boolean }): void {
    if (s.replayed) return;
    if (s.position.epoch !== this.epoch) {
      this.epoch = s.position.epoch;
      this.after = {};
    }
    this.after[s.rank] = s.position;
  }

  /** The resume state after everything observed so far, with the positions to replay first. */
  resume(replay: ShardPosition[] = []): LoaderResume {
    const r: LoaderResume = { epoch: this.epoch, after: { ...this.after }, replay: replay.slice() };
    if (this.world !== undefined) r.world = this.world;
    return r;
  }
}

/** A pass-through stage that feeds every sample to a LoaderCursor. Put it right after the loader. */
export function trackCursor<T extends { rank: number; position: ShardPosition; replayed?: boolean }>(cursor: LoaderCursor): Stage<T, T> {
  return async function* track(source: AsyncIterable<T>): AsyncGenerator<T> {
    for await (const s of source) {
      cursor.observe(s);
      yield s;
    }
  };
}

function nonNegativeInt(v: unknown, name: string): void {
  if (!Number.isInteger(v) || (v as number) < 0) {
    throw new InvalidOptionError(`Expected non-negative integer for ${name} but received ${String(v)}`);
  }
}

function positiveInt(v: unknown, name: string): void {
  if (!Number.isInteger(v) || (v as number) < 1) {
    throw new InvalidOptionError(`Expected positive integer for ${name} but received ${String(v)}`);
  }
}
