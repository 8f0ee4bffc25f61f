/**
 * Which runner colorize uses (the contract: network/runner.ts): what a `--model` argument names (a run
 * directory, a model directory or model.json, an exported model.onnx, or a model already loaded), on the
 * runtime asked:
 *
 * - `onnx`: ONNX Runtime (onnx/runner.ts) on `device` (cpu, webgpu, cuda, auto). A tfjs model folder is
 *   exported on the fly and the export cached beside its model.json (onnx/cache.ts); a model in memory is
 *   exported in memory.
 * - `tfjs`: the tfjs engine (tfjs/runner.ts) on `backend`, as training uses, or on the `tfjsBackend` passed in.
 * - `auto` (the default): onnx when onnxruntime-node loads, else tfjs (the reason is kept in the engine line);
 *   a Colorizer or LayersModel passed in memory runs on tfjs, unless `onnx` is asked for.
 * A Runner passed in is used as it is, and an ONNX colorizer on ONNX Runtime; neither is released here.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { EngineUnavailableError, InvalidOptionError } from '../core/errors.js';
import { MODEL_RULE, RUN_RULE, insideFolder } from '../core/inside.js';
import type { Runner } from '../network/runner.js';
import { setupTfjs, type BackendChoice, type TfjsBackend } from '../tfjs/backend.js';
import { exportSourceOf, type Colorizer } from '../tfjs/network.js';
import { loadTfjsRunner, tfjsRunner, type InferenceModel, type SplitColorizer } from '../tfjs/runner.js';
import { exportOnnx } from '../onnx/export.js';
import { cachedOnnxRunner } from '../onnx/cache.js';
import { loadOnnxRunner, onnxRunner } from '../onnx/runner.js';
import type { OnnxColorizer, OnnxDevice, OnnxEngineOptions } from '../onnx/session.js';

export type { Runner, RunResult, RunShape } from '../network/runner.js';

export type Runtime = 'auto' | 'onnx' | 'tfjs';
export const RUNTIMES: readonly Runtime[] = ['auto', 'onnx', 'tfjs'];

/**
 * A model: a run directory, a model directory, a model.json or model.onnx, a loaded Colorizer, LayersModel or
 * ONNX colorizer (loadOnnxColorizer), or a Runner.
 */
export type ColorizeModel = string | Colorizer | SplitColorizer | InferenceModel | OnnxColorizer | Runner;

export interface LoadRunnerOptions {
  runtime?: Runtime;
  /** ONNX Runtime's device (default auto). */
  device?: OnnxDevice;
  /** The tfjs backend (default auto), when the runtime is tfjs. */
  backend?: BackendChoice;
  /** A tfjs backend already set up (its `tf` must be the one an in-memory model was built on). */
  tfjsBackend?: TfjsBackend;
  /** CPU threads for ONNX Runtime (default: the cores; colorize leaves one to its workers). */
  threads?: number;
}

/**
 * The file a model argument names: a .onnx or .json file; a directory holding model.json; a run directory
 * holding model/model.json (what `pipe train` writes). Found in a directory, the file must lie inside it (a run's
 * `model` link, or a model.json that is a link, leading out is refused: core/inside.ts).
 * @throws InvalidOptionError when there is none, or when the one found leads out of the directory.
 */
export async function resolveModelPath(p: string): Promise<string> {
  const st = await fsp.stat(p).catch(() => null);
  if (st?.isFile()) return path.resolve(p);
  if (st?.isDirectory()) {
    for (const [name, rule] of [['model.json', MODEL_RULE], [path.join('model', 'model.json'), RUN_RULE]] as const) {
      const c = path.join(p, name);
      if (await fsp.stat(c).then((s) => s.isFile(), () => false)) return insideFolder(path.resolve(p), name, p, 'the model', rule);
    }
    throw new InvalidOptionError(`Expected a model: no model.json in ${p} or ${path.join(p, 'model')}`);
  }
  throw new InvalidOptionError(`Expected a model directory, model.json or model.onnx for --model but ${p} does not exist`);
}

function isRunner(m: unknown): m is Runner {
  const r = m as Runner;
  return typeof r?.run === 'function' && typeof r.release === 'function' && typeof r.globalSize === 'number';
}

function isOnnx(m: unknown): m is OnnxColorizer {
  const o = m as OnnxColorizer;
  return typeof o?.inputSize === 'number' && typeof o.predict === 'function' && typeof o.release === 'function';
}

function isColorizer(m: unknown): m is Colorizer {
  const c = m as Colorizer;
  return typeof c?.infer?.getLayer === 'function' && c.table !== undefined;
}

function onnxOptions(o: LoadRunnerOptions): OnnxEngineOptions {
  return o.threads === undefined ? { device: o.device ?? 'auto' } : { device: o.device ?? 'auto', threads: o.threads };
}

async function tfjsBackendOf(o: LoadRunnerOptions): Promise<TfjsBackend> {
  return o.tfjsBackend ?? (await setupTfjs({ backend: o.backend ?? 'auto' }));
}

/**
 * The runner of a model on the runtime asked (see the module comment); its release frees what this call
 * loaded, never a model passed in.
 * @throws InvalidOptionError for a model that cannot run on the runtime asked or cannot be read;
 *   EngineUnavailableError when the runtime asked cannot start.
 * @example
 * const runner = await loadRunner('runs/demo', { runtime: 'auto' });
 * console.log(runner.describe);
 * await runner.release();
 */
export async function loadRunner(m: ColorizeModel, o: LoadRunnerOptions = {}): Promise<Runner> {
  const runtime = o.runtime ?? 'auto';
  if (isRunner(m)) {
    const { globalSize, describe, trainingScale } = m;
    return { globalSize, describe, trainingScale, run: (local, global, shape) => m.run(local, global, shape), release: async () => undefined };
  }
  if (isOnnx(m)) {
    if (runtime === 'tfjs') throw new InvalidOptionError('Expected a tfjs model for --engine tfjs but received an ONNX colorizer');
    return onnxRunner(m, { owned: false });
  }
  if (typeof m !== 'string') {
    if (runtime !== 'onnx') return tfjsRunner(m, await tfjsBackendOf(o));
    if (!isColorizer(m)) throw new InvalidOptionError('Expected a Colorizer for the onnx runtime (a bare LayersModel cannot be exported)');
    return loadOnnxRunner(exportOnnx(await exportSourceOf(m), { trainingScale: m.trainingScale }), onnxOptions(o), { trainingScale: m.trainingScale });
  }
  const file = await resolveModelPath(m);
  if (file.endsWith('.onnx')) {
    if (runtime === 'tfjs') throw new InvalidOptionError(`Expected a tfjs model (model.json) for --engine tfjs but received ${file}`);
    return loadOnnxRunner(file, onnxOptions(o));
  }
  if (runtime !== 'tfjs') {
    try {
      return await cachedOnnxRunner(file, onnxOptions(o));
    } catch (err) {
      if (runtime === 'onnx' || !(err instanceof EngineUnavailableError)) throw err;
      return loadTfjsRunner(file, await tfjsBackendOf(o), { note: ` [auto: onnx: ${err.short}]` });
    }
  }
  return loadTfjsRunner(file, await tfjsBackendOf(o));
}
