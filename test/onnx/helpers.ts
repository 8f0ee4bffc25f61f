/** Tiny colorizers for the ONNX tests, with batch-norm statistics far from the initial ones (so folding shows). */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../../src/config.js';
import { buildColorizer, type Colorizer } from '../../src/tfjs/network.js';
import { BatchNormLayer } from '../../src/tfjs/layers.js';

/** Deterministic values in [0, 1) (a smooth pattern plus a hash, like an image's L / 100). */
export function pattern(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const h = Math.sin((i + 1) * 12.9898 + seed * 78.233) * 43758.5453;
    out[i] = 0.5 * (0.5 + 0.5 * Math.sin(i * 0.05 + seed)) + 0.5 * (h - Math.floor(h));
  }
  return out;
}

/** A colorizer whose BN layers hold gamma, beta, moving mean and variance drawn away from 1, 0, 0, 1. */
export function trainedLike(config: ModelConfig, seed = 3): Colorizer {
  const c = buildColorizer(config, { seed });
  let k = seed;
  for (const l of c.infer.layers) {
    if (!(l instanceof BatchNormLayer)) continue;
    const [gamma, beta, mean, variance] = l.getWeights();
    const u = (t: tf.Tensor, lo: number, hi: number) => tf.randomUniform(t.shape, lo, hi, 'float32', ++k);
    const next = [u(gamma!, 0.5, 1.5), u(beta!, -0.2, 0.2), u(mean!, -0.3, 0.3), u(variance!, 0.3, 2)];
    l.setWeights(next);
    // getWeights returns the variables' own tensors: only the new values are ours to dispose.
    tf.dispose(next);
  }
  return c;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

export function std(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m += a[i]! / a.length;
  let v = 0;
  for (let i = 0; i < a.length; i++) v += (a[i]! - m) ** 2 / a.length;
  return Math.sqrt(v);
}
