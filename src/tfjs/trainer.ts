/**
 * One training step of the colorization network (the pipeline's train stage calls it per batch).
 *
 * Loss (Iizuka et al. 2016, Eq. 4): MSE between the predicted ab (half resolution) and the target ab
 * downsampled to half resolution by 2x2 average pooling, plus alpha (the paper: 1/300) times the softmax
 * cross-entropy of the class logits, averaged over the samples that have a class (cls >= 0); 0 without a
 * classification head or without labels in the batch.
 *
 * Ownership: `step` creates the batch's tensors from its Float32Arrays and disposes them (and every
 * intermediate) before it resolves; the tensor count is the same after each step. Determinism: on the cpu and
 * wasm engines (wasm with any thread count: XNNPACK splits work by output tiles, reductions are serial), the
 * same weights, optimizer state and batch give bit-identical results (no randomness in the step; the optimizer
 * applies gradients in a fixed variable order).
 */
import type * as tfc from '@tensorflow/tfjs-core';
import type { Optimizer, Scalar, Tensor } from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { Config } from '../config.js';
import { InvalidOptionError, OutOfMemoryError } from '../core/errors.js';
import type { LabBatch } from '../types.js';
import { checkTrainMemory, isWasmMemoryFailure, wasmOomMessage } from './memory.js';
import { createOptimizer } from './optimizers.js';

/** tfjs's NamedTensor (not exported by tfjs-core's entry point): what Optimizer.getWeights returns. */
export interface NamedTensor {
  name: string;
  tensor: Tensor;
}

export interface StepResult {
  /** mse + alpha * ce */
  loss: number;
  mse: number;
  ce: number;
}

export interface EvalResult extends StepResult {
  /** Predicted ab, [size, height/2, width/2, 2], normalized like LabBatch.ab. */
  ab: Float32Array;
}

export interface Prediction {
  /** [size, height/2, width/2, 2] */
  ab: Float32Array;
  /** [size, numClasses], or null without a classification head. */
  logits: Float32Array | null;
}

export interface Trainer {
  /** One optimizer step on a batch (batch-norm in training mode: moving statistics updated). */
  step(batch: LabBatch): Promise<StepResult>;
  /** Loss and predictions in inference mode (no update), e.g. for validation. */
  evaluate(batch: LabBatch): Promise<EvalResult>;
  /** Inference-mode prediction for a batch of L at the training size. */
  predict(batch: Pick<LabBatch, 'L' | 'size' | 'height' | 'width'>): Promise<Prediction>;
  optimizer: Optimizer;
  /**
   * Copies of the optimizer state (iteration count, then the moments in variable order; tfjs's own layout),
   * owned by the caller, who disposes them. Only the iteration count before the first step.
   */
  getOptimizerWeights(): Promise<NamedTensor[]>;
  /** Restores state from getOptimizerWeights (the trainer copies what it keeps; the caller may dispose its tensors). */
  setOptimizerWeights(weights: NamedTensor[]): Promise<void>;
  /** Disposes the optimizer state (not the model). */
  dispose(): void;
}

/**
 * Creates the per-step training function for the train model of a Colorizer (network.ts). Throws
 * OutOfMemoryError up front when the engine is wasm and the batch cannot fit its 4 GiB (the message names a
 * batch size that fits), and InvalidOptionError for a config that does not match the model.
 */
