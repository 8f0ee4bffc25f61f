/**
 * Adam and Adadelta with one fused update kernel per variable (kernels/fused.ts) on wasm and cpu, the same
 * update composed from tfjs ops elsewhere.
 *
 * Weight names and order as tfjs's AdamOptimizer and AdadeltaOptimizer (getWeights: [iter, first moments...,
 * second moments...] / [iter, accumulated grads..., accumulated updates...]).
 * - Adam: tfjs's mathematics and defaults, except that the bias corrections 1 - beta^t are computed from the
 *   iteration count in double precision rather than kept as running float32 products, so a resumed run
 *   continues bit-identically from the saved iteration count.
 * - Adadelta: Zeiler 2012 as torch and Keras implement it (the paper trained with torch's): the update uses
 *   the NEW running average of g^2, eps = 1e-6. tfjs 4.22's AdadeltaOptimizer divides by the previous
 *   average, so its first step is u = g (with the paper's lr = 1, a step as large as the raw gradient).
 *
 * Why: tfjs's optimizers issue about 12 kernels per variable and step; on wasm with ~70 variables that was
 * ~800 calls of fixed overhead each step, more than the tiny network's whole forward pass.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedTensorMap, Tensor, Variable } from '@tensorflow/tfjs-core';
import type { TrainConfig } from '../config.js';
import { ADADELTA_UPDATE, ADAM_UPDATE, hasFusedKernels } from './kernels/fused.js';
import { ADADELTA_EPSILON, ADADELTA_RHO, ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON, cosineSchedule } from '../network/training.js';

export { ADAM_EPSILON };

interface NamedTensor {
  name: string;
  tensor: Tensor;
}
interface Slot {
  originalName: string;
  variable: Variable;
}

type Grads = NamedTensorMap | NamedTensor[];

function entries(g: Grads): Array<[string, Tensor | null]> {
  return Array.isArray(g) ? g.map((v) => [v.name, v.tensor]) : Object.keys(g).map((k) => [k, g[k] ?? null]);
}

abstract class FusedOptimizer extends tf.Optimizer {
  protected a: Slot[] = [];
  protected b: Slot[] = [];
  protected abstract readonly suffixes: [string, string];
  abstract readonly learningRate: number;
  /** Multiplier of the learning rate at iteration t (1-based); null: constant. A function of the iteration
   *  count alone, so a resumed run (its count restored from the checkpoint) continues the same schedule. */
  lrSchedule: ((t: number) => number) | null = null;

  protected lrAt(t: number): number {
    return this.learningRate * (this.lrSchedule ? this.lrSchedule(t) : 1);
  }

  protected slots(i: number, name: string, value: Variable): [Variable, Variable] {
    if (this.a[i] == null) this.a[i] = { originalName: `${name}/${this.suffixes[0]}`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
    if (this.b[i] == null) this.b[i] = { originalName: `${name}/${this.suffixes[1]}`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
    return [this.a[i]!.variable, this.b[i]!.variable];
  }

  override dispose(): void {
    tf.dispose([...this.a.map((s) => s.variable), ...this.b.map((s) => s.variable)]);
    this.a = [];
    this.b = [];
  }

  override async getWeights(): Promise<NamedTensor[]> {
    const vars = [...this.a, ...this.b];
    return [await this.saveIterations()].concat(vars.map((v) => ({ name: v.originalName, tensor: v.variable })));
  }

  override async setWeights(weightValues: NamedTensor[]): Promise<void> {
    weightValues = await this.extractIterations(weightValues);
    const n = weightValues.length / 2;
    this.a = weightValues.slice(0, n).map((v) => ({ originalName: v.name, variable: v.tensor.variable(false) }));
    this.b = weightValues.slice(n, 2 * n).map((v) => ({ originalName: v.name, variable: v.tensor.variable(false) }));
  }
}

export class ColorpipeAdam extends FusedOptimizer {
  static get className(): string {
    return 'ColorpipeAdam';
  }
  protected readonly suffixes: [string, string] = ['m', 'v'];

  constructor(
    readonly learningRate: number,
    readonly beta1 = ADAM_BETA1,
    readonly beta2 = ADAM_BETA2,
    readonly epsilon: number = ADAM_EPSILON,
  ) {
    super();
  }

  override applyGradients(variableGradients: Grads): void {
    const t = this.iterations + 1;
    const fused = hasFusedKernels(ADAM_UPDATE);
    entries(variableGradients).forEach(([name, g], i) => {
      const w = tf.engine().registeredVariables[name]!;
      const [m, v] = this.slots(i, name, w);
      if (g == null) return;
      tf.tidy(() => {
        if (fused) {
          const [w2, m2, v2] = tf.engine().runKernel(ADAM_UPDATE, { w, g, m, v }, {
            lr: this.lrAt(this.iterations + 1),
            beta1: this.beta1,
            beta2: this.beta2,
            epsilon: this.epsilon,
            t,
          }) as Tensor[];
          m.assign(m2!);
          v.assign(v2!);
          w.assign(w2!);
        } else {
          const m2 = tf.add(tf.mul(m, this.beta1), tf.mul(g, 1 - this.beta1));
          const v2 = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
          const mh = tf.div(m2, 1 - Math.pow(this.beta1, t));
          const vh = tf.div(v2, 1 - Math.pow(this.beta2, t));
          m.assign(m2);
          v.assign(v2);
          w.assign(tf.sub(w, tf.mul(tf.div(mh, tf.add(tf.sqrt(vh), this.epsilon)), this.lrAt(this.iterations + 1))));
        }
      });
    });
    this.incrementIterations();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon };
  }
}

