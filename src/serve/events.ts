/**
 * The runs view's live feed (/api/events, server-sent events): `runs` (every run's summary, sent when any
 * changes) and `metrics` (each run's metrics.jsonl lines as `pipe train` appends them). One poll of the runs
 * folder serves every client, and only while one is connected: the files are read from the byte where the last
 * poll stopped, up to the last complete line (a line being written waits for the next poll). A file that
 * shrank or was replaced (a fresh run in the same folder) is read again from the start and sent as a reset.
 *
 * Bounded: at most `maxClients` feeds at once (more are answered 503), and a client that stops reading is
 * dropped once `maxBuffered` bytes wait for it, so a stalled browser never holds the server's memory.
 */
import { promises as fsp } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { MetricRecord, MetricsDelta, RunSummary } from '../web/api.js';
import { listRuns, summarize } from './runs.js';

export interface EventsOptions {
  /** Poll period (ms; default 1000). */
  pollMs?: number;
  /** Feeds at once (default 16). */
  maxClients?: number;
  /** Bytes waiting for one client before it is dropped (default 4 MiB). */
  maxBuffered?: number;
  /** A comment line this often keeps idle connections open through proxies and timeouts (ms; default 15000). */
  keepAliveMs?: number;
}

/** One run's metrics.jsonl as read so far. */
interface Tail {
  ino: number;
  offset: number;
  lines: MetricRecord[];
}

/** Complete lines of `text` parsed (lines that do not parse, a killed writer's, are skipped). */
function parseLines(text: string): MetricRecord[] {
  const out: MetricRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const m = JSON.parse(line) as MetricRecord;
      if (m && typeof m.step === 'number') out.push(m);
    } catch {
      // A partial line left by a killed run.
    }
  }
  return out;
}

export class RunEvents {
  private readonly clients = new Set<ServerResponse>();
  private readonly tails = new Map<string, Tail>();
  private summaries: RunSummary[] | null = null;
  private summaryText = '';
  private timer: NodeJS.Timeout | null = null;
  private keepAlive: NodeJS.Timeout | null = null;
  private polling: Promise<void> | null = null;
  private joining = 0;
  private readonly o: Required<EventsOptions>;

  constructor(private readonly root: string, options: EventsOptions = {}) {
    this.o = { pollMs: 1000, maxClients: 16, maxBuffered: 4 << 20, keepAliveMs: 15_000, ...options };
  }

  /** Starts a feed on `res` (the request was checked): false when there are too many already. */
  async attach(res: ServerResponse): Promise<boolean> {
    if (this.clients.size + this.joining >= this.o.maxClients) return false;
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    // A feed is quiet between changes: the server's idle timeout is not for it (a stalled reader is dropped by
    // maxBuffered instead).
    res.socket?.setTimeout(0);
    // The client's first view is everything held after a poll, sent before it hears of any change: it joins
    // the broadcasts only then (nothing runs between the poll's end and the snapshot).
    this.joining++;
    try {
      await this.poll();
    } finally {
      this.joining--;
    }
    if (res.destroyed) return true;
    this.clients.add(res);
    res.on('close', () => this.detach(res));
    if (!this.timer) {
      this.timer = setInterval(() => void this.poll(), this.o.pollMs);
      this.keepAlive = setInterval(() => this.broadcast(': keep-alive\n\n'), this.o.keepAliveMs);
    }
    this.send(res, this.event('runs', this.summaries ?? []));
    for (const [run, t] of this.tails) this.send(res, this.event('metrics', { run, reset: true, lines: t.lines } satisfies MetricsDelta));
    return true;
  }

  /** Ends every feed and the polling. */
  close(): void {
    for (const c of this.clients) c.end();
    this.clients.clear();
    this.stop();
  }

  private detach(res: ServerResponse): void {
    this.clients.delete(res);
    if (this.clients.size === 0) this.stop();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.keepAlive) clearInterval(this.keepAlive);
    this.timer = this.keepAlive = null;
  }

  private event(name: string, data: unknown): string {
    return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  private send(res: ServerResponse, text: string): void {
    if (res.writableLength > this.o.maxBuffered) {
      res.destroy();
      this.detach(res);
      return;
    }
    res.write(text);
  }

  private broadcast(text: string): void {
    for (const c of [...this.clients]) this.send(c, text);
  }

  /** One poll at a time: a caller during a poll waits for it. */
  private poll(): Promise<void> {
    this.polling ??= this.pollOnce().finally(() => {
      this.polling = null;
    });
    return this.polling;
  }

  private async pollOnce(): Promise<void> {
    const runs = await listRuns(this.root);
    const summaries = await Promise.all(runs.map(summarize));
    const text = JSON.stringify(summaries);
    if (text !== this.summaryText) {
      const first = this.summaries === null;
      this.summaries = summaries;
      this.summaryText = text;
      if (!first) this.broadcast(this.event('runs', summaries));
    }
    const names = new Set(runs.map((r) => r.name));
    for (const name of this.tails.keys()) if (!names.has(name)) this.tails.delete(name);
    for (const run of runs) {
      const delta = await this.readTail(run.name, join(run.dir, 'metrics.jsonl'));
      if (delta && delta.lines.length + Number(delta.reset) > 0) this.broadcast(this.event('metrics', delta));
    }
  }

  /** What metrics.jsonl gained since the last poll (or all of it, as a reset, when it was replaced). */
  private async readTail(run: string, path: string): Promise<MetricsDelta | null> {
    const st = await fsp.stat(path).catch(() => null);
    let t = this.tails.get(run);
    if (!st) return null;
    let reset = false;
    if (!t || st.ino !== t.ino || st.size < t.offset) {
      reset = t !== undefined;
      t = { ino: st.ino, offset: 0, lines: [] };
      this.tails.set(run, t);
    }
    if (st.size === t.offset) return reset ? { run, reset, lines: [] } : null;
    const fh = await fsp.open(path, 'r').catch(() => null);
    if (!fh) return null;
    try {
      const buf = Buffer.alloc(st.size - t.offset);
      const { bytesRead } = await fh.read(buf, 0, buf.length, t.offset);
      const end = buf.subarray(0, bytesRead).lastIndexOf(0x0a);
      if (end < 0) return reset ? { run, reset, lines: [] } : null;
      t.offset += end + 1;
      const lines = parseLines(buf.subarray(0, end).toString('utf8'));
      for (const m of lines) t.lines.push(m);
      return { run, reset, lines: reset ? t.lines : lines };
    } finally {
      await fh.close();
    }
  }
}
