/**
 * The exported graph's inputs and outputs (src/onnx/export.ts): the contract between the export and every runtime
 * that runs it, onnxruntime-node (src/onnx/session.ts) and onnxruntime-web in the browser page (src/web/). Pure.
 */

/** The graph's input and output names. */
export const ONNX_NAMES = {
  local: 'L_local',
  global: 'L_global',
  ab: 'ab',
  logits: 'logits',
} as const;

/** The graph's ab, [N, 2, h, w] planes -> [N, h, w, 2] interleaved (the runner contract's layout, network/runner.ts). */
export function abToNhwc(src: Float32Array, n: number, h: number, w: number): Float32Array {
  const plane = h * w;
  const out = new Float32Array(n * plane * 2);
  for (let i = 0; i < n; i++) {
    const a = src.subarray(i * 2 * plane, (i * 2 + 1) * plane);
    const b = src.subarray((i * 2 + 1) * plane, (i * 2 + 2) * plane);
    const o = i * 2 * plane;
    for (let p = 0; p < plane; p++) {
      out[o + 2 * p] = a[p]!;
      out[o + 2 * p + 1] = b[p]!;
    }
  }
  return out;
}
