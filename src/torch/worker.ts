/**
 * A PyTorch worker process (`python -m colorpipe_torch`, src/torch/py/) and its control channel: one JSON request
 * per line on its stdin, one reply per line on its fd 3, in order. Batches travel through the ring (ring.ts).
 *
 * Failures: a request the worker fails on rejects with one line, `PyTorch: <exception>` (the traceback is added
 * with COLORPIPE_DEBUG=1); a worker that dies rejects every request in flight with its exit code or signal and the
 * last line it wrote to stderr. Its stderr is kept (the last lines) and shown live with COLORPIPE_DEBUG=1.
 *
 * Lifetime: the worker exits when its stdin closes or its parent dies (it sets PR_SET_PDEATHSIG); `close()`
 * asks it to quit and kills it after a grace period, so no worker outlives its run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { ColorpipeError } from '../core/errors.js';
import { PY_PATH } from './python.js';

type Reply = Record<string, unknown> & { id: number; ok: boolean; error?: string; trace?: string };

const debug = () => process.env.COLORPIPE_DEBUG === '1';

export class TorchWorker {
  private readonly proc: ChildProcess;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private tail: string[] = [];
  private exited: Error | null = null;
  private readonly exit: Promise<void>;

  constructor(python: string, env: NodeJS.ProcessEnv = {}) {
    const pythonPath = [PY_PATH, process.env.PYTHONPATH].filter(Boolean).join(':');
    this.proc = spawn(python, ['-m', 'colorpipe_torch'], {
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
      // No bytecode written into the package (an installed one may be read-only, and it is source we ship).
      env: { ...process.env, ...env, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: '1', PYTHONDONTWRITEBYTECODE: '1' },
    });
    const out = this.proc.stdio[3] as Readable;
    let buf = '';
    out.setEncoding('utf8');
    out.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line) this.onReply(JSON.parse(line) as Reply);
      }
    });
    const keep = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      if (debug()) process.stderr.write(text);
      this.tail.push(...text.split('\n').filter((l) => l.trim()));
      if (this.tail.length > 40) this.tail = this.tail.slice(-40);
    };
    this.proc.stderr!.on('data', keep);
    this.proc.stdout!.on('data', keep);
    (this.proc.stdin as Writable).on('error', () => undefined);
    this.exit = new Promise((resolve) => {
      this.proc.on('error', (err) => {
        this.fail(new ColorpipeError('ERR_TORCH_WORKER', `cannot start the PyTorch worker (${python}): ${err.message}`));
        resolve();
      });
      this.proc.on('close', (code, signal) => {
        const last = this.lastError();
        this.fail(new ColorpipeError('ERR_TORCH_WORKER',
          `the PyTorch worker (pid ${this.proc.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`}${last ? `: ${last}` : ''}`));
        resolve();
      });
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** The worker's last meaningful stderr line (an exception's, when it printed one). */
  private lastError(): string {
    const t = this.tail.filter((l) => !/^\s*(File |Traceback|\^|~)/.test(l));
    return t.at(-1)?.trim() ?? '';
  }

  private fail(err: Error): void {
    this.exited ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private onReply(r: Reply): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if (r.ok) p.resolve(r);
    else p.reject(new ColorpipeError('ERR_TORCH_WORKER', `PyTorch: ${r.error ?? 'failed'}${debug() && r.trace ? `\n${r.trace}` : ''}`));
  }

  /** Sends a request; resolves with the reply. Requests are answered in the order they are sent. */
  request<T extends Record<string, unknown> = Record<string, unknown>>(op: string, body: Record<string, unknown> = {}): Promise<Reply & T> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.nextId++;
    return new Promise<Reply & T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (r: Reply) => void, reject });
      (this.proc.stdin as Writable).write(JSON.stringify({ id, op, ...body }) + '\n');
    });
  }

  /** Asks the worker to quit; kills it when it has not exited after `graceMs`. Resolves once it has exited. */
  async close(graceMs = 3000): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      (this.proc.stdin as Writable).end();
      const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
      await this.exit;
      clearTimeout(timer);
    }
    await this.exit;
  }
}
