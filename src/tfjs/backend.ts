/**
 * tfjs backend selection: `--backend auto|tensorflow|webgpu|wasm|cpu`.
 *
 * The whole project uses ONE @tensorflow/tfjs-core instance (imported as '@tensorflow/tfjs-core', never through
 * the '@tensorflow/tfjs' umbrella): a backend registered into another copy of tfjs-core would be invisible.
 *
 * - `tensorflow`: @tensorflow/tfjs-node-gpu, then @tensorflow/tfjs-node, when the user installed one of them
 *   (they are not dependencies: their install downloads libtensorflow). Missing: an EngineUnavailableError that
 *   names `npm i @tensorflow/tfjs-node`.
 * - `webgpu`: @tensorflow/tfjs-backend-webgpu on Dawn (the `webgpu` npm package). Only a real (hardware) adapter
 *   counts: a software adapter (lavapipe/llvmpipe, SwiftShader) would be slower than wasm, and is used only when
 *   the user opts in (`softwareGpu`, default $COLORPIPE_SOFTWARE_GPU=1), as the webgpu tests do; `describe` then
 *   says so (see webgpu-adapter.ts).
 * - `wasm`: @tensorflow/tfjs-backend-wasm (XNNPACK, SIMD) plus colorpipe's gradient kernels (kernels/wasm.ts).
 * - `cpu`: the pure-JS backend, a last resort.
 * - `auto`: tensorflow, then webgpu with a real GPU, then wasm. It asks Dawn for an adapter in a child process
 *   first (Dawn's native warnings stay out of the user's terminal) and never picks a software adapter.
 *
 * Errors surface when `setupTfjs` is awaited (never later, inside a training step).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { ColorpipeError, EngineUnavailableError } from '../core/errors.js';
import { oneOf, positiveInt } from '../core/validate.js';
import { registerKernels } from './kernels/index.js';
import { registerAllGradients } from './gradients.js';
import { guardWasmMalloc } from './memory.js';
import { enableNodeWasmThreads } from './kernels/wasm-threads.js';
import { adapterText, hasVulkanLoader, isSoftwareAdapter, probeWebgpuAdapter, softwareGpuFromEnv, SOFTWARE_GPU_HINT, type AdapterLike } from '../device/webgpu-adapter.js';

export { isSoftwareAdapter, hasVulkanLoader } from '../device/webgpu-adapter.js';

export type BackendChoice = 'auto' | 'tensorflow' | 'webgpu' | 'wasm' | 'cpu';
export const BACKENDS: readonly BackendChoice[] = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'];

export interface TfjsBackendOptions {
  backend?: BackendChoice;
  /**
   * wasm only: XNNPACK threads (tfjs caps them at 8). Default: $COLORPIPE_WASM_THREADS, else 1. Node needs
   * colorpipe's worker shim for more than 1 (kernels/wasm-threads.ts); when it cannot be used the engine runs
   * single-threaded and `describe` says why. Fixed for the life of the process (the wasm module is initialized
   * once). Pass os.cpus().length for long runs on an otherwise idle machine: on 2 free cores the paper network
   * predicts 1.8x faster; on cores shared with other work (parallel test files) threads only add waiting, which
   * is why it is not the default.
   */
  threads?: number;
  /**
   * webgpu only: accept a software adapter (Mesa's lavapipe), for correctness runs on machines without a GPU.
   * Default: $COLORPIPE_SOFTWARE_GPU=1. `auto` ignores it: it never picks a software adapter.
   */
  softwareGpu?: boolean;
}

export interface TfjsBackend {
  /** The tfjs backend name actually in use: 'tensorflow' | 'webgpu' | 'wasm' | 'cpu'. */
  name: string;
  /** The single tfjs-core instance, with that backend active. */
  tf: typeof tf;
  /** One line for logs and benchmarks, e.g. "wasm (SIMD, 2 threads, colorpipe kernels)". */
  describe: string;
}

const require = createRequire(import.meta.url);

/** Import a module by a name TypeScript must not resolve at compile time (optional, maybe absent). */
async function importOptional(name: string): Promise<unknown> {
  return import(name);
}

function isModuleNotFound(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

async function setupTensorflow(): Promise<TfjsBackend> {
  let loaded: string | null = null;
  const errors: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await importOptional(pkg);
      loaded = pkg;
      break;
    } catch (err) {
      if (!isModuleNotFound(err)) errors.push(`${pkg}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (loaded === null) {
    const why = errors.length ? ` (${errors.join('; ')})` : '';
    throw new EngineUnavailableError(
      `The tensorflow engine needs @tensorflow/tfjs-node (CPU) or @tensorflow/tfjs-node-gpu (CUDA), which are not ` +
        `dependencies of colorpipe because their install downloads libtensorflow. Install one with ` +
        `\`npm i @tensorflow/tfjs-node\` (or \`npm i @tensorflow/tfjs-node-gpu\`), or choose --backend wasm${why}`,
      { short: 'tensorflow: tfjs-node not installed' },
    );
  }
  if (tf.findBackendFactory('tensorflow') == null) {
    throw new EngineUnavailableError(
      `${loaded} loaded but registered its backend into another copy of @tensorflow/tfjs-core than colorpipe's ` +
        `(${tf.version_core}); install a ${loaded} whose version matches @tensorflow/tfjs-core ${tf.version_core}`,
    );
  }
  if (!(await tf.setBackend('tensorflow'))) {
    throw new EngineUnavailableError(`${loaded} is installed but its backend failed to initialize`);
  }
  await tf.ready();
  return { name: 'tensorflow', tf, describe: `tensorflow (${loaded})` };
}

