/**
 * The main thread's side of the hub: a worker thread (hub.ts) that owns the child processes, reads their
 * pipes, merges (merge.ts) and dequantizes, so that the main thread only receives finished samples, their
 * planes transferred (measured: 0.3 ms of main-thread CPU per 224x224 sample with the hub, 0.6 without, on
 * this project's 2-core machine).
 *
 * Protocol: this side sends `{ t: 'credit', n }` (how many more samples may be sent) and `{ t: 'stop' }`; the
 * hub sends HubMessages (frames.ts): samples, reports, filter counts, then 'done' or 'error'. On 'stop' the
 * hub aborts, which stops every child process, then exits: once the worker has exited, no child is left.
 */
import { Worker } from 'node:worker_threads';
import type { StageContext } from '../../core/pipeline.js';
import { ColorpipeError } from '../../core/errors.js';
import { abortErrorOf, onAbort } from '../../core/abort.js';
import { recordFiltered } from '../../stages/filter.js';
import { wireError, type HubMessage, type LoaderSample } from './frames.js';
import type { LoaderCore } from './merge.js';

/** The hub worker's entry (hub.ts), next to this file in src/ or dist/src/. */
const HUB = new URL('./hub.js', import.meta.url);

/** Samples the hub may send ahead of the consumer (about two batches of 32; 600 KB each at 224). */
const HUB_WINDOW = 64;

/**
 * Runs loaderCore in a worker thread (the hub) and relays its samples: pipe reading, frame parsing, the
 * merge and the dequantization (a fresh 600 KB of floats per 224x224 sample, 0.3-0.5 ms on this machine's
 * cores) stay off the main thread, which only receives each sample's two planes by transfer. The hub runs at
 * most HUB_WINDOW samples ahead (credits returned as samples are consumed). Reports and filter counts arrive
 * in order with the samples and go to ctx.reporter here, so onError 'fail' works as in-process.
 */
export async function* viaHub(core: LoaderCore, ctx: StageContext): AsyncGenerator<LoaderSample> {
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
  const disposeAbort = onAbort(ctx.signal, () => {
    stop();
    notify();
  });
  worker.postMessage({ t: 'credit', n: HUB_WINDOW });
  let owed = 0;
  try {
    for (;;) {
      const m = queue.shift();
      if (m === undefined) {
        if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
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
      } else if (m.t === 'notice') {
        ctx.reporter.notice(m.stage, m.key, m.reason);
      } else if (m.t === 'filtered') {
        recordFiltered(ctx.reporter, m.key, m.reason);
      } else if (m.t === 'error') {
        if (m.code === 'ABORT_ERR' && ctx.signal.aborted) throw abortErrorOf(ctx.signal);
        throw wireError(m);
      } else {
        return;
      }
    }
  } finally {
    disposeAbort();
    if (!exited) {
      stop();
      // The hub stops its children and exits; terminate is the fallback for a hub that hangs.
      const t = setTimeout(() => void worker.terminate(), 5000);
      await exit;
      clearTimeout(t);
    }
  }
}
