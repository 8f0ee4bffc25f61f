/**
 * The model colorize runs, and on which runtime: what a `--model` argument names (a run directory, a model
 * directory or model.json, an exported model.onnx, or a model already loaded), loaded for the runtime asked:
 *
 * - `onnx`: ONNX Runtime (src/model/onnx/engine.ts) on `device` (cpu, webgpu, cuda, auto). A tfjs model is
 *   exported on the fly (src/model/onnx/export.ts) and the export is cached beside its model.json as
 *   model.onnx, with model.onnx.json recording the SHA-256 of the model.json and weights it came from and the
 *   colorpipe version: a later run reuses it, a changed model rebuilds it. Where the directory cannot be
 *   written the export is used from memory. `pipe export` writes the same graph on request.
 * - `tfjs`: the tfjs engine (`backend`), as training uses.
 * - `auto` (the default): onnx when onnxruntime-node loads, else tfjs (the reason is kept in the engine line);
 *   a Colorizer or LayersModel passed in memory runs on tfjs, unless `onnx` is asked for.
 *
 * Both give predict.ts what it needs (a model and, for tfjs, the engine's tf) and the training scale the model
 * records (colorize's default resolution).
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { EngineUnavailableError, InvalidOptionError, reasonOf } from '../core/errors.js';
import { writeFileAtomic } from '../core/atomic.js';
import type { TrainingScale } from '../types.js';
import { setupEngine, type BackendChoice, type Engine } from '../tfjs/backend.js';
import { colorizerWeights, disposeColorizer, loadColorizer, trainingScaleOf, type Colorizer } from '../tfjs/network.js';
import { readModelFiles } from '../network/model-files.js';
import { colorpipeVersion, exportOnnx, META } from '../onnx/export.js';
import { loadOnnxColorizer, type OnnxColorizer, type OnnxDevice } from '../onnx/session.js';
import { isOnnx, type InferenceModel, type PredictTf, type SplitColorizer } from './predict.js';

export type Runtime = 'auto' | 'onnx' | 'tfjs';
export const RUNTIMES: readonly Runtime[] = ['auto', 'onnx', 'tfjs'];

/**
 * A model: a run directory, a model directory, a model.json or model.onnx, or a loaded Colorizer, LayersModel
 * or ONNX colorizer (loadOnnxColorizer).
 */
export type ColorizeModel = string | Colorizer | SplitColorizer | InferenceModel | OnnxColorizer;

export interface LoadModelOptions {
  runtime?: Runtime;
  /** ONNX Runtime's device (default auto). */
  device?: OnnxDevice;
  /** The tfjs backend (default auto), when the runtime is tfjs. */
  backend?: BackendChoice;
  /** A tfjs engine already set up (used for tfjs, and to read weights for an export). */
  engine?: Engine;
  /** CPU threads for ONNX Runtime (default: the cores; colorize leaves one to its workers). */
  threads?: number;
}

export interface LoadedModel {
  model: SplitColorizer | InferenceModel | OnnxColorizer;
  /** tfjs-core, for a tfjs model; undefined for ONNX. */
  tf?: PredictTf;
  /** The engine line: runtime, device or backend, and why auto chose it. */
  describe: string;
  trainingScale?: TrainingScale;
  /** Frees what this call loaded (never a model passed in). */
  release(): Promise<void>;
}

/**
 * The file a model argument names: a .onnx or .json file; a directory holding model.json; a run directory
 * holding model/model.json (what `pipe train` writes).
 * @throws InvalidOptionError when there is none.
 */
export async function resolveModelPath(p: string): Promise<string> {
  const st = await fsp.stat(p).catch(() => null);
  if (st?.isFile()) return path.resolve(p);
  if (st?.isDirectory()) {
    for (const c of [path.join(p, 'model.json'), path.join(p, 'model', 'model.json')]) {
      if (await fsp.stat(c).then((s) => s.isFile(), () => false)) return path.resolve(c);
    }
    throw new InvalidOptionError(`Expected a model: no model.json in ${p} or ${path.join(p, 'model')}`);
  }
  throw new InvalidOptionError(`Expected a model directory, model.json or model.onnx for --model but ${p} does not exist`);
}

/** Loads the model for the runtime asked (see the module comment). */
export async function loadModel(m: ColorizeModel, o: LoadModelOptions = {}): Promise<LoadedModel> {
  const runtime = o.runtime ?? 'auto';
  if (isOnnx(m)) {
    if (runtime === 'tfjs') throw new InvalidOptionError('Expected a tfjs model for --engine tfjs but received an ONNX colorizer');
    const r: LoadedModel = { model: m, describe: m.describe, release: async () => undefined };
    const scale = scaleFromMetadata(m.metadata);
    if (scale) r.trainingScale = scale;
    return r;
  }
  if (typeof m !== 'string') {
    if (runtime !== 'onnx') return tfjsLoaded(m, await tfjsEngine(o), (m as Partial<Colorizer>).trainingScale, async () => undefined);
    if (!isColorizer(m)) throw new InvalidOptionError('Expected a Colorizer for the onnx runtime (a bare LayersModel cannot be exported)');
    const onnx = await loadOnnxColorizer(exportOnnx({ config: m.config, weights: await colorizerWeights(m) }, exportOptions(m.trainingScale)), onnxOptions(o));
    return onnxLoaded(onnx, m.trainingScale, '');
  }
  const file = await resolveModelPath(m);
  if (file.endsWith('.onnx')) {
    if (runtime === 'tfjs') throw new InvalidOptionError(`Expected a tfjs model (model.json) for --engine tfjs but received ${file}`);
    const onnx = await loadOnnxColorizer(file, onnxOptions(o));
    return onnxLoaded(onnx, scaleFromMetadata(onnx.metadata), '');
  }
  if (runtime !== 'tfjs') {
    try {
      return await onnxFromTfjs(file, o);
    } catch (err) {
      if (runtime === 'onnx' || !(err instanceof EngineUnavailableError)) throw err;
      const loaded = await tfjsFromFile(file, o);
      loaded.describe += ` [auto: onnx: ${err.short}]`;
      return loaded;
    }
  }
  return tfjsFromFile(file, o);
}

