/**
 * The browser's runner (network/runner.ts) over onnxruntime-web, on the same ONNX export as onnxruntime-node
 * (network/onnx-io.ts names its inputs and outputs): WebGPU when the browser offers an adapter and the session
 * starts on it, else WebAssembly (threads when the page is cross-origin isolated: `pipe serve` sends the
 * headers; a plain static host usually does not, and the session runs on one thread). onnxruntime-web is
 * imported here only (test/architecture.test.ts); the build serves its own copy beside the bundles.
 */
import * as ort from 'onnxruntime-web';
import { ONNX_NAMES, abToNhwc } from '../network/onnx-io.js';
import type { Runner, RunResult, RunShape } from '../network/runner.js';
import type { TrainingScale } from '../types.js';
import type { ExecutionChoice } from './api.js';

/** A runner on onnxruntime-web, and which provider it got. */
export interface OrtRunner extends Runner {
  readonly backend: 'webgpu' | 'wasm';
}

export interface OrtRunnerOptions {
  ep: ExecutionChoice;
  /** S, the global input's side (the models list says it). */
  inputSize: number;
  trainingScale?: TrainingScale;
}

/** WebAssembly threads: the cores, at most 8, where SharedArrayBuffer is allowed (cross-origin isolation). */
function wasmThreads(): number {
  return globalThis.crossOriginIsolated ? Math.max(1, Math.min(8, navigator.hardwareConcurrency || 1)) : 1;
}

/** Whether the browser hands out a WebGPU adapter (a headless or blocklisted GPU may not). */
async function hasWebgpu(): Promise<boolean> {
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) return false;
  try {
    return (await gpu.requestAdapter()) !== null;
  } catch {
    return false;
  }
}

async function session(model: Uint8Array, backend: 'webgpu' | 'wasm'): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model, { executionProviders: [backend], graphOptimizationLevel: 'all' });
}

/**
 * A runner on the ONNX bytes: on `ep`, or for 'auto' WebGPU when it starts, else WebAssembly.
 * @throws Error when the asked provider cannot run the model (its reason), or the bytes are not a colorpipe export.
 */
export async function loadOrtRunner(model: Uint8Array, options: OrtRunnerOptions): Promise<OrtRunner> {
  ort.env.wasm.numThreads = wasmThreads();
  // This module runs in the page's own worker already: no second proxy worker.
  ort.env.wasm.proxy = false;
  let backend: 'webgpu' | 'wasm' = options.ep === 'webgpu' || (options.ep === 'auto' && (await hasWebgpu())) ? 'webgpu' : 'wasm';
  let s: ort.InferenceSession;
  try {
    s = await session(model, backend);
  } catch (err) {
    if (options.ep !== 'auto' || backend === 'wasm') throw err;
    backend = 'wasm';
    s = await session(model, backend);
  }
  if (!s.inputNames.includes(ONNX_NAMES.local) || !s.inputNames.includes(ONNX_NAMES.global) || !s.outputNames.includes(ONNX_NAMES.ab)) {
    await s.release();
    throw new Error(`not a colorpipe export (inputs ${s.inputNames.join(', ')})`);
  }
  const S = options.inputSize;
  const threads = ort.env.wasm.numThreads ?? 1;
  return {
    backend,
    globalSize: S,
    describe: backend === 'webgpu' ? 'WebGPU' : `WebAssembly (${threads} thread${threads === 1 ? '' : 's'})`,
    ...(options.trainingScale ? { trainingScale: options.trainingScale } : {}),
    async run(local: Float32Array, global: Float32Array, { batch, height, width }: RunShape): Promise<RunResult> {
      const g = global.length / (S * S);
      const feeds = {
        [ONNX_NAMES.local]: new ort.Tensor('float32', local, [batch, 1, height, width]),
        [ONNX_NAMES.global]: new ort.Tensor('float32', global, [g, 1, S, S]),
      };
      const out = await s.run(feeds);
      const ab = out[ONNX_NAMES.ab]!;
      const [, , ah, aw] = ab.dims as number[];
      const data = (await ab.getData()) as Float32Array;
      for (const t of Object.values(out)) t.dispose();
      return { ab: abToNhwc(data, batch, ah!, aw!), abHeight: ah!, abWidth: aw! };
    },
    release: () => s.release(),
  };
}
