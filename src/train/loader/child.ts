/**
 * Entry point of a training-loader child process (spawned by processes.ts; not for direct use).
 *
 * Reads one JSON line from stdin (a LoaderJob: its ranks, the shard list, the settings), then writes the
 * ranks' frames to fd 3, a binary pipe (see encodeFrame), as fast as the parent reads them: a write that
 * fills the pipe waits for 'drain', which holds back decoding and shard reading. Bad input reported by the
 * shards stage is forwarded as 'report' frames (the parent's reporter decides whether it is fatal); any other
 * error is sent as a 'fatal' frame and the process exits with code 1.
 *
 * The process exits when its stdin closes (the parent is gone or stopped it), when its parent dies (polled),
 * on SIGTERM, or after 'done'.
 */
import net from 'node:net';
import type { StageContext } from '../../core/pipeline.js';
import { encodeFrame, ForwardingReporter, type Frame } from './frames.js';
import { rankFrames, type LoaderJob } from './rank-stream.js';

const out = new net.Socket({ fd: 3, readable: false, writable: true });
// EPIPE and the like: the parent closed the pipe, nobody is listening any more.
out.on('error', () => process.exit(0));

function send(f: Frame): boolean {
  const parts = encodeFrame(f);
  let ok = true;
  out.cork();
  for (const p of parts) ok = out.write(p);
  out.uncork();
  return ok;
}

function readJob(): Promise<LoaderJob> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        process.stdin.off('data', onData);
        try {
          resolve(JSON.parse(text.slice(0, nl)) as LoaderJob);
        } catch (err) {
          reject(err);
        }
      }
    };
    process.stdin.on('data', onData);
  });
}

async function main(): Promise<void> {
  const controller = new AbortController();
  // The parent closing stdin (or dying) stops everything at once. stdin must keep flowing for its end to be
  // seen: once the job is read nothing else comes, so the data is dropped. A parent killed outright may leave
  // the pipe open in a grandchild for a while, so the parent's pid is also polled (its death reparents this
  // process): either way a child outlives a SIGKILLed `pipe train` by at most half a second.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0);
  }, 500).unref();
  const job = await readJob();
  process.stdin.on('data', () => undefined);
  const ctx: StageContext = { signal: controller.signal, reporter: new ForwardingReporter(send) };
  try {
    for await (const f of rankFrames(job, ctx)) {
      if (!send(f)) await new Promise((resolve) => out.once('drain', resolve));
    }
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown };
    send({ t: 'fatal', code: typeof e.code === 'string' ? e.code : 'ERR_LOADER_CHILD', message: String(e.message ?? err) });
    out.end(() => process.exit(1));
    return;
  }
  out.end(() => process.exit(0));
}

void main();