export class ColorpipeAdadelta extends FusedOptimizer {
  static get className(): string {
    return 'ColorpipeAdadelta';
  }
  protected readonly suffixes: [string, string] = ['accum_grad', 'accum_var'];

  constructor(
    readonly learningRate: number,
    readonly rho = ADADELTA_RHO,
    readonly epsilon = ADADELTA_EPSILON,
  ) {
    super();
  }

  override applyGradients(variableGradients: Grads): void {
    const fused = hasFusedKernels(ADADELTA_UPDATE);
    entries(variableGradients).forEach(([name, g], i) => {
      const w = tf.engine().registeredVariables[name]!;
      const [ag, au] = this.slots(i, name, w);
      if (g == null) return;
      tf.tidy(() => {
        if (fused) {
          const [w2, ag2, au2] = tf.engine().runKernel(ADADELTA_UPDATE, { w, g, ag, au }, {
            lr: this.lrAt(this.iterations + 1),
            rho: this.rho,
            epsilon: this.epsilon,
          }) as Tensor[];
          ag.assign(ag2!);
          au.assign(au2!);
          w.assign(w2!);
        } else {
          const ag2 = tf.add(tf.mul(ag, this.rho), tf.mul(tf.square(g), 1 - this.rho));
          const u = tf.mul(tf.div(tf.sqrt(tf.add(au, this.epsilon)), tf.sqrt(tf.add(ag2, this.epsilon))), g);
          const au2 = tf.add(tf.mul(au, this.rho), tf.mul(tf.square(u), 1 - this.rho));
          ag.assign(ag2);
          au.assign(au2);
          w.assign(tf.sub(w, tf.mul(u, this.lrAt(this.iterations + 1))));
        }
      });
    });
    this.incrementIterations();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, rho: this.rho, epsilon: this.epsilon };
  }
}

/** The optimizer a training config asks for: Adam (the seed) or Adadelta (the paper), at config.lr. */
export function createOptimizer(train: Pick<TrainConfig, 'optimizer' | 'lr'> & Partial<Pick<TrainConfig, 'lrDecay' | 'steps'>>): tf.Optimizer {
  const o = train.optimizer === 'adadelta' ? new ColorpipeAdadelta(train.lr) : new ColorpipeAdam(train.lr);
  if (train.lrDecay === 'cosine' && train.steps) o.lrSchedule = cosineSchedule(train.steps);
  return o;
}
