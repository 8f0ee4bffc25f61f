/**
 * colorpipe's custom Keras-style layers. Registered with tfjs's serialization registry by `registerLayers()`
 * so `tf.loadLayersModel` (and `loadColorizer`) can open a saved colorizer: call it before loading a model
 * in any other program (a browser page included).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Tensor, Tensor1D, Tensor2D, Tensor4D } from '@tensorflow/tfjs-core';
import type { LayerVariable } from '@tensorflow/tfjs-layers';
import { BN_TRAIN, hasFusedKernels } from './kernels/fused.js';

type Shape = (number | null)[];

/**
 * The paper's fusion layer (Iizuka et al. 2016, Sec. 3.2, Eq. 1), without its weights: the global feature
 * vector [B, Cg] is replicated at every position of the mid-level map [B, H, W, Cm] and concatenated to it,
 * giving [B, H, W, Cm + Cg]; the 1x1 convolution (ReLU) that follows is an ordinary Conv2D layer. H and W may
 * differ from the training size: that is how the network colorizes images of any resolution.
 *
 * The replication's gradient is the sum of dy over H and W (one reduction), not tfjs's Tile gradient, which
 * slices and adds H*W times.
 */
export class FusionLayer extends tfl.layers.Layer {
  static readonly className = 'ColorpipeFusion';

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const [mid, glob] = inputShape as Shape[];
    const cm = mid![3];
    const cg = glob![1];
    return [mid![0]!, mid![1]!, mid![2]!, cm == null || cg == null ? null : cm + cg] as Shape;
  }

  override call(inputs: Tensor | Tensor[]): Tensor {
    return tf.tidy(() => {
      const [mid, glob] = inputs as [Tensor4D, Tensor2D];
      const [, h, w] = mid.shape;
      const tiled = replicate(glob, h, w);
      return tf.concat([mid, tiled], 3);
    });
  }

  override getClassName(): string {
    return FusionLayer.className;
  }
}

