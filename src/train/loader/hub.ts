/**
 * The loader's hub: a worker thread that runs loaderCore (the child processes, their pipes, the merge and the
 * dequantization) so that the main thread only receives finished samples (see via-hub.ts).
 *
 * Protocol with the main thread: it sends `{ t: 'credit', n }` (how many more samples may be sent) and
 * `{ t: 'stop' }`; the hub sends HubMessages: samples (planes transferred, not copied), reports, filter
 * counts, then 'done' or 'error'. On 'stop' the hub aborts, which stops every child process, then closes its
 * port and exits: when the main thread sees the worker exit, no child is left.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { AbortError } from '../../core/errors.js';
import type { StageContext } from '../../core/pipeline.js';
import { ForwardingReporter, type HubMessage } from './frames.js';
import { loaderCore, type LoaderCore } from './merge.js';

const port = parentPort!;
const controller = new AbortController();
let credit = 0;
let wake: (() => void) | null = null;
const notify = () => {
  const w = wake;
  wake = null;
  w?.();
};

port.on('message', (m: { t: 'credit'; n: number } | { t: 'stop' }) => {
  if (m.t === 'credit') credit += m.n;
  else if (!controller.signal.aborted) controller.abort(new AbortError());
  notify();
});

const post = (m: HubMessage, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);

async function main(): Promise<void> {
  const ctx: StageContext = { signal: controller.signal, reporter: new ForwardingReporter(post) };
  try {
    for await (const s of loaderCore(workerData as LoaderCore, ctx, (key, reason) => post({ t: 'filtered', key, reason }))) {
      while (credit <= 0 && !controller.signal.aborted) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
      if (controller.signal.aborted) break;
      credit--;
      post({ t: 'sample', s }, [s.L.buffer as ArrayBuffer, s.ab.buffer as ArrayBuffer]);
    }
    if (!controller.signal.aborted) post({ t: 'done' });
  } catch (err) {
    if (!controller.signal.aborted) {
      const e = err as { name?: unknown; code?: unknown; message?: unknown };
      post({
        t: 'error',
        name: String(e.name ?? 'Error'),
        code: typeof e.code === 'string' ? e.code : 'ERR_LOADER_HUB',
        message: String(e.message ?? err),
      });
    }
  } finally {
    port.close();
  }
}

void main();
