/**
 * The models the colorize view offers and their ONNX exports. A run's model (runs.ts runModel) or a model given
 * by path (a model.json, exported here, or a .onnx, sent as it is) becomes a models.json entry (web/api.ts
 * ModelEntry) and, on request, the bytes onnxruntime-web runs: the same export `pipe export` writes and colorize
 * caches (onnx/export.ts, from the model files as data: no engine loads). Exports are made in memory, never
 * written into a run (the server only reads), and the last few are kept by version.
 */
import { promises as fsp } from 'node:fs';
import { basename, dirname, extname } from 'node:path';
import { readModelFiles } from '../network/model-files.js';
import { exportOnnx, META, type ExportOptions } from '../onnx/export.js';
import { decodeModel } from '../onnx/proto.js';
import { scaleFromMetadata } from '../onnx/runner.js';
import type { TrainingScale } from '../types.js';
import type { ModelEntry } from '../web/api.js';
import { runModel, type RunRef } from './runs.js';

/** A model the page offers: a run's current model, or a file given by path (model.json or .onnx). */
export type ModelSource = { name: string; run: RunRef } | { name: string; file: string };

/** A model found: its version (changes with the weights) and how to get its ONNX bytes. */
export interface FoundModel {
  version: string;
  inputSize?: number;
  trainingScale?: TrainingScale;
  step?: number;
  /** The ONNX export: { bytes, inputSize, trainingScale }. */
  onnx(): Promise<OnnxExport>;
}

export interface OnnxExport {
  bytes: Uint8Array;
  inputSize: number;
  trainingScale?: TrainingScale;
}

/** ONNX bytes of a model.json (exported with `options`) or a .onnx file (read), with what its metadata says. */
export async function onnxOf(path: string, options: Omit<ExportOptions, 'trainingScale'> = {}): Promise<OnnxExport> {
  if (extname(path).toLowerCase() === '.onnx') {
    const bytes = new Uint8Array(await fsp.readFile(path));
    const meta = Object.fromEntries((decodeModel(bytes).metadataProps ?? []).map((p) => [p.key ?? '', p.value ?? '']));
    const inputSize = Number(meta[META.inputSize]);
    if (!Number.isInteger(inputSize)) throw new Error(`${path} is not a colorpipe export (no ${META.inputSize} in its metadata)`);
    const trainingScale = scaleFromMetadata(meta);
    return { bytes, inputSize, ...(trainingScale ? { trainingScale } : {}) };
  }
  const m = await readModelFiles(path);
  const bytes = exportOnnx({ config: m.config, weights: m.weights, source: m.path }, { ...options, ...(m.trainingScale ? { trainingScale: m.trainingScale } : {}) });
  return { bytes, inputSize: m.config.inputSize, ...(m.trainingScale ? { trainingScale: m.trainingScale } : {}) };
}

/** Exports by version, the last `max` kept; one export at a time per version however many ask. */
export class ExportCache {
  private readonly held = new Map<string, Promise<OnnxExport>>();
  constructor(private readonly max = 4) {}

  get(key: string, make: () => Promise<OnnxExport>): Promise<OnnxExport> {
    let p = this.held.get(key);
    if (p) {
      this.held.delete(key);
      this.held.set(key, p);
      return p;
    }
    p = make();
    this.held.set(key, p);
    // A failed export (a checkpoint removed while it was read) is not kept: the next request tries again.
    p.catch(() => this.held.delete(key));
    while (this.held.size > this.max) this.held.delete(this.held.keys().next().value!);
    return p;
  }
}

/** A source's current model, or null while there is none (a run before its first checkpoint). */
export async function findModel(src: ModelSource, cache: ExportCache): Promise<FoundModel | null> {
  if ('run' in src) {
    const m = await runModel(src.run);
    if (!m) return null;
    const key = `${m.modelJson}@${m.version}`;
    return { ...m, onnx: () => cache.get(key, () => onnxOf(m.modelJson)) };
  }
  const stat = await fsp.stat(src.file).catch(() => null);
  if (!stat?.isFile()) return null;
  const version = `${basename(dirname(src.file))}@${Math.floor(stat.mtimeMs)}`;
  const key = `${src.file}@${version}`;
  return { version, onnx: () => cache.get(key, () => onnxOf(src.file)) };
}

/** The models.json entry of a model found; its size and scale from the export when model.json did not say. */
export async function modelEntry(src: ModelSource, found: FoundModel, url: string): Promise<ModelEntry> {
  let { inputSize, trainingScale } = found;
  if (inputSize === undefined) ({ inputSize, trainingScale } = await found.onnx());
  return {
    name: src.name, url, version: found.version, inputSize,
    ...(trainingScale ? { trainingScale } : {}), ...(found.step !== undefined ? { step: found.step } : {}),
  };
}