let dawnInstance: { requestAdapter: (o?: object) => Promise<AdapterLike | null> } | null = null;

async function setupWebgpu(allowSoftware: boolean): Promise<TfjsBackend> {
  let webgpu: { create: (flags: string[]) => { requestAdapter: (o?: object) => Promise<AdapterLike | null> }; globals: object };
  try {
    webgpu = (await importOptional('webgpu')) as typeof webgpu;
  } catch (err) {
    throw new EngineUnavailableError(
      `The webgpu engine needs the optional dependency \`webgpu\` (Dawn for Node), which is not installed or ` +
        `failed to load: ${(err as Error).message.split('\n')[0]}. Install it with \`npm i webgpu\`, or choose --backend wasm`,
      { cause: err, short: 'webgpu: Dawn not installed' },
    );
  }
  Object.assign(globalThis, webgpu.globals);
  // Dawn's instance must outlive every adapter and device made from it (freed first, Dawn aborts the process).
  dawnInstance ??= webgpu.create([]);
  const adapter = await dawnInstance.requestAdapter({ powerPreference: 'high-performance' });
  if (adapter == null) {
    throw new EngineUnavailableError(
      'The webgpu engine found no GPU adapter (Dawn needs a Vulkan, Metal or D3D12 driver: on Linux, libvulkan.so.1 ' +
        'and the GPU vendor\'s Vulkan ICD); choose --backend wasm',
      { short: 'webgpu: no GPU adapter' },
    );
  }
  const software = isSoftwareAdapter(adapter);
  if (software && !allowSoftware) {
    throw new EngineUnavailableError(
      `The webgpu engine found only a software adapter (${adapterText(adapter)}), which is slower than wasm; ` +
        `choose --backend wasm (to run webgpu on it anyway, for correctness checks: ${SOFTWARE_GPU_HINT})`,
      { short: 'webgpu: software adapter only' },
    );
  }
  // tfjs-backend-webgpu registers itself at import time only if navigator.gpu exists. It asks navigator.gpu for
  // an adapter again: hand it the one checked above (each new enumeration repeats Dawn's native warnings).
  const gpu = { requestAdapter: async () => adapter, getPreferredCanvasFormat: () => 'rgba8unorm' };
  const nav = (globalThis as unknown as { navigator?: Record<string, unknown> }).navigator;
  if (nav && typeof nav === 'object') {
    try {
      Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true, writable: true });
    } catch {
      Object.defineProperty(globalThis, 'navigator', { value: { ...nav, gpu }, configurable: true, writable: true });
    }
  } else {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  }
  try {
    await importOptional('@tensorflow/tfjs-backend-webgpu');
  } catch (err) {
    throw new EngineUnavailableError(
      `The webgpu engine needs the optional dependency @tensorflow/tfjs-backend-webgpu: ${(err as Error).message.split('\n')[0]}`,
      { cause: err },
    );
  }
  if (tf.findBackendFactory('webgpu') == null) {
    throw new EngineUnavailableError('@tensorflow/tfjs-backend-webgpu loaded but did not register a webgpu backend');
  }
  if (!(await tf.setBackend('webgpu'))) {
    throw new EngineUnavailableError(`The webgpu backend failed to initialize on ${adapterText(adapter)}`);
  }
  await tf.ready();
  registerKernels('webgpu');
  const what = software ? `software adapter ${adapterText(adapter)}, opted in, correctness only: slower than wasm` : adapterText(adapter);
  return { name: 'webgpu', tf, describe: `webgpu (${what}, colorpipe kernels)` };
}

/** Directory holding the tfjs-backend-wasm .wasm binaries (its dist/), with a trailing slash. */
export function wasmBinaryDir(): string {
  return join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/';
}

let wasmThreadsInfo: { requested: number; actual: number; note: string } | null = null;

