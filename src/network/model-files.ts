/**
 * A model on disk: a folder holding model.json (the tfjs Layers format: topology, weights manifest, and
 * colorpipe's own keys) and weights.bin (float32, little-endian, in manifest order). `tf.loadLayersModel` opens
 * it in Node or a browser; colorpipe reads and writes it here without any engine, so every engine (tfjs,
 * PyTorch) and ONNX export share one reader and one writer.
 *
 * A model folder is untrusted input (models are downloaded): a weight file it names must be a plain relative
 * name inside the folder. An absolute path, a `..`, or a symbolic link that leads out is refused with one line
 * naming model.json and the field (core/inside.ts).
 */
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ModelConfig } from '../config.js';
import type { TrainingScale } from '../types.js';
import { withPath } from '../core/atomic.js';
import { InvalidOptionError, reasonOf } from '../core/errors.js';
import { insideFolder } from '../core/inside.js';
import { floatCount, type NamedWeight } from './weights.js';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_FILE = 'weights.bin';

interface ManifestEntry {
  name: string;
  shape: number[];
  dtype?: string;
}

/** model.json as colorpipe writes it (tfjs's ModelJSON plus the `colorpipe` key, which tfjs ignores). */
export interface ModelJson {
  modelTopology: unknown;
  format?: string;
  generatedBy?: string;
  convertedBy?: string;
  weightsManifest: Array<{ paths: string[]; weights: ManifestEntry[] }>;
  colorpipe?: { config?: ModelConfig; trainingScale?: TrainingScale };
  [key: string]: unknown;
}

/** A model.json and its weights, as read (any tfjs Layers model). */
export interface WeightFiles {
  /** The model.json read. */
  path: string;
  json: ModelJson;
  /** Every weight, in manifest order. */
  weights: NamedWeight[];
}

/** A colorpipe model as read: its weights, config and training scale. */
export interface ModelFiles extends WeightFiles {
  /** The model config colorpipe recorded, or (a model.json written by another tool) the one its weights imply. */
  config: ModelConfig;
  trainingScale?: TrainingScale;
}

/** The model.json a path names: the file itself, or model.json in a folder. */
export async function modelJsonPath(path: string): Promise<string> {
  const p = resolve(path);
  const st = await fsp.stat(p).catch((err: unknown) => {
    throw new InvalidOptionError(`Cannot read the model ${path}: ${reasonOf(err)}`);
  });
  return st.isDirectory() ? join(p, MODEL_JSON) : p;
}

/**
 * Reads a colorpipe model folder (or its model.json): the json, every weight, the config and training scale.
 * @throws InvalidOptionError (one line naming the file) as readWeightFiles, and for a model.json that is not
 *   a colorpipe model.
 */
export async function readModelFiles(path: string): Promise<ModelFiles> {
  const { path: jsonPath, json, weights } = await readWeightFiles(path);
  const recorded = json.colorpipe?.config;
  const config = recorded && typeof recorded === 'object' ? recorded : impliedConfig(json, weights, jsonPath);
  const files: ModelFiles = { path: jsonPath, json, weights, config };
  const scale = trainingScaleOf(json);
  if (scale) files.trainingScale = scale;
  return files;
}

/**
 * A model folder's (or model.json's) model.json: its path, bytes and parsed json.
 * @throws InvalidOptionError (one line naming the file) for a missing or malformed file, or one with no
 *   weightsManifest.
 */
export async function readModelJson(path: string): Promise<{ path: string; bytes: Buffer; json: ModelJson }> {
  const jsonPath = await modelJsonPath(path);
  let bytes: Buffer;
  let json: ModelJson;
  try {
    bytes = await fsp.readFile(jsonPath);
    json = JSON.parse(bytes.toString('utf8')) as ModelJson;
  } catch (err) {
    throw new InvalidOptionError(`Cannot read the model ${jsonPath}: ${reasonOf(err)}`);
  }
  if (json === null || typeof json !== 'object' || !Array.isArray(json.weightsManifest)) {
    throw new InvalidOptionError(`${jsonPath} is not a tfjs Layers model (no weightsManifest)`);
  }
  return { path: jsonPath, bytes, json };
}

/**
 * The weight files of each weightsManifest group, in order, each inside the model's folder (core/inside.ts).
 * @throws InvalidOptionError naming model.json and the field: a group with no paths or weights, or a path that
 *   is absolute, has a `..` or is a link leading out of the folder.
 */
export async function manifestFiles(jsonPath: string, json: ModelJson): Promise<string[][]> {
  const dir = resolve(jsonPath, '..');
  const files: string[][] = [];
  for (const [g, group] of json.weightsManifest.entries()) {
    if (!Array.isArray(group?.paths) || !Array.isArray(group.weights)) throw new InvalidOptionError(`${jsonPath}: weightsManifest[${g}] has no paths or weights`);
    const paths: string[] = [];
    for (const [i, p] of group.paths.entries()) paths.push(await insideFolder(dir, p, jsonPath, `weightsManifest[${g}].paths[${i}]`));
    files.push(paths);
  }
  return files;
}