export function createTrainer(model: LayersModel, config: Config, tf: typeof tfc): Trainer {
  const S = config.model.inputSize;
  const inShape = model.inputs[0]!.shape;
  if (inShape[1] !== S || inShape[2] !== S) {
    throw new InvalidOptionError(`Expected a train model with input ${S}x${S} (config.model.inputSize) but received ${inShape[1]}x${inShape[2]}`);
  }
  const numClasses = model.outputs.length > 1 ? model.outputs[1]!.shape[1]! : 0;
  const alpha = config.train.alpha;
  const backendName = tf.getBackend();
  if (backendName === 'wasm') checkTrainMemory(config.model, config.train.batch);

  const optimizer: Optimizer = createOptimizer(config.train);
  const vars = () => model.trainableWeights.map((w) => w.read() as tfc.Variable);

  const checkBatch = (b: Pick<LabBatch, 'L' | 'size' | 'height' | 'width'>) => {
    if (b.height !== S || b.width !== S) {
      throw new InvalidOptionError(`Expected ${S}x${S} batches (config.model.inputSize) but received ${b.height}x${b.width}`);
    }
    if (b.L.length !== b.size * S * S) throw new InvalidOptionError(`Expected L of length ${b.size * S * S} but received ${b.L.length}`);
  };

  /** Loss terms from the model outputs; every tensor lives in the caller's scope. */
  const lossTerms = (outs: Tensor | Tensor[], batch: LabBatch, target: Tensor): { total: Scalar; mse: Scalar; ce: Scalar } => {
    const [ab, logits] = Array.isArray(outs) ? outs : [outs];
    const mse = tf.mean(tf.squaredDifference(ab!, target)) as Scalar;
    let ce = tf.scalar(0);
    let labelled = 0;
    for (let i = 0; i < batch.size; i++) if (batch.cls[i]! >= 0) labelled++;
    if (logits && numClasses > 0 && labelled > 0) {
      const cls = batch.cls.subarray(0, batch.size);
      const mask = tf.tensor1d(Float32Array.from(cls, (c) => (c >= 0 ? 1 : 0)));
      const onehot = tf.oneHot(tf.tensor1d(Int32Array.from(cls, (c) => Math.max(c, 0)), 'int32'), numClasses);
      const nll = tf.neg(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), -1));
      ce = tf.div(tf.sum(tf.mul(nll, mask)), labelled) as Scalar;
    }
    const total = alpha > 0 ? (tf.add(mse, tf.mul(ce, alpha)) as Scalar) : mse;
    return { total, mse, ce };
  };

  const inputs = (batch: LabBatch) => {
    const n = batch.size;
    const L = tf.tensor4d(batch.L.subarray(0, n * S * S), [n, S, S, 1]);
    const abFull = tf.tensor4d(batch.ab.subarray(0, n * S * S * 2), [n, S, S, 2]);
    const target = tf.avgPool(abFull, 2, 2, 'valid');
    return { L, target };
  };

  const guard = async <T>(batch: Pick<LabBatch, 'size'>, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (err) {
      if (backendName === 'wasm' && isWasmMemoryFailure(err)) {
        throw new OutOfMemoryError(wasmOomMessage(config.model, batch.size, err), { cause: err });
      }
      throw err;
    }
  };

  const step = (batch: LabBatch) =>
    guard(batch, async () => {
      checkBatch(batch);
      const values = tf.tidy(() => {
        const { L, target } = inputs(batch);
        let kept: Tensor[] = [];
        const cost = optimizer.minimize(
          () => {
            const outs = model.apply(L, { training: true }) as Tensor | Tensor[];
            const { total, mse, ce } = lossTerms(outs, batch, target);
            kept = [tf.keep(mse), tf.keep(ce)];
            return total;
          },
          true,
          vars(),
        )!;
        const v = tf.stack([cost, kept[0]!, kept[1]!]);
        tf.dispose(kept);
        return v;
      });
      const [loss, mse, ce] = await values.data();
      values.dispose();
      return { loss: loss!, mse: mse!, ce: ce! };
    });

  const evaluate = (batch: LabBatch) =>
    guard(batch, async () => {
      checkBatch(batch);
      const [values, ab] = tf.tidy(() => {
        const { L, target } = inputs(batch);
        const outs = model.apply(L, { training: false }) as Tensor | Tensor[];
        const { total, mse, ce } = lossTerms(outs, batch, target);
        return [tf.stack([total, mse, ce]), Array.isArray(outs) ? outs[0]! : outs];
      });
      const [v, a] = await Promise.all([values.data(), ab.data()]);
      tf.dispose([values, ab]);
      return { loss: v[0]!, mse: v[1]!, ce: v[2]!, ab: a as Float32Array };
    });

  const predict = (batch: Pick<LabBatch, 'L' | 'size' | 'height' | 'width'>) =>
    guard(batch, async () => {
      checkBatch(batch);
      const outs = tf.tidy(() => {
        const L = tf.tensor4d(batch.L.subarray(0, batch.size * S * S), [batch.size, S, S, 1]);
        const o = model.apply(L, { training: false }) as Tensor | Tensor[];
        return Array.isArray(o) ? o : [o];
      });
      const data = await Promise.all(outs.map((t) => t.data()));
      tf.dispose(outs);
      return { ab: data[0] as Float32Array, logits: numClasses > 0 ? (data[1] as Float32Array) : null };
    });

  return {
    step,
    evaluate,
    predict,
    optimizer,
    async getOptimizerWeights() {
      const ws = await optimizer.getWeights();
      // getWeights returns the optimizer's live variables (and a fresh iteration scalar): copy, so the caller owns all.
      return ws.map((w) => ({ name: w.name, tensor: w.name === 'iter' ? w.tensor : tf.clone(w.tensor) }));
    },
    async setOptimizerWeights(weights) {
      // setWeights turns the tensors into variables without copying them: copy so the caller keeps ownership.
      const copies = weights.map((w) => ({ name: w.name, tensor: tf.clone(w.tensor) }));
      // The optimizer's previous moment variables are replaced, not disposed, by setWeights: dispose them here.
      const previous = await optimizer.getWeights();
      await optimizer.setWeights(copies);
      tf.dispose(previous.map((p) => p.tensor));
      tf.dispose(copies.map((c) => c.tensor));
    },
    dispose() {
      optimizer.dispose();
    },
  };
}
