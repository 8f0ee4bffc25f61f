/**
 * tfjs IOHandlers for the local file system: a model is a directory holding model.json (topology and weights
 * manifest) and weights.bin, the tfjs Layers format that `tf.loadLayersModel` opens in Node or a browser.
 * Writes go where they are told: for an atomic checkpoint, save into a temporary directory and rename it.
 */
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { io } from '@tensorflow/tfjs-core';

export const WEIGHTS_FILE = 'weights.bin';

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

/** An IOHandler that reads a model.json (its path or its directory) and its weight files from disk. */
export function fileLoadHandler(path: string): io.IOHandler {
  return {
    async load(): Promise<io.ModelArtifacts> {
      let jsonPath = resolve(path);
      if ((await fsp.stat(jsonPath)).isDirectory()) jsonPath = join(jsonPath, 'model.json');
      const dir = resolve(jsonPath, '..');
      const modelJSON = JSON.parse(await fsp.readFile(jsonPath, 'utf8')) as io.ModelJSON;
      return io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
        const specs: io.WeightsManifestEntry[] = [];
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) {
            const b = await fsp.readFile(join(dir, p));
            buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
          }
        }
        return [specs, io.CompositeArrayBuffer.join(buffers)];
      });
    },
  };
}
