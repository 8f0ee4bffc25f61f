/**
 * Float64 reference implementations for the model tests: a direct NHWC convolution with TensorFlow's 'same' /
 * 'valid' padding, deterministic pseudo-random data, and comparison helpers.
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';

export function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

export interface ConvGeom {
  B: number;
  H: number;
  W: number;
  C: number;
  CO: number;
  k: number;
  s: number;
  pad: 'same' | 'valid';
}

/** Output size and leading padding as TensorFlow computes them. */
export function tfPadding(n: number, k: number, s: number, pad: 'same' | 'valid'): { out: number; before: number } {
  if (pad === 'valid') return { out: Math.ceil((n - k + 1) / s), before: 0 };
  const out = Math.ceil(n / s);
  const total = Math.max((out - 1) * s + k - n, 0);
  return { out, before: Math.floor(total / 2) };
}

/** y = conv2d(x, w) in float64: x [B,H,W,C], w [k,k,C,CO]. */
export function conv2dRef(x: ArrayLike<number>, w: ArrayLike<number>, g: ConvGeom): { y: Float64Array; OH: number; OW: number } {
  const ph = tfPadding(g.H, g.k, g.s, g.pad);
  const pw = tfPadding(g.W, g.k, g.s, g.pad);
  const OH = ph.out;
  const OW = pw.out;
  const y = new Float64Array(g.B * OH * OW * g.CO);
  for (let b = 0; b < g.B; b++)
    for (let oy = 0; oy < OH; oy++)
      for (let ox = 0; ox < OW; ox++)
        for (let kh = 0; kh < g.k; kh++) {
          const iy = oy * g.s + kh - ph.before;
          if (iy < 0 || iy >= g.H) continue;
          for (let kw = 0; kw < g.k; kw++) {
            const ix = ox * g.s + kw - pw.before;
            if (ix < 0 || ix >= g.W) continue;
            for (let c = 0; c < g.C; c++) {
              const xv = x[((b * g.H + iy) * g.W + ix) * g.C + c]!;
              const wo = ((kh * g.k + kw) * g.C + c) * g.CO;
              const yo = ((b * OH + oy) * OW + ox) * g.CO;
              for (let o = 0; o < g.CO; o++) y[yo + o]! += xv * w[wo + o]!;
            }
          }
        }
  return { y, OH, OW };
}

/** L(x, w) = sum(sin(conv(x, w)) * r): a nonlinear loss, so a wrong gradient cannot pass by linearity. */
export function sinConvLoss(x: ArrayLike<number>, w: ArrayLike<number>, r: ArrayLike<number>, g: ConvGeom): number {
  const { y } = conv2dRef(x, w, g);
  let s = 0;
  for (let i = 0; i < y.length; i++) s += Math.sin(y[i]!) * r[i]!;
  return s;
}

/**
 * Asserts that dx and dw, an engine's gradients of sinConvLoss at (x, w), match central finite differences
 * (eps 1e-4, float64) at `nx` input and `nw` weight positions spread evenly over each array (borders included).
 */
export function checkSinConvGradients(
  x: Float64Array, w: Float64Array, r: ArrayLike<number>, g: ConvGeom,
  dx: ArrayLike<number>, dw: ArrayLike<number>, nx: number, nw: number,
): void {
  const eps = 1e-4;
  const check = (arr: Float64Array, grad: ArrayLike<number>, n: number, what: string) => {
    const count = Math.min(arr.length, n);
    for (let k = 0; k < count; k++) {
      const j = Math.floor((k * arr.length) / count);
      const keep = arr[j]!;
      arr[j] = keep + eps;
      const up = sinConvLoss(x, w, r, g);
      arr[j] = keep - eps;
      const down = sinConvLoss(x, w, r, g);
      arr[j] = keep;
      const fd = (up - down) / (2 * eps);
      assert.ok(Math.abs(fd - grad[j]!) < 2e-3 * Math.max(1, Math.abs(fd)), `${what}[${j}] ${JSON.stringify(g)}: fd ${fd} vs ${grad[j]}`);
    }
  };
  check(x, dx, nx, 'dx');
  check(w, dw, nw, 'dw');
}

/** Max |a - b| / max(1, max |b|). */

export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  let scale = 1;
  for (let i = 0; i < b.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return m / scale;
}

export async function values(t: tf.Tensor): Promise<Float32Array> {
  return (await t.data()) as Float32Array;
}
