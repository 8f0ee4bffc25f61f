/**
 * The piscina worker of colorize's prepare and write stages (pool.ts names it by URL; nothing imports it): the
 * per-pixel work of image.ts (decode, lightness, rescales; upsampling, Lab -> sRGB, encoding) off the main
 * thread, which only drives the engine. Two named tasks:
 * - prepareTask: encoded bytes -> PreparedImage; its planes go back by transfer. Bad input comes back as
 *   `{ bad: { key, reason } }` (an Error's own fields do not survive the thread boundary).
 * - composeTask: L, ab (and alpha) arrive by transfer -> the encoded file (or the RGB when format is null).
 */
import os from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Piscina } from 'piscina';
import { BadInputError, reasonOf } from '../core/errors.js';
import { composeImage, prepareImage, preparedBuffers, type ComposeTask, type PrepareTask, type PrepareTaskResult } from './image.js';

// On a machine where the engine computes on the CPU (wasm, cpu), it and these workers share the cores, and
// the engine is the pipeline's bottleneck: a lower priority for this thread (Linux nice values are per
// thread; threads it starts inherit it) gives the engine the CPU when both want it, and costs nothing when
// cores are idle (a GPU engine).
try {
  os.setPriority(os.constants.priority.PRIORITY_LOW);
} catch {
  // Not permitted or not supported: run at normal priority.
}

// A worker left idle keeps its last image's buffers (the decoded RGB, sharp's output) until an allocation of
// its own triggers a collection: with many threads and few large images in flight (the memory budget), that
// garbage would be a good part of the process's memory. So after a large image the worker collects at once,
// with V8's gc exposed to this thread for it (where the flag cannot be set, V8's own schedule applies).
const LARGE_PIXELS = 4 * 1024 * 1024;
const collect: (() => void) | null = (() => {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
})();
function afterImage(pixels: number): void {
  if (collect && pixels >= LARGE_PIXELS) setImmediate(collect);
}

function movable<T extends object>(value: T, buffers: ArrayBuffer[]): T {
  return Piscina.move({
    get [Piscina.transferableSymbol]() {
      return buffers;
    },
    get [Piscina.valueSymbol]() {
      return value;
    },
  } as unknown as ArrayBuffer) as unknown as T;
}

export async function prepareTask(task: PrepareTask): Promise<PrepareTaskResult> {
  const t0 = performance.now();
  try {
    const image = await prepareImage(task.sample, task.settings);
    afterImage(image.width * image.height);
    return movable({ image, ms: performance.now() - t0 }, preparedBuffers(image));
  } catch (err) {
    if (err instanceof BadInputError) return { bad: { key: err.key, reason: err.reason }, ms: performance.now() - t0 };
    return { bad: { key: task.sample.url ?? task.sample.key, reason: reasonOf(err) }, ms: performance.now() - t0 };
  }
}

export async function composeTask(task: ComposeTask): Promise<{ data?: Uint8Array; rgb?: Uint8Array; ms: number }> {
  const r = await composeImage(task);
  afterImage(task.width * task.height);
  if (r.rgb) return movable({ rgb: r.rgb, ms: r.ms }, [r.rgb.buffer as ArrayBuffer]);
  // sharp's output is external memory that cannot be transferred: copy it once into a transferable array.
  const data = new Uint8Array(r.data!.byteLength);
  data.set(r.data!);
  return movable({ data, ms: r.ms }, [data.buffer]);
}
