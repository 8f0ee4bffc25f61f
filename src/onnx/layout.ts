/**
 * colorpipe's weight layouts (src/network/weights.ts: tfjs's, NHWC) against ONNX's (NCHW), shared by the
 * inference export (graph.ts) and the training engine's state (train-state.ts):
 * - a conv kernel is [kh, kw, in, out] in colorpipe, [out, in, kh, kw] for ONNX's Conv;
 * - the first FC after the global path's flatten takes its inputs in NHWC order in colorpipe ([h, w, C]);
 *   ONNX's Flatten of NCHW gives [C, h, w], so its kernel rows are permuted instead of the activations.
 */
import { sameOut, type NetworkTable } from '../network/table.js';

/** TF 'same' pads (before, after) of one dimension; 'divisible' stands for any size divisible by the stride. */
export function samePads(n: number | 'divisible', k: number, s: number): [number, number] {
  const total = n === 'divisible' ? Math.max(k - s, 0) : Math.max((sameOut(n, s) - 1) * s + k - n, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/** [k, k, inC, out] -> [out, inC, k, k] (a new array). */
export function hwioToOihw(kernel: Float32Array, k: number, inC: number, out: number): Float32Array {
  const w = new Float32Array(kernel.length);
  for (let y = 0; y < k; y++) {
    for (let x = 0; x < k; x++) {
      for (let i = 0; i < inC; i++) {
        const src = ((y * k + x) * inC + i) * out;
        for (let o = 0; o < out; o++) w[((o * inC + i) * k + y) * k + x] = kernel[src + o]!;
      }
    }
  }
  return w;
}

/** [out, inC, k, k] -> [k, k, inC, out], written into `dst`. */
export function oihwToHwio(w: Float32Array, k: number, inC: number, out: number, dst: Float32Array): void {
  for (let y = 0; y < k; y++) {
    for (let x = 0; x < k; x++) {
      for (let i = 0; i < inC; i++) {
        const at = ((y * k + x) * inC + i) * out;
        for (let o = 0; o < out; o++) dst[at + o] = w[((o * inC + i) * k + y) * k + x]!;
      }
    }
  }
}

/** The colorpipe (NHWC-flatten) row of ONNX (NCHW-flatten) row r, for a flattened [c, hw] map. */
export function nhwcRowOf(hw: number, c: number): (r: number) => number {
  return (r) => (r % hw) * c + Math.floor(r / hw);
}

/** Copies the rows of an [in, out] kernel: row r of `dst` is row `rowOf(r)` of `src`. */
export function permuteRows(src: Float32Array, out: number, rowOf: (r: number) => number, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  const rows = src.length / out;
  for (let r = 0; r < rows; r++) dst.set(src.subarray(rowOf(r) * out, (rowOf(r) + 1) * out), r * out);
  return dst;
}

/** The global path's map where it is flattened: side and channels (the first FC's kernel has side^2 * channels rows). */
export function flattenGeometry(t: NetworkTable): { side: number; channels: number } {
  let side = t.inputSize;
  for (const l of t.low) side = sameOut(side, l.stride!);
  let channels = t.low[t.low.length - 1]!.out!;
  for (const l of t.global) {
    if (l.kind !== 'conv') continue;
    side = sameOut(side, l.stride!);
    channels = l.out!;
  }
  return { side, channels };
}
