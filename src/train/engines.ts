/**
 * Which training engine a run uses (`--engine tfjs|torch|onnx|auto`) and its setup:
 * - tfjs (src/tfjs/): in this thread, on its `--backend` (wasm on the CPU, webgpu on a GPU through Dawn);
 * - torch (src/torch/): a PyTorch worker process per device, fed by this pipeline, data parallel across devices
 *   and machines;
 * - onnx (src/onnx/): a training graph generated from the layer table, run by ONNX Runtime in this thread (CPU;
 *   CUDA where ONNX Runtime's provider is installed; WebGPU with the API's onnxTrainEngine);
 * - auto: tfjs when a tfjs `--backend` is named; else torch when the Python (`--python`, $COLORPIPE_PYTHON,
 *   python3) has torch and it sees a CUDA GPU (the engine for speed and scale); otherwise onnx on the CPU (a
 *   dependency: on a quiet CPU PyTorch's speed, 2.6-3.8x tfjs-wasm; BENCHMARKS.md), or tfjs, the pure-JavaScript engine, where
 *   onnxruntime-node does not load.
 */
import type { Config } from '../config.js';
import { EngineUnavailableError, InvalidOptionError } from '../core/errors.js';
import { oneOf } from '../core/validate.js';
import { setupTfjs, type BackendChoice, type TfjsBackend } from '../tfjs/backend.js';
import { tfjsTrainEngine } from '../tfjs/train-engine.js';
import { torchTrainEngine, type Precision, type RankPlace, type TorchDevice } from '../torch/engine.js';
import { probeTorch, pythonOf } from '../torch/python.js';
import { onnxTrainEngine } from '../onnx/train-engine.js';
import { loadOrt } from '../onnx/session.js';
import type { TrainEngine } from '../network/train-engine.js';

export type EngineChoice = 'auto' | 'tfjs' | 'torch' | 'onnx';
export const ENGINES: readonly EngineChoice[] = ['auto', 'tfjs', 'torch', 'onnx'];

export interface CreateEngineOptions {
  engine: EngineChoice;
  config: Config;
  /** tfjs's backend. */
  backend?: BackendChoice;
  /** A tfjs backend already set up (used instead of setting one up). */
  tfjsBackend?: TfjsBackend;
  /** tfjs webgpu: accept a software adapter. */
  softwareGpu?: boolean;
  /** CPU threads: tfjs wasm's, torch's or ONNX Runtime's. */
  threads?: number;
  /** torch: the Python, device, precision, torch.compile, data-parallel place, ranks on this machine, sync BN. */
  python?: string;
  device?: TorchDevice;
  precision?: Precision;
  compile?: boolean;
  dist?: RankPlace;
  localWorld?: number;
  syncBn?: boolean;
}

/** The engine `auto` resolves to here, and why (for the run's first line). */
export async function resolveEngine(choice: EngineChoice, python?: string, backend?: BackendChoice): Promise<{ engine: Exclude<EngineChoice, 'auto'>; why: string }> {
  if (choice !== 'auto') return { engine: choice, why: '' };
  // A tfjs backend asked for by name is a choice of tfjs.
  if (backend !== undefined && backend !== 'auto') return { engine: 'tfjs', why: '' };
  let torch: string;
  try {
    const t = await probeTorch(pythonOf(python));
    if (t.cuda) return { engine: 'torch', why: `auto: torch ${t.torch} sees ${t.devices} CUDA device${t.devices === 1 ? '' : 's'}` };
    torch = `torch ${t.torch} sees no CUDA device`;
  } catch (err) {
    torch = err instanceof InvalidOptionError ? 'no torch' : 'torch unavailable';
  }
  try {
    await loadOrt();
    return { engine: 'onnx', why: `auto: ${torch}` };
  } catch (err) {
    return { engine: 'tfjs', why: `auto: ${torch}; ${(err as EngineUnavailableError).short ?? 'onnxruntime-node unavailable'}` };
  }
}

/** The flags an engine's run was given, as far as which engine takes them goes. */
export type EngineFlags = Pick<CreateEngineOptions, 'backend' | 'softwareGpu' | 'python' | 'device' | 'precision' | 'compile' | 'syncBn'>;

/**
 * Refuses flags the engine does not take (`why`: how auto chose it). Pure: the command checks an engine named
 * on its command line before it starts ranks or locks a folder.
 * @throws InvalidOptionError naming the flags.
 */
export function checkEngineFlags(engine: Exclude<EngineChoice, 'auto'>, o: EngineFlags, why = ''): void {
  if (engine !== 'tfjs' && o.backend !== undefined && o.backend !== 'auto') {
    throw new InvalidOptionError(`--backend ${o.backend} names a tfjs backend, and this run trains on --engine ${engine} (drop --backend, or train with --engine tfjs)`);
  }
  if (engine !== 'tfjs' && o.softwareGpu) {
    throw new InvalidOptionError(`--software-gpu is an option of tfjs's webgpu backend, and this run trains on --engine ${engine}`);
  }
  if (engine === 'torch') return;
  // --device names ONNX Runtime's provider too (cpu, cuda).
  const device = o.device && o.device !== 'auto' && engine !== 'onnx';
  if ((o.precision && o.precision !== 'fp32') || o.compile || o.syncBn || device || o.python) {
    const flags = engine === 'onnx' ? '--python, --precision, --compile and --sync-bn' : '--python, --device, --precision, --compile and --sync-bn';
    throw new InvalidOptionError(`${flags} are options of --engine torch (this run trains on ${engine}${why ? `, ${why}` : ''})`);
  }
}

/**
 * The training engine asked for, set up for `config`.
 * @throws InvalidOptionError for an unknown engine or flags the engine does not take; EngineUnavailableError
 *   when it cannot run here.
 */
export async function createTrainEngine(o: CreateEngineOptions): Promise<TrainEngine> {
  oneOf(o.engine, 'options.engine', ENGINES);
  // A tfjs backend already set up is a choice of tfjs, as one named.
  const { engine, why } = await resolveEngine(o.engine, o.python, o.tfjsBackend ? (o.tfjsBackend.name as BackendChoice) : o.backend);
  checkEngineFlags(engine, o, why);
  if (engine === 'torch') {
    const e = await torchTrainEngine({
      config: o.config,
      ...pick(o, ['python', 'device', 'precision', 'threads', 'compile', 'dist', 'localWorld', 'syncBn']),
    });
    return why ? { ...e, describe: `${e.describe} [${why}]` } : e;
  }
  if (o.dist && o.dist.world > 1) {
    throw new EngineUnavailableError(`Training on several devices or machines needs --engine torch (${engine} has no collective for gradients)`);
  }
  if (engine === 'onnx') {
    const e = await onnxTrainEngine({
      config: o.config,
      device: o.device === 'cuda' ? 'cuda' : 'cpu',
      ...(o.threads !== undefined ? { threads: o.threads } : {}),
    });
    return why ? { ...e, describe: `${e.describe} [${why}]` } : e;
  }
  const backend = o.tfjsBackend ?? (await setupTfjs({
    backend: o.backend ?? 'auto',
    ...(o.softwareGpu ? { softwareGpu: true } : {}),
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
  }));
  const e = tfjsTrainEngine(backend, o.config);
  return why ? { ...e, describe: `${e.describe} [${why}]` } : e;
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