function isColorizer(m: unknown): m is Colorizer {
  const c = m as Colorizer;
  return typeof c?.infer?.getLayer === 'function' && c.table !== undefined;
}

function onnxOptions(o: LoadModelOptions): { device: OnnxDevice; threads?: number } {
  return o.threads === undefined ? { device: o.device ?? 'auto' } : { device: o.device ?? 'auto', threads: o.threads };
}

function exportOptions(scale: TrainingScale | undefined): { trainingScale?: TrainingScale } {
  return scale ? { trainingScale: scale } : {};
}

async function tfjsEngine(o: LoadModelOptions): Promise<Engine> {
  return o.engine ?? (await setupEngine({ backend: o.backend ?? 'auto' }));
}

function tfjsLoaded(model: SplitColorizer | InferenceModel, engine: Engine, scale: TrainingScale | undefined, release: () => Promise<void>): LoadedModel {
  const r: LoadedModel = { model, tf: engine.tf, describe: `tfjs ${engine.describe}`, release };
  if (scale) r.trainingScale = scale;
  return r;
}

function onnxLoaded(onnx: OnnxColorizer, scale: TrainingScale | undefined, note: string): LoadedModel {
  const r: LoadedModel = { model: onnx, describe: onnx.describe + note, release: () => onnx.release() };
  if (scale) r.trainingScale = scale;
  return r;
}

async function loadTfjsColorizer(file: string): Promise<Colorizer> {
  try {
    return await loadColorizer(file);
  } catch (err) {
    if (err instanceof InvalidOptionError) throw err;
    throw new InvalidOptionError(`Cannot load the model ${file}: ${reasonOf(err)}`);
  }
}

async function tfjsFromFile(file: string, o: LoadModelOptions): Promise<LoadedModel> {
  const engine = await tfjsEngine(o);
  const c = await loadTfjsColorizer(file);
  return tfjsLoaded(c, engine, c.trainingScale, async () => disposeColorizer(c));
}

/** The SHA-256 of a tfjs model's files and the colorpipe version: what the cached export was built from. */
async function sourceDigest(modelJson: string): Promise<string> {
  const h = createHash('sha256').update(colorpipeVersion()).update('\0');
  const json = await fsp.readFile(modelJson);
  h.update(json);
  const manifest = (JSON.parse(json.toString('utf8')) as { weightsManifest?: { paths: string[] }[] }).weightsManifest ?? [];
  for (const group of manifest) for (const p of group.paths) h.update(await fsp.readFile(path.join(path.dirname(modelJson), p)));
  return h.digest('hex');
}

/** The ONNX export of a tfjs model, from the cache beside it when it is current, else exported (and cached). */
async function onnxFromTfjs(modelJson: string, o: LoadModelOptions): Promise<LoadedModel> {
  const dir = path.dirname(await fsp.realpath(modelJson));
  const cache = path.join(dir, 'model.onnx');
  const stamp = path.join(dir, 'model.onnx.json');
  const digest = await sourceDigest(modelJson);
  const cached = await fsp
    .readFile(stamp, 'utf8')
    .then((s) => (JSON.parse(s) as { source?: string }).source === digest)
    .catch(() => false);
  if (cached && (await fsp.stat(cache).then((s) => s.isFile(), () => false))) {
    const onnx = await loadOnnxColorizer(cache, onnxOptions(o));
    return onnxLoaded(onnx, scaleFromMetadata(onnx.metadata), '');
  }
  const m = await readModelFiles(modelJson);
  const bytes = exportOnnx({ config: m.config, weights: m.weights, source: m.path }, exportOptions(m.trainingScale));
  // Load first: a runtime that cannot start (EngineUnavailableError) leaves no cache behind to explain.
  const onnx = await loadOnnxColorizer(bytes, onnxOptions(o));
  let note = '';
  try {
    await writeFileAtomic(cache, bytes);
    await writeFileAtomic(stamp, JSON.stringify({ source: digest, from: path.basename(modelJson), version: colorpipeVersion() }) + '\n');
  } catch (err) {
    note = ` (export not cached: ${reasonOf(err)})`;
  }
  return onnxLoaded(onnx, m.trainingScale, note);
}

/** The training scale an exported model records in its metadata (export.ts writes it as JSON). */
export function scaleFromMetadata(meta: Readonly<Record<string, string>>): TrainingScale | undefined {
  const raw = meta[META.trainingScale];
  if (raw === undefined) return undefined;
  try {
    // The same record and checks as model.json's (network.ts).
    return trainingScaleOf({ colorpipe: { trainingScale: JSON.parse(raw) as unknown } });
  } catch {
    return undefined;
  }
}
