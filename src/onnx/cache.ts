/**
 * The ONNX export of a tfjs model folder, cached beside its model.json as model.onnx, with model.onnx.json
 * recording the SHA-256 of the model.json and weights it came from and the colorpipe version: a later run
 * reuses it, a changed model rebuilds it. Where the folder cannot be written the export is used from memory
 * (the runner's engine line says why). `pipe export` writes the same graph on request. Only the stamp's `source`
 * is read back (`from` is a note for people), and neither cache file is followed when it is a link.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { reasonOf } from '../core/errors.js';
import { writeFileAtomic } from '../core/atomic.js';
import { colorpipeVersion } from '../core/version.js';
import { manifestFiles, readModelFiles, readModelJson } from '../network/model-files.js';
import type { Runner } from '../network/runner.js';
import { exportOnnx } from './export.js';
import { loadOnnxColorizer, type OnnxEngineOptions } from './session.js';
import { loadOnnxRunner, onnxRunner } from './runner.js';

/**
 * The SHA-256 of a tfjs model's files and the colorpipe version: what the cached export was built from. The
 * weight files are those model.json names inside its folder (a path leading out is refused, not read).
 */
async function sourceDigest(modelJson: string): Promise<string> {
  const h = createHash('sha256').update(colorpipeVersion()).update('\0');
  const { path: jsonPath, bytes, json } = await readModelJson(modelJson);
  h.update(bytes);
  for (const group of await manifestFiles(jsonPath, json)) for (const file of group) h.update(await fsp.readFile(file));
  return h.digest('hex');
}

/** Whether `file` is a plain file (a link is not: the cache is colorpipe's own file, replaced, never followed). */
async function plainFile(file: string): Promise<boolean> {
  return fsp.lstat(file).then((s) => s.isFile(), () => false);
}

/**
 * The ONNX Runtime runner of a model.json: from the cache beside it when it is current, else exported (and
 * cached).
 * @throws InvalidOptionError for a model that cannot be read; EngineUnavailableError when ONNX Runtime cannot
 *   start (nothing is cached then).
 */
export async function cachedOnnxRunner(modelJson: string, engine: OnnxEngineOptions = {}): Promise<Runner> {
  const dir = path.dirname(await fsp.realpath(modelJson));
  const cache = path.join(dir, 'model.onnx');
  const stamp = path.join(dir, 'model.onnx.json');
  const digest = await sourceDigest(modelJson);
  const cached = (await plainFile(stamp)) && await fsp
    .readFile(stamp, 'utf8')
    .then((s) => (JSON.parse(s) as { source?: string }).source === digest)
    .catch(() => false);
  if (cached && (await plainFile(cache))) return loadOnnxRunner(cache, engine);
  const m = await readModelFiles(modelJson);
  const bytes = exportOnnx({ config: m.config, weights: m.weights, source: m.path }, { trainingScale: m.trainingScale });
  // Load first: a runtime that cannot start (EngineUnavailableError) leaves no cache behind to explain.
  const onnx = await loadOnnxColorizer(bytes, engine);
  let note = '';
  try {
    await writeFileAtomic(cache, bytes);
    await writeFileAtomic(stamp, JSON.stringify({ source: digest, from: path.basename(modelJson), version: colorpipeVersion() }) + '\n');
  } catch (err) {
    note = ` (export not cached: ${reasonOf(err)})`;
  }
  return onnxRunner(onnx, { trainingScale: m.trainingScale, note });
}
