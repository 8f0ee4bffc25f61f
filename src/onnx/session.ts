/**
 * The ONNX Runtime engine: runs a colorizer exported by export.ts with onnxruntime-node, on plain
 * Float32Arrays (no tfjs). Devices: `cpu`, `webgpu` (ORT's bundled WebGPU provider, Dawn), `cuda` (when the
 * user installed ORT's CUDA provider: `npm i onnxruntime-node --onnxruntime-node-install=cuda12`, which the
 * project's .npmrc otherwise skips) and `auto`: cuda when its provider library is present and a session
 * starts on it, then webgpu when a real (hardware) adapter exists, else cpu.
 *
 * onnxruntime-node is loaded on first use: where it is missing or its native binding does not load, the
 * loader throws EngineUnavailableError saying how to install it, and callers can fall back to tfjs.
 *
 * Layouts: the inputs have one channel, so NHWC [N, H, W, 1] and NCHW [N, 1, H, W] are the same bytes: both
 * are taken as they are. ab comes back as the tfjs path returns it, NHWC [N, H/2, W/2, 2] (a, b interleaved),
 * or NCHW on request. Errors surface when the returned promises are awaited.
 */
import { existsSync, promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import os from 'node:os';
import type * as Ort from 'onnxruntime-node';
import { EngineUnavailableError, InvalidOptionError } from '../core/errors.js';
import { invalidOption, object, oneOf, optional, positiveInt } from '../core/validate.js';
import { hasVulkanLoader, probeWebgpuAdapter } from '../device/webgpu-adapter.js';
import { decodeModel } from './proto.js';
import { ONNX_NAMES, abToNhwc } from '../network/onnx-io.js';

export type OnnxDevice = 'auto' | 'cpu' | 'webgpu' | 'cuda';
export const ONNX_DEVICES: readonly OnnxDevice[] = ['auto', 'cpu', 'webgpu', 'cuda'];
export type GraphOptimization = 'disabled' | 'basic' | 'extended' | 'all';

export interface OnnxEngineOptions {
  /** Execution provider (default 'auto'). */
  device?: OnnxDevice;
  /** CPU intra-op threads (default: os.availableParallelism(), the cores this process may use). */
  threads?: number;
  /** ORT graph optimization level (default 'all': constant folding, Conv+Relu fusion, NCHWc layouts). */
  graphOptimization?: GraphOptimization;
}

/** One batch's inputs: L / 100, local [N, H, W] (H, W multiples of 8) and global [N or 1, S, S]. */
export interface OnnxInput {
  local: Float32Array;
  global: Float32Array;
  batch: number;
  height: number;
  width: number;
}

export interface OnnxPrediction {
  /** (ab + 128) / 255; NHWC [N, H/2, W/2, 2] (a, b interleaved, as tfjs returns it) unless layout 'nchw'. */
  ab: Float32Array;
  abHeight: number;
  abWidth: number;
  /** Class logits [G, numClasses] (G: the global batch), or null without a class head. */
  logits: Float32Array | null;
}

/** A loaded ONNX colorizer. One `predict` at a time is the efficient use (ORT's threads are per session). */
export interface OnnxColorizer {
  /** The provider in use. */
  readonly device: 'cpu' | 'webgpu' | 'cuda';
  /** One line for logs and benchmarks, e.g. "onnxruntime 1.30.0 cpu (2 threads, optimization all)". */
  readonly describe: string;
  /** S: the global input's size. */
  readonly inputSize: number;
  readonly numClasses: number;
  /** The file's metadata_props (export.ts META keys). */
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * Runs the network on one batch.
   * @throws InvalidOptionError for inputs of the wrong size (at once: the promise rejects before any work).
   */
  predict(input: OnnxInput, options?: { layout?: 'nhwc' | 'nchw' }): Promise<OnnxPrediction>;
  /** Frees the session's native memory; the colorizer is unusable afterwards. */
  release(): Promise<void>;
}

type OrtModule = typeof Ort;
let ortModule: Promise<OrtModule> | null = null;

/** onnxruntime-node, loaded once. @throws EngineUnavailableError when it is missing or its binding fails. */
export async function loadOrt(): Promise<OrtModule> {
  ortModule ??= (import('onnxruntime-node') as Promise<OrtModule>).catch((err: unknown) => {
    ortModule = null;
    throw new EngineUnavailableError(
      `The ONNX Runtime engine needs onnxruntime-node, which is not installed or failed to load ` +
        `(${(err as Error).message.split('\n')[0]}). Install it with \`npm i onnxruntime-node\` (the project's ` +
        `.npmrc sets onnxruntime-node-install=skip so the install stays offline; add ` +
        `--onnxruntime-node-install=cuda12 for CUDA), or use the tfjs engine`,
      { cause: err, short: 'onnx: onnxruntime-node not installed' },
    );
  });
  return ortModule;
}

const require = createRequire(import.meta.url);

/** Whether ORT's CUDA provider library was installed next to its binding (it is not bundled in the package). */
function hasCudaProvider(ort: OrtModule): boolean {
  if (!ort.listSupportedBackends().some((b) => b.name === 'cuda')) return false;
  try {
    const root = dirname(require.resolve('onnxruntime-node/package.json'));
    const dir = join(root, 'bin', `napi-v6`, process.platform, process.arch);
    return existsSync(join(dir, process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so'));
  } catch {
    return false;
  }
}

/**
 * Refuses `cuda` in one line when ORT's CUDA provider is not installed (creating the session would print ONNX
 * Runtime's own error log to the terminal first).
 */
export function requireCudaProvider(ort: OrtModule, instead: string): void {
  if (hasCudaProvider(ort)) return;
  throw new EngineUnavailableError(
    'ONNX Runtime\'s CUDA provider is not installed (npm i onnxruntime-node --onnxruntime-node-install=cuda12 installs ' +
      `it, with CUDA 12 and cuDNN 9 on the machine); ${instead}`,
    { short: 'onnx cuda: provider not installed' },
  );
}

/**
 * Whether a hardware WebGPU adapter exists: asked in a child process (webgpu-adapter.ts, as the tfjs engine's
 * auto does), so Dawn's own warnings stay off the terminal and a software adapter is never chosen by auto.
 */
async function hasHardwareAdapter(): Promise<boolean> {
  if (!hasVulkanLoader()) return false;
  const probe = await probeWebgpuAdapter();
  return probe.found && !probe.software;
}

function sessionOptions(device: 'cpu' | 'webgpu' | 'cuda', threads: number, level: GraphOptimization): Ort.InferenceSession.SessionOptions {
  return {
    executionProviders: device === 'cpu' ? ['cpu'] : [device, 'cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: level,
  };
}

function readMetadata(bytes: Uint8Array): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const p of decodeModel(bytes).metadataProps ?? []) if (p.key) meta[p.key] = p.value ?? '';
  return meta;
}

/**
 * Loads an ONNX colorizer (a .onnx path or its bytes) into an ONNX Runtime session.
 * @throws InvalidOptionError for bad options or a file that is not a colorpipe export; EngineUnavailableError
 *   when onnxruntime-node or the requested device is unavailable.
 * @example
 * const m = await loadOnnxColorizer('runs/demo/model.onnx', { device: 'cpu' });
 * const { ab } = await m.predict({ local, global, batch: 1, height: 256, width: 256 });
 */
export async function loadOnnxColorizer(source: string | Uint8Array, options: OnnxEngineOptions = {}): Promise<OnnxColorizer> {
  object(options, 'options');
  const device = optional(options.device, 'options.device', (v, n) => oneOf(v, n, ONNX_DEVICES), 'auto');
  const threads = optional(options.threads, 'options.threads', positiveInt, os.availableParallelism());
  const level = optional(options.graphOptimization, 'options.graphOptimization', (v, n) => oneOf(v, n, ['disabled', 'basic', 'extended', 'all'] as const), 'all');
  let bytes: Uint8Array;
  if (typeof source === 'string') {
    try {
      bytes = await fsp.readFile(source);
    } catch (err) {
      throw new InvalidOptionError(`Cannot read the ONNX model ${source}: ${(err as Error).message}`);
    }
  } else if (source instanceof Uint8Array) {
    bytes = source;
  } else {
    throw invalidOption('source', 'a .onnx path or Uint8Array', source);
  }
  const name = typeof source === 'string' ? source : 'the ONNX model';
  let metadata: Record<string, string>;
  try {
    metadata = readMetadata(bytes);
  } catch (err) {
    throw new InvalidOptionError(`${name} is not an ONNX model (${(err as Error).message})`);
  }
  const ort = await loadOrt();

  const candidates: ('cpu' | 'webgpu' | 'cuda')[] = [];
  const skipped: string[] = [];
  if (device === 'auto') {
    if (hasCudaProvider(ort)) candidates.push('cuda');
    else skipped.push('cuda: provider not installed');
    if (await hasHardwareAdapter()) candidates.push('webgpu');
    else skipped.push('webgpu: no hardware adapter');
    candidates.push('cpu');
  } else {
    if (device === 'cuda') requireCudaProvider(ort, 'use --device auto, cpu or webgpu');
    candidates.push(device);
  }
  let session: Ort.InferenceSession | null = null;
  let used: 'cpu' | 'webgpu' | 'cuda' = 'cpu';
  for (const d of candidates) {
    try {
      session = await ort.InferenceSession.create(bytes, sessionOptions(d, threads, level));
      used = d;
      break;
    } catch (err) {
      const msg = (err as Error).message.split('\n')[0];
      if (device !== 'auto' || d === 'cpu') {
        throw new EngineUnavailableError(`ONNX Runtime could not start ${name} on ${d}: ${msg}`, { cause: err, short: `onnx ${d}: ${msg}` });
      }
      skipped.push(`${d}: ${msg}`);
    }
  }
  return wrap(session!, used, metadata, name, `onnxruntime ${ort.env.versions.node ?? ''} ${used} (${used === 'cpu' ? `${threads} thread${threads === 1 ? "" : "s"}, ` : ''}optimization ${level})${skipped.length ? ` [auto: ${skipped.join('; ')}]` : ''}`, ort);
}

function wrap(session: Ort.InferenceSession, device: 'cpu' | 'webgpu' | 'cuda', metadata: Record<string, string>, name: string, describe: string, ort: OrtModule): OnnxColorizer {
  const inputs = session.inputNames;
  if (!inputs.includes(ONNX_NAMES.local) || !inputs.includes(ONNX_NAMES.global) || !session.outputNames.includes(ONNX_NAMES.ab)) {
    throw new InvalidOptionError(`${name} is not a colorpipe export (inputs ${inputs.join(', ')}; outputs ${session.outputNames.join(', ')})`);
  }
  const globalMeta = session.inputMetadata[inputs.indexOf(ONNX_NAMES.global)] as { shape?: readonly (number | string)[] };
  const S = Number(globalMeta.shape?.[3] ?? metadata['colorpipe.input_size']);
  if (!Number.isInteger(S) || S < 8) throw new InvalidOptionError(`${name}: cannot tell the global input size (${JSON.stringify(globalMeta.shape)})`);
  const hasLogits = session.outputNames.includes(ONNX_NAMES.logits);
  const numClasses = hasLogits ? Number(metadata['colorpipe.num_classes'] ?? 0) : 0;

  return {
    device,
    describe,
    inputSize: S,
    numClasses,
    metadata,
    async predict(input, options = {}) {
      const { local, global, batch: n, height: h, width: w } = input;
      positiveInt(n, 'input.batch');
      if (!Number.isInteger(h) || !Number.isInteger(w) || h < 8 || w < 8 || h % 8 || w % 8) {
        throw new InvalidOptionError(`Expected height and width multiples of 8 for the ONNX colorizer but received ${w}x${h}`);
      }
      if (!(local instanceof Float32Array) || local.length !== n * h * w) {
        throw invalidOption('input.local', `Float32Array of ${n}x${h}x${w} values`, local instanceof Float32Array ? `${local.length} values` : local);
      }
      const g = global instanceof Float32Array && global.length % (S * S) === 0 ? global.length / (S * S) : -1;
      if (g !== n && g !== 1) {
        throw invalidOption('input.global', `Float32Array of ${n}x${S}x${S} or ${S}x${S} values`, global instanceof Float32Array ? `${global.length} values` : global);
      }
      const feeds = {
        [ONNX_NAMES.local]: new ort.Tensor('float32', local, [n, 1, h, w]),
        [ONNX_NAMES.global]: new ort.Tensor('float32', global, [g, 1, S, S]),
      };
      const out = await session.run(feeds);
      const ab = out[ONNX_NAMES.ab]!;
      const [, , ah, aw] = ab.dims as number[];
      const nchw = ab.data as Float32Array;
      const logits = hasLogits ? (out[ONNX_NAMES.logits]!.data as Float32Array) : null;
      for (const t of Object.values(out)) t.dispose?.();
      for (const t of Object.values(feeds)) t.dispose?.();
      return { ab: options.layout === 'nchw' ? nchw : abToNhwc(nchw, n, ah!, aw!), abHeight: ah!, abWidth: aw!, logits };
    },
    async release() {
      await session.release();
    },
  };
}