async function setupWasm(threads: number | undefined): Promise<TfjsBackend> {
  const wasm = (await import('@tensorflow/tfjs-backend-wasm')) as typeof import('@tensorflow/tfjs-backend-wasm');
  if (wasmThreadsInfo === null) {
    // First initialization: pick the thread count and the binaries. The module is initialized once per process.
    const fromEnv = Number(process.env['COLORPIPE_WASM_THREADS']);
    const requested = threads ?? (Number.isInteger(fromEnv) && fromEnv > 0 ? fromEnv : 1);
    let note = '';
    if (requested > 1) {
      const r = enableNodeWasmThreads();
      if (!r.ok) note = ` (threads unavailable: ${r.reason})`;
    }
    wasm.setThreadsCount(requested);
    wasm.setWasmPaths(wasmBinaryDir());
    wasmThreadsInfo = { requested, actual: 1, note };
  } else if (threads !== undefined && threads !== wasmThreadsInfo.requested) {
    // Not an error: the module cannot be re-initialized, so say what is really used.
    wasmThreadsInfo.note = ` (threads fixed at first initialization; ${threads} requested later)`;
  }
  // tfjs-backend-wasm caps its pool at emscripten_num_logical_cores() / 2 (it assumes 2 hyper-threads per core),
  // which in Node is os.cpus().length / 2: on a 2-vCPU machine, 1 thread. Report 2 * requested while it
  // initializes, so the pool gets the requested count (itself capped at 8 by tfjs).
  const realCpus = os.cpus;
  const want = wasmThreadsInfo.requested;
  if (want > 1) os.cpus = () => Array.from({ length: 2 * want }, (_, i) => realCpus()[i % realCpus().length]!);
  let ok: boolean;
  try {
    ok = await tf.setBackend('wasm');
  } finally {
    os.cpus = realCpus;
  }
  if (!ok) throw new EngineUnavailableError('The wasm backend failed to initialize');
  // Emscripten ref()s the worker of every running pthread, as POSIX threads keep a process alive; XNNPACK's
  // pool threads never end, so without this a Node process using threads would never exit by itself.
  const pthreads = (tf.backend() as unknown as { wasm?: { PThread?: { runningWorkers?: Array<{ unref?: () => void }> } } }).wasm?.PThread;
  for (const w of pthreads?.runningWorkers ?? []) w.unref?.();
  await tf.ready();
  registerKernels('wasm');
  guardWasmMalloc(tf.backend());
  wasmThreadsInfo.actual = wasm.getThreadsCount();
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const t = wasmThreadsInfo.actual;
  return {
    name: 'wasm',
    tf,
    describe: `wasm (${simd ? 'SIMD' : 'no SIMD'}, ${t} thread${t === 1 ? '' : 's'}${wasmThreadsInfo.note}, colorpipe kernels)`,
  };
}

async function setupCpu(): Promise<TfjsBackend> {
  await import('@tensorflow/tfjs-backend-cpu');
  if (!(await tf.setBackend('cpu'))) throw new EngineUnavailableError('The cpu backend failed to initialize');
  await tf.ready();
  // The cpu backend prints a banner recommending tfjs-node on its first write; the engine choice is explicit
  // here (and setupTfjs's errors say how to get tensorflow), so skip it.
  (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
  registerKernels('cpu');
  return { name: 'cpu', tf, describe: 'cpu (pure JS, colorpipe kernels)' };
}

/**
 * Selects and initializes an engine. Throws InvalidOptionError for an unknown backend name and
 * EngineUnavailableError (with what to install or choose instead) when the chosen one cannot run here; `auto`
 * never throws for lack of tensorflow or a GPU, it falls back to wasm.
 *
 * @example
 * const { tf, name } = await setupTfjs({ backend: 'auto' });
 */
export async function setupTfjs(options: TfjsBackendOptions = {}): Promise<TfjsBackend> {
  const backend = oneOf(options.backend ?? 'auto', 'options.backend', BACKENDS);
  if (options.threads !== undefined) positiveInt(options.threads, 'options.threads');
  registerAllGradients();
  switch (backend) {
    case 'tensorflow':
      return setupTensorflow();
    case 'webgpu':
      return setupWebgpu(options.softwareGpu ?? softwareGpuFromEnv());
    case 'wasm':
      return setupWasm(options.threads);
    case 'cpu':
      return setupCpu();
    case 'auto': {
      const skipped: string[] = [];
      for (const attempt of ['tensorflow', 'webgpu'] as const) {
        if (attempt === 'webgpu') {
          // Without a Vulkan loader Dawn finds no GPU on Linux, after printing a warning: skip it quietly. With
          // one, ask Dawn in a child process: only a hardware adapter is worth loading Dawn here for.
          if (!hasVulkanLoader()) {
            skipped.push('webgpu: no Vulkan loader (libvulkan.so.1)');
            continue;
          }
          const probe = await probeWebgpuAdapter();
          if (!probe.found || probe.software) {
            skipped.push(probe.found ? 'webgpu: software adapter only' : probe.reason);
            continue;
          }
        }
        try {
          return attempt === 'tensorflow' ? await setupTensorflow() : await setupWebgpu(false);
        } catch (err) {
          if (!(err instanceof EngineUnavailableError)) throw err;
          skipped.push(err.short);
        }
      }
      const e = await setupWasm(options.threads);
      return { ...e, describe: `${e.describe} [auto: ${skipped.join('; ')}]` };
    }
  }
}
