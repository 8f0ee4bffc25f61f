/**
 * tfjs IOHandlers for the local file system: a model is a directory holding model.json (topology and weights
 * manifest) and weights.bin, the tfjs Layers format that `tf.loadLayersModel` opens in Node or a browser.
 * Writes go where they are told: for an atomic checkpoint, save into a temporary directory and rename it.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { io } from '@tensorflow/tfjs-core';
import { readWeightFiles } from '../network/model-files.js';

export { WEIGHTS_FILE } from '../network/model-files.js';
import { WEIGHTS_FILE } from '../network/model-files.js';

/**
 * An IOHandler that writes model.json + weights.bin into `dir`. `extra` adds top-level keys to model.json
 * (colorpipe stores its model config there; tfjs ignores unknown keys).
 */
export function fileSaveHandler(dir: string, extra: Record<string, unknown> = {}): io.IOHandler {
  return {
    async save(artifacts: io.ModelArtifacts): Promise<io.SaveResult> {
      const weightData = io.CompositeArrayBuffer.join(artifacts.weightData ?? new ArrayBuffer(0));
      const modelJSON: io.ModelJSON = {
        modelTopology: artifacts.modelTopology as object,
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? 'TensorFlow.js',
        convertedBy: 'colorpipe',
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
        ...extra,
      };
      if (artifacts.userDefinedMetadata) modelJSON.userDefinedMetadata = artifacts.userDefinedMetadata;
      await fsp.mkdir(dir, { recursive: true });
      await fsp.writeFile(join(dir, WEIGHTS_FILE), new Uint8Array(weightData));
      await fsp.writeFile(join(dir, 'model.json'), JSON.stringify(modelJSON));
      return { modelArtifactsInfo: io.getModelArtifactsInfoForJSON(artifacts) };
    },
  };
}

/**
 * An IOHandler that reads a model.json (its path or its directory) and its weight files from disk, through
 * colorpipe's reader (src/network/model-files.ts): a weight file must lie inside the model's folder.
 */
export function fileLoadHandler(path: string): io.IOHandler {
  return {
    async load(): Promise<io.ModelArtifacts> {
      const m = await readWeightFiles(path);
      const weights = m.weights;
      const data = new Float32Array(weights.reduce((a, w) => a + w.data.length, 0));
      let at = 0;
      for (const w of weights) {
        data.set(w.data, at);
        at += w.data.length;
      }
      return io.getModelArtifactsForJSON(m.json as unknown as io.ModelJSON, async () => [
        weights.map((w) => ({ name: w.name, shape: w.shape, dtype: 'float32' as const })),
        data.buffer,
      ]);
    },
  };
}