/** [B, C] -> [B, h, w, C] with a reduction as gradient. */
function replicate(g: Tensor2D, h: number, w: number): Tensor4D {
  const f = tf.customGrad(((x: Tensor) => {
    const [b, c] = x.shape as [number, number];
    const value = tf.tile(tf.reshape(x, [b, 1, 1, c]), [1, h, w, 1]) as Tensor4D;
    return { value, gradFunc: (dy: Tensor) => tf.reshape(tf.sum(dy, [1, 2]), [b, c]) };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return f(g) as Tensor4D;
}

export interface BatchNormArgs {
  name: string;
  /** Added to the variance (torch's default 1e-5). */
  epsilon?: number;
  /** Keras convention: moving = momentum * moving + (1 - momentum) * batch statistic. */
  momentum?: number;
  /** Apply ReLU after the normalization (the paper's BN + ReLU after every convolution). */
  relu?: boolean;
  trainable?: boolean;
}

/**
 * Batch normalization over the last axis, optionally followed by ReLU: the paper's "BN + ReLU" after each
 * convolution as one layer. Weights as Keras's BatchNormalization: gamma, beta, moving_mean, moving_variance
 * (the moving variance uses the unbiased batch variance, as Keras and torch do).
 *
 * Training mode (`training: true`): batch statistics, moving statistics updated. On wasm and cpu it runs
 * colorpipe's fused kernels (kernels/fused.ts: 2 passes forward, 2 backward); elsewhere the same function
 * composed from tfjs ops with a hand-written gradient (tfjs-layers' own BatchNormalization differentiates
 * through moments and tiles 1/sqrt(var) to the activation's size: ~40 kernels per layer and step).
 * Inference mode: moving statistics (tf.batchNorm) then ReLU.
 */
export class BatchNormLayer extends tfl.layers.Layer {
  static readonly className = 'ColorpipeBatchNorm';
  readonly epsilon: number;
  readonly momentum: number;
  readonly relu: boolean;
  private gamma!: LayerVariable;
  private beta!: LayerVariable;
  private movingMean!: LayerVariable;
  private movingVariance!: LayerVariable;

  constructor(args: BatchNormArgs) {
    super(args);
    this.epsilon = args.epsilon ?? 1e-5;
    this.momentum = args.momentum ?? 0.9;
    this.relu = args.relu ?? false;
    this.supportsMasking = true;
  }

  override build(inputShape: Shape | Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
    const c = shape[shape.length - 1];
    if (c == null) throw new Error(`${this.name}: the channel dimension must be known`);
    this.gamma = this.addWeight('gamma', [c], 'float32', tfl.initializers.ones(), undefined, true);
    this.beta = this.addWeight('beta', [c], 'float32', tfl.initializers.zeros(), undefined, true);
    this.movingMean = this.addWeight('moving_mean', [c], 'float32', tfl.initializers.zeros(), undefined, false);
    this.movingVariance = this.addWeight('moving_variance', [c], 'float32', tfl.initializers.ones(), undefined, false);
    this.built = true;
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }

  override call(inputs: Tensor | Tensor[], kwargs: { training?: boolean }): Tensor {
    const x = (Array.isArray(inputs) ? inputs[0] : inputs) as Tensor;
    const gamma = this.gamma.read() as Tensor1D;
    const beta = this.beta.read() as Tensor1D;
    if (!kwargs['training']) {
      return tf.tidy(() => {
        const y = tf.batchNorm(x, this.movingMean.read() as Tensor1D, this.movingVariance.read() as Tensor1D, beta, gamma, this.epsilon);
        return this.relu ? tf.relu(y) : y;
      });
    }
    if (hasFusedKernels()) {
      // One kernel: normalization, ReLU and the moving-statistics update (5 small ops per layer fewer).
      const [y, mean, variance, mm, mv] = tf.engine().runKernel(
        BN_TRAIN,
        { x, gamma, beta, movingMean: this.movingMean.read(), movingVariance: this.movingVariance.read() },
        { epsilon: this.epsilon, relu: this.relu, momentum: this.momentum },
      ) as Tensor[];
      this.movingMean.write(mm!);
      this.movingVariance.write(mv!);
      tf.dispose([mean!, variance!, mm!, mv!]);
      return y!;
    }
    const [y, mean, variance] = bnTrainComposite(x, gamma, beta, this.epsilon, this.relu);
    const n = x.size / x.shape[x.rank - 1]!;
    tf.tidy(() => {
      const m = this.momentum;
      const unbiased = n > 1 ? tf.mul(variance!, n / (n - 1)) : variance!;
      this.movingMean.write(tf.add(tf.mul(this.movingMean.read(), m), tf.mul(mean!, 1 - m)));
      this.movingVariance.write(tf.add(tf.mul(this.movingVariance.read(), m), tf.mul(unbiased, 1 - m)));
    });
    tf.dispose([mean!, variance!]);
    return y!;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), epsilon: this.epsilon, momentum: this.momentum, relu: this.relu };
  }

  override getClassName(): string {
    return BatchNormLayer.className;
  }
}

/**
 * Training-mode batch norm (+ ReLU) from tfjs ops, with the closed-form gradient
 * dx = gamma / sigma * (dz - mean(dz) - xhat * mean(dz * xhat)), dz = dy * relu'(y).
 * Returns [y, mean, variance]; the caller disposes mean and variance.
 */
export function bnTrainComposite(x: Tensor, gamma: Tensor1D, beta: Tensor1D, epsilon: number, relu: boolean): [Tensor, Tensor, Tensor] {
  const axes = [...Array(x.rank - 1).keys()];
  let stats: Tensor[] = [];
  const f = tf.customGrad(((xi: Tensor, g: Tensor, b: Tensor, save: (ts: Tensor[]) => void) => {
    const { mean, variance } = tf.moments(xi, axes);
    const inv = tf.rsqrt(tf.add(variance, epsilon));
    const xhat = tf.mul(tf.sub(xi, mean), inv);
    const pre = tf.add(tf.mul(xhat, g), b);
    const value = relu ? tf.relu(pre) : pre;
    save([xhat, value, inv, g]);
    stats = [tf.keep(mean), tf.keep(variance)];
    return {
      value,
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [xh, yv, iv, gv] = saved as [Tensor, Tensor, Tensor, Tensor];
        const dz = relu ? tf.mul(dy, tf.step(yv)) : dy;
        const dbeta = tf.sum(dz, axes);
        const dgamma = tf.sum(tf.mul(dz, xh), axes);
        const n = dz.size / dz.shape[dz.rank - 1]!;
        const dx = tf.mul(tf.sub(tf.sub(dz, tf.div(dbeta, n)), tf.mul(xh, tf.div(dgamma, n))), tf.mul(gv, iv));
        return [dx, dgamma, dbeta];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  const y = (f as unknown as (...a: Tensor[]) => Tensor)(x, gamma, beta);
  return [y, stats[0]!, stats[1]!];
}

let registered = false;

/** Registers colorpipe's custom layers with tfjs's serialization registry. Idempotent. */
export function registerLayers(): void {
  if (registered) return;
  tf.serialization.registerClass(FusionLayer as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>);
  tf.serialization.registerClass(BatchNormLayer as unknown as tf.serialization.SerializableConstructor<tf.serialization.Serializable>);
  registered = true;
}
