/**
 * Where the ranks' streams run: in the calling thread (InProcessSources, `processes: 0`) or in child
 * processes (ChildSources: child c hosts the ranks r with r % processes === c and runs child.ts). Both serve
 * the merge (merge.ts) the next frame of a given rank.
 *
 * Backpressure: a child writes frames only as fast as the parent reads them; the parent stops reading a
 * child's pipe when it holds more than HIGH_WATER bytes of that child's frames, so children never run far
 * ahead, and reads on regardless when the rank the merge needs has nothing queued.
 *
 * Errors: a child that dies (OOM killer, a crash in libvips) makes next() throw ColorpipeError
 * 'ERR_LOADER_CHILD' naming its ranks, exit code and signal: carrying on without it would silently drop its
 * shards and break the deterministic order that resume relies on. A 'fatal' frame (an error inside the child,
 * e.g. a resume position that does not fit the shard list) is rethrown with its code (wireError). An abort
 * surfaces as the signal's reason. Cleanup: close() sends SIGTERM (SIGKILL after 2 s), closes the pipes and
 * resolves once every child has exited; a child also exits by itself when its stdin closes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import type { StageContext } from '../../core/pipeline.js';
import { ColorpipeError } from '../../core/errors.js';
import { abortErrorOf, onAbort } from '../../core/abort.js';
import { FrameParser, wireError, type Frame, type NoticeMessage, type ReportMessage } from './frames.js';
import { rankFrames, type LoaderJob } from './rank-stream.js';

export interface RankSources {
  /** The next frame of `rank` ('sample', 'drop' or 'end'). */
  next(rank: number): Promise<Frame>;
  close(): Promise<void>;
}

/** The ranks' streams run in this process: one generator per rank, pulled on its turn. */
export class InProcessSources implements RankSources {
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
export class Child {
  readonly proc: ChildProcess;
  private readonly pipe: Readable;
  private readonly parser = new FrameParser();
  private readonly queues = new Map<number, Frame[]>();
  private readonly reports: (ReportMessage | NoticeMessage)[] = [];
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
      } else if (f.t === 'report' || f.t === 'notice') {
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
        const r = this.reports.shift()!;
        if (r.t === 'notice') this.ctx.reporter.notice(r.stage, r.key, r.reason);
        else this.ctx.reporter.report(r.stage, r.key, r.reason);
      }
      const q = this.queues.get(rank)!;
      const f = q.shift();
      if (f !== undefined) {
        if (f.t === 'sample') this.buffered -= f.L.length + f.ab.length;
        if (this.paused && this.buffered + this.parser.pending < HIGH_WATER / 2) this.resume();
        return f;
      }
      if (this.fatal !== null) throw wireError(this.fatal);
      if (this.ctx.signal.aborted) throw abortErrorOf(this.ctx.signal);
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

/** The ranks' streams in `processes` child processes, child c hosting the job's ranks at the places i with i % processes === c. */
export class ChildSources implements RankSources {
  private readonly children: Child[] = [];
  private readonly disposeAbort: () => void;
  constructor(job: LoaderJob, processes: number, ctx: StageContext) {
    for (let c = 0; c < processes; c++) {
      const ranks = job.ranks.filter((_, i) => i % processes === c);
      this.children.push(new Child(ranks, job, ctx));
    }
    // A merge waiting on a child wakes up and sees the abort.
    this.disposeAbort = onAbort(ctx.signal, () => {
      for (const c of this.children) c.interrupt();
    });
  }
  next(rank: number): Promise<Frame> {
    return this.children[rank % this.children.length]!.next(rank);
  }
  async close(): Promise<void> {
    this.disposeAbort();
    await Promise.all(this.children.map((c) => c.kill()));
  }
}
