/**
 * The tfjs training engine: the training engine contract (src/network/train-engine.ts) over a Colorizer and its trainer
 * (trainer.ts) on a tfjs backend (backend.ts), in this thread. Weights and optimizer slots cross in
 * colorpipe's names and layout (src/network/weights.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Config } from '../config.js';
import type { LabBatch } from '../types.js';
import { InvalidOptionError } from '../core/errors.js';
import { slotNames } from '../network/training.js';
import type { NamedWeight } from '../network/weights.js';
import type { TrainEngine } from '../network/train-engine.js';
import type { TfjsBackend } from './backend.js';
import { buildColorizer, colorizerWeights, disposeColorizer, setColorizerWeights, type Colorizer } from './network.js';
import { createTrainer, type NamedTensor } from './trainer.js';

export interface TfjsTrainEngine extends TrainEngine {
  readonly runtime: 'tfjs';
  /** The tfjs backend's name (wasm, webgpu, cpu, tensorflow). */
  readonly backend: string;
  /** The model trained (tests, benchmarks). */
  readonly colorizer: Colorizer;
}

/**
 * A tfjs training engine for `config` on a backend already set up: the network built from the layer table with
 * the config's seed. Throws OutOfMemoryError up front when the batch cannot fit the wasm heap (trainer.ts).
 */
export function tfjsTrainEngine(backend: TfjsBackend, config: Config): TfjsTrainEngine {
  const colorizer = buildColorizer(config.model, { seed: config.train.seed });
  const trainer = createTrainer(colorizer.train, config, backend.tf);
  // The optimizer keeps one slot pair per trainable variable, in this order (trainer.ts minimizes over it).
  const trainable = colorizer.train.trainableWeights.map((w) => ({ name: w.originalName, shape: [...w.shape] as number[] }));
  const [s0, s1] = slotNames(config.train.optimizer);
  let released = false;

  return {
    runtime: 'tfjs',
    device: backend.name === 'webgpu' ? 'webgpu' : backend.name === 'tensorflow' ? 'tensorflow' : 'cpu',
    describe: `tfjs ${backend.describe}`,
    world: 1,
    rank: 0,
    depth: 1,
    backend: backend.name,
    colorizer,
    step: (b) => trainer.step(b),
    evaluate: (b) => trainer.evaluate(b),
    weights: () => colorizerWeights(colorizer),
    setWeights: async (w) => setColorizerWeights(colorizer, w, 'the checkpoint'),
    async optimizerState() {
      const ws = await trainer.getOptimizerWeights();
      try {
        const iterations = (await ws[0]!.tensor.data())[0]!;
        const moments = ws.slice(1);
        const slots: NamedWeight[] = [];
        for (const [g, suffix] of [s0, s1].entries()) {
          for (const [i, w] of trainable.entries()) {
            // Before the first step the optimizer has made no slots yet: they are zeros.
            const t = moments[g * trainable.length + i]?.tensor;
            const data = t ? ((await t.data()) as Float32Array).slice() : new Float32Array(w.shape.reduce((a, b) => a * b, 1));
            slots.push({ name: `${w.name}/${suffix}`, shape: w.shape, data });
          }
        }
        return { iterations, slots };
      } finally {
        tf.dispose(ws.map((w) => w.tensor));
      }
    },
    async setOptimizerState(state) {
      const byName = new Map(state.slots.map((s) => [s.name, s]));
      const named: NamedTensor[] = [{ name: 'iter', tensor: tf.scalar(state.iterations, 'int32') }];
      for (const suffix of [s0, s1]) {
        for (const w of trainable) {
          const s = byName.get(`${w.name}/${suffix}`);
          if (!s || s.data.length !== w.shape.reduce((a, b) => a * b, 1)) {
            tf.dispose(named.map((n) => n.tensor));
            throw new InvalidOptionError(`The checkpoint's optimizer state has no ${w.name}/${suffix} of shape [${w.shape.join(', ')}] (${config.train.optimizer})`);
          }
          named.push({ name: `${w.name}/${suffix}`, tensor: tf.tensor(s.data, w.shape, 'float32') });
        }
      }
      try {
        await trainer.setOptimizerWeights(named);
      } finally {
        tf.dispose(named.map((n) => n.tensor));
      }
    },
    async release() {
      if (released) return;
      released = true;
      trainer.dispose();
      disposeColorizer(colorizer);
    },
  };
}