/**
 * Reads any tfjs Layers model folder (or its model.json): the json and every weight.
 * @throws InvalidOptionError (one line naming the file) for a missing or malformed file, a weight file that
 *   leads out of the folder, a dtype other than float32, or weight files whose size does not match the manifest.
 */
export async function readWeightFiles(path: string): Promise<WeightFiles> {
  const { path: jsonPath, json } = await readModelJson(path);
  const files = await manifestFiles(jsonPath, json);
  const weights: NamedWeight[] = [];
  for (const [g, group] of json.weightsManifest.entries()) {
    const parts: Buffer[] = [];
    for (const file of files[g]!) {
      parts.push(await fsp.readFile(file).catch((err: unknown) => {
        throw new InvalidOptionError(`Cannot read the model's weights ${file}: ${reasonOf(err)}`);
      }));
    }
    const bytes = Buffer.concat(parts);
    for (const w of group.weights) {
      if ((w.dtype ?? 'float32') !== 'float32') throw new InvalidOptionError(`${jsonPath}: weight ${w.name} is ${w.dtype}; colorpipe reads float32 weights only`);
      if (!Array.isArray(w.shape) || w.shape.some((d) => !Number.isInteger(d) || d < 0)) throw new InvalidOptionError(`${jsonPath}: weight ${w.name} has no valid shape`);
    }
    const need = floatCount(group.weights) * 4;
    if (bytes.byteLength !== need) {
      throw new InvalidOptionError(`${jsonPath}: weightsManifest[${g}] needs ${need} bytes of weights, its files hold ${bytes.byteLength}`);
    }
    // One aligned copy of the group's bytes; each weight is a view of it.
    const all = new Float32Array(need / 4);
    new Uint8Array(all.buffer).set(bytes);
    let at = 0;
    for (const w of group.weights) {
      const n = floatCount([w]);
      weights.push({ name: w.name, shape: [...w.shape], data: all.subarray(at, at + n) });
      at += n;
    }
  }
  return { path: jsonPath, json, weights };
}

export interface WriteModelOptions {
  /** The Keras topology (topology.ts modelTopology). */
  topology: unknown;
  weights: NamedWeight[];
  config: ModelConfig;
  trainingScale?: TrainingScale;
}

/**
 * Writes model.json and weights.bin into `dir` (in place: for an atomic checkpoint, write into a temporary
 * folder and rename it). A failed write names its file (a full disk while writing weights.bin says weights.bin).
 */
export async function writeModelFiles(dir: string, o: WriteModelOptions): Promise<void> {
  const json: ModelJson = {
    modelTopology: o.topology,
    format: 'layers-model',
    generatedBy: 'colorpipe',
    convertedBy: 'colorpipe',
    weightsManifest: [{ paths: [WEIGHTS_FILE], weights: o.weights.map((w) => ({ name: w.name, shape: w.shape, dtype: 'float32' })) }],
    colorpipe: o.trainingScale ? { config: o.config, trainingScale: o.trainingScale } : { config: o.config },
  };
  await fsp.mkdir(dir, { recursive: true });
  const weightsPath = join(dir, WEIGHTS_FILE);
  const fh = await fsp.open(weightsPath, 'w').catch((err: unknown) => {
    throw withPath(err, weightsPath);
  });
  try {
    for (const w of o.weights) await fh.write(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength));
  } catch (err) {
    throw withPath(err, weightsPath);
  } finally {
    await fh.close();
  }
  const jsonPath = join(dir, MODEL_JSON);
  await fsp.writeFile(jsonPath, JSON.stringify(json)).catch((err: unknown) => {
    throw withPath(err, jsonPath);
  });
}

/**
 * The model config of a model.json colorpipe did not annotate: the global input's size from the topology, the
 * width from the first convolution's filters (64 x width), the classes from the class head's logits.
 */
function impliedConfig(json: ModelJson, weights: NamedWeight[], jsonPath: string): ModelConfig {
  const layers = (json.modelTopology as { config?: { layers?: Array<{ name?: string; config?: { batch_input_shape?: unknown[] } }> } } | null)?.config?.layers ?? [];
  const inputSize = layers.find((l) => l.name === 'global_L')?.config?.batch_input_shape?.[1];
  const conv1 = weights.find((w) => w.name === 'll_conv1/kernel');
  if (!Number.isInteger(inputSize) || !conv1) throw new InvalidOptionError(`${jsonPath} is not a colorpipe model (no global_L input or ll_conv1 weights)`);
  const cls = weights.find((w) => w.name === 'cls_out/kernel');
  return { inputSize: inputSize as number, width: conv1.shape[3]! / 64, numClasses: cls ? cls.shape[1]! : 0 };
}

/** The training scale recorded in a parsed model.json, or undefined (older models, or a malformed entry). */
export function trainingScaleOf(modelJson: unknown): TrainingScale | undefined {
  const s = (modelJson as { colorpipe?: { trainingScale?: Partial<TrainingScale> } } | null)?.colorpipe?.trainingScale;
  const ok = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1;
  return s && ok(s.shortSide) && ok(s.crop) ? { shortSide: s.shortSide, crop: s.crop } : undefined;
}
