/**
 * The training engine contract: what the training graph (src/train/graph.ts) needs of an engine, and nothing
 * engine-specific. Every method is async and data crosses as plain typed arrays, so an engine may run in this
 * thread (tfjs, src/tfjs/train-engine.ts) or in another process on another device (PyTorch, src/torch/). It lives
 * here, below the engines' rooms, so that each implements it (as the inference runner, runner.ts).
 *
 * Weights and optimizer moments cross in colorpipe's names and layout (src/network/weights.ts), which is what a
 * checkpoint stores: a run can stop on one engine and resume on another.
 *
 * Loss (Iizuka et al. 2016, Eq. 4): MSE between the predicted ab (half resolution) and the target ab averaged
 * over 2x2 blocks, plus alpha (1/300) times the cross-entropy of the class logits over the samples that have a
 * class (cls >= 0); 0 without a class head or labels.
 */
import type { LabBatch } from '../types.js';
import type { NamedWeight } from './weights.js';

export interface StepLosses {
  /** mse + alpha * ce */
  loss: number;
  mse: number;
  ce: number;
}

export interface Evaluation extends StepLosses {
  /** Predicted ab in inference mode, [size, height / 2, width / 2, 2], normalized like LabBatch.ab. */
  ab: Float32Array;
}

/**
 * An optimizer's state in colorpipe's terms: the step count and, per trainable weight W (canonical order), its
 * slots named `W/<slot>`: Adam `m` then `v` (all m first, then all v), Adadelta `accum_grad` then `accum_var`.
 */
export interface OptimizerState {
  iterations: number;
  slots: NamedWeight[];
}

export type EngineRuntime = 'tfjs' | 'torch' | 'onnx';

export interface TrainEngine {
  readonly runtime: EngineRuntime;
  /** cpu, webgpu or cuda. */
  readonly device: string;
  /** One line for logs: runtime, backend or device, threads, precision, ranks. */
  readonly describe: string;
  /** Ranks training together (data parallel): every rank steps on its own batch and they share weights. */
  readonly world: number;
  /** This process's rank among them (0 writes checkpoints). */
  readonly rank: number;
  /**
   * Steps the engine may have in flight: the train stage hands it the next batch before the previous step's
   * losses are back (1: one at a time). The engine applies steps in order.
   */
  readonly depth: number;
  /** One optimizer step (batch norm in training mode: moving statistics updated). */
  step(batch: LabBatch): Promise<StepLosses>;
  /** Losses and predictions in inference mode; changes nothing. */
  evaluate(batch: LabBatch): Promise<Evaluation>;
  /** Every weight, canonical order (src/network/weights.ts weightSpecs). */
  weights(): Promise<NamedWeight[]>;
  setWeights(weights: NamedWeight[]): Promise<void>;
  optimizerState(): Promise<OptimizerState>;
  setOptimizerState(state: OptimizerState): Promise<void>;
  /** Frees the engine (its memory, its processes). Idempotent. */
  release(): Promise<void>;
  /** Engines of several ranks (world > 1): every rank's `text`, in rank order, on rank 0 (null on the others). */
  gather?(text: string): Promise<string[] | null>;
  /**
   * Engines of several ranks: a local stop request (Ctrl-C) made a stop every rank takes after the same step
   * (the signal to give the train stage, and the step after which nothing may be in flight).
   */
  coordinateStop?(local: AbortSignal, startStep: number): { stop: AbortSignal; syncAfter: (step: number) => boolean };
}
