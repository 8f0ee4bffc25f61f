/** Conv2DBackpropFilter for tfjs-backend-wasm (see wasm.ts for why and how). */
import { backend_util, BatchMatMul, Conv2DBackpropFilter, Transpose } from '@tensorflow/tfjs-core';
import type { NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { call, offsetOf, heap, dispose, viewAt, releaseView, chunkBytes, type WasmBackend } from './wasm-common.js';
import { convInfoOf } from './conv-info.js';

// ---------------------------------------------------------------------------------------------------------
// Conv2DBackpropFilter
// ---------------------------------------------------------------------------------------------------------

/**
 * Writes the transposed im2col matrix of images [b0, b1) of x into P^T (float offset `p`): row
 * r = (kh*FW + kw)*C + c (the filter layout [FH, FW, C, CO] flattened), column = output pixel (b-b0, oy, ox).
 * Out-of-image taps are zeros. Reads x along rows; writes each P^T row in runs of OW.
 */
function im2colT(h: Float32Array, xOff: number, p: number, ci: backend_util.Conv2DInfo, b0: number, b1: number): void {
  const { inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, filterHeight: FH, filterWidth: FW } = ci;
  const sh = ci.strideHeight;
  const sw = ci.strideWidth;
  const pt = ci.padInfo.top;
  const pl = ci.padInfo.left;
  const rows = (b1 - b0) * OH * OW;
  // Valid ox range per kw: 0 <= ox*sw + kw - pl < W.
  const lo = new Int32Array(FW);
  const hi = new Int32Array(FW);
  for (let kw = 0; kw < FW; kw++) {
    lo[kw] = Math.min(OW, Math.max(0, Math.ceil((pl - kw) / sw)));
    hi[kw] = Math.max(lo[kw]!, Math.min(OW, Math.floor((W - 1 + pl - kw) / sw) + 1));
  }
  const step = sw * C;
  for (let b = b0; b < b1; b++) {
    const imgOff = xOff + b * H * W * C;
    for (let oy = 0; oy < OH; oy++) {
      const col = ((b - b0) * OH + oy) * OW;
      for (let kh = 0; kh < FH; kh++) {
        const iy = oy * sh + kh - pt;
        const rowBase = kh * FW * C;
        if (iy < 0 || iy >= H) {
          for (let r = rowBase; r < rowBase + FW * C; r++) {
            const d = p + r * rows + col;
            h.fill(0, d, d + OW);
          }
          continue;
        }
        const rowOff = imgOff + iy * W * C;
        for (let kw = 0; kw < FW; kw++) {
          const l = lo[kw]!;
          const u = hi[kw]!;
          const srcKw = rowOff + (kw - pl) * C;
          for (let c = 0; c < C; c++) {
            const d = p + (rowBase + kw * C + c) * rows + col;
            if (l > 0) h.fill(0, d, d + l);
            if (u < OW) h.fill(0, d + u, d + OW);
            let s = srcKw + l * step + c;
            for (let ox = l; ox < u; ox++, s += step) h[d + ox] = h[s]!;
          }
        }
      }
    }
  }
}

/**
 * Filter gradient without im2col ("shifted GEMM"). With x laid out channel-major in an s*s phase
 * decomposition of its zero-padded frame, Xph[p][c][q], q = (b*Hq + u)*Wq + v (rows pitched Wq), and dy placed
 * at q0 = (b*Hq + oy)*Wq + ox in a zero frame of the same pitch (dyp [Rtot, CO]), the tap (kh, kw) reads
 * x at q0 + off, off = (kh div s)*Wq + (kw div s), in phase (kh mod s, kw mod s). So
 *   dW[kh, kw] = Xph[p][:, off : off + Rtot] x dyp,
 * and that left operand is a contiguous [C, Rtot] block of the phase buffer starting `off` floats in: one
 * XNNPACK matmul per tap on an aliasing view, all sharing dyp (packed once). Where the block runs past a
 * channel's row, dyp is zero (the frame's bottom/right ring is at least `off` long), so those reads (finite
 * data of the next row, or the zeroed tail) contribute nothing. Costs one gather pass over x instead of the
 * kh*kw-fold im2col, at the price of GEMMs over the padded frame (Rtot = B*Hq*Wq >= B*OH*OW rows).
 */
function shiftedFilterGrad(backend: WasmBackend, x: TensorInfo, dy: TensorInfo, ci: backend_util.Conv2DInfo, filterShape: number[]): TensorInfo {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: CO } = ci;
  const { filterHeight: FH, filterWidth: FW, strideHeight: s } = ci;
  const pt = ci.padInfo.top;
  const pl = ci.padInfo.left;
  const QH = Math.ceil(FH / s);
  const QW = Math.ceil(FW / s);
  const Hq = OH + QH - 1;
  const Wq = OW + QW - 1;
  const Rtot = B * Hq * Wq;
  const phases = s * s;
  const tail = (QH - 1) * Wq + QW - 1;
  const X = backend.makeOutput([phases * C * Rtot + tail], 'float32');
  const D = backend.makeOutput([1, Rtot, CO], 'float32');
  const out = backend.makeOutput(filterShape, 'float32');
  {
    const h = heap(backend);
    const xo = offsetOf(backend, x);
    const X0 = offsetOf(backend, X);
    // Gather x into the phase frames: Xph[ph][c][(b*Hq + u)*Wq + v] = x[b, s*u + rh - pt, s*v + rw - pl, c].
    for (let rh = 0; rh < s; rh++) {
      for (let rw = 0; rw < s; rw++) {
        const base = X0 + (rh * s + rw) * C * Rtot;
        for (let b = 0; b < B; b++) {
          for (let u = 0; u < Hq; u++) {
            const y = s * u + rh - pt;
            const q = (b * Hq + u) * Wq;
            if (y < 0 || y >= H) {
              for (let c = 0; c < C; c++) h.fill(0, base + c * Rtot + q, base + c * Rtot + q + Wq);
              continue;
            }
            gatherRow(h, xo + (b * H + y) * W * C, base + q, Rtot, C, W, Wq, s, rw - pl);
          }
        }
      }
    }
    h.fill(0, X0 + phases * C * Rtot, X0 + phases * C * Rtot + tail);
    // dy into its zero frame.
    const D0 = offsetOf(backend, D);
    const dyo = offsetOf(backend, dy);
    h.fill(0, D0, D0 + Rtot * CO);
    for (let b = 0; b < B; b++) {
      for (let oy = 0; oy < OH; oy++) {
        const src = dyo + (b * OH + oy) * OW * CO;
        h.copyWithin(D0 + (b * Hq + oy) * Wq * CO, src, src + OW * CO);
      }
    }
  }
  const X0 = offsetOf(backend, X);
  try {
    for (let kh = 0; kh < FH; kh++) {
      for (let kw = 0; kw < FW; kw++) {
        const ph = (kh % s) * s + (kw % s);
        const off = Math.floor(kh / s) * Wq + Math.floor(kw / s);
        const A = viewAt(backend, X0 + ph * C * Rtot + off, [1, C, Rtot]);
        let part: TensorInfo;
        try {
          part = call(backend, BatchMatMul, { a: A, b: D }, { transposeA: false, transposeB: false });
        } finally {
          releaseView(backend, A);
        }
        const h = heap(backend);
        const po = offsetOf(backend, part);
        h.copyWithin(offsetOf(backend, out) + (kh * FW + kw) * C * CO, po, po + C * CO);
        dispose(backend, part);
      }
    }
  } catch (err) {
    dispose(backend, out);
    throw err;
  } finally {
    dispose(backend, X, D);
  }
  return out;
}

/** One image row of x (NHWC, W*C floats at `src`) into C channel rows of a phase frame, columns v = 0..Wq-1. */
function gatherRow(h: Float32Array, src: number, dst: number, pitch: number, C: number, W: number, Wq: number, s: number, shift: number): void {
  // Column v reads x column s*v + shift; valid when 0 <= s*v + shift < W.
  const lo = Math.min(Wq, Math.max(0, Math.ceil(-shift / s)));
  const hi = Math.max(lo, Math.min(Wq, Math.floor((W - 1 - shift) / s) + 1));
  const step = s * C;
  for (let c = 0; c < C; c++) {
    const d = dst + c * pitch;
    if (lo > 0) h.fill(0, d, d + lo);
    if (hi < Wq) h.fill(0, d + hi, d + Wq);
    let r = src + (s * lo + shift) * C + c;
    for (let v = lo; v < hi; v++, r += step) h[d + v] = h[r]!;
  }
}

/**
 * Whether the shifted GEMM beats im2col. It saves the im2col pass (kh*kw*C*rows scalar copies in JS) but runs
 * kh*kw narrow GEMMs (M = C) over the padded frame instead of one wide one (M = kh*kw*C); measured on
 * XNNPACK (single-layer timings, 2-core Xeon), narrow outputs gain (outC <= 32: 1.3-2x faster for the tiny network's
 * large maps and the paper's 112x112x32 colorization layer) while wide ones lose (outC >= 128: up to 1.5x
 * slower at 224), so: outC <= SHIFTED_MAX_OUT and a frame at most 1.6x the output.
 */
function preferShifted(ci: backend_util.Conv2DInfo): boolean {
  if (ci.strideHeight !== ci.strideWidth || ci.filterHeight * ci.filterWidth === 1) return false;
  const s = ci.strideHeight;
  const Hq = ci.outHeight + Math.ceil(ci.filterHeight / s) - 1;
  const Wq = ci.outWidth + Math.ceil(ci.filterWidth / s) - 1;
  return ci.outChannels <= SHIFTED_MAX_OUT && (Hq * Wq) / (ci.outHeight * ci.outWidth) <= 1.6;
}

const DEFAULT_SHIFTED_MAX_OUT = 32;
let SHIFTED_MAX_OUT = DEFAULT_SHIFTED_MAX_OUT;

/** For tests and benchmarks: force the filter-gradient path ('auto' restores the heuristic). */
export function setFilterGradPath(path: 'auto' | 'im2col' | 'shifted'): void {
  SHIFTED_MAX_OUT = path === 'auto' ? DEFAULT_SHIFTED_MAX_OUT : path === 'im2col' ? -1 : Infinity;
}

export function conv2DBackpropFilterWasm(args: { inputs: Record<string, TensorInfo>; attrs: NamedAttrMap; backend: unknown }): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const filterShape = args.attrs['filterShape'] as unknown as [number, number, number, number];
  const ci = convInfoOf(x.shape as [number, number, number, number], filterShape, args.attrs);
  if (ci.dataFormat !== 'channelsLast' || ci.dilationHeight !== 1 || ci.dilationWidth !== 1) {
    throw new Error(`colorpipe wasm Conv2DBackpropFilter supports NHWC without dilation only (got ${ci.dataFormat})`);
  }
  if (preferShifted(ci)) return shiftedFilterGrad(backend, x, dy, ci, filterShape);
  const { batchSize: B, outHeight: OH, outWidth: OW, outChannels: CO } = ci;
  const K = ci.filterHeight * ci.filterWidth * ci.inChannels;
  const pix = OH * OW;
  const nb = Math.max(1, Math.min(B, Math.floor(chunkBytes() / Math.max(1, pix * K * 4))));
  // 1x1, stride 1, no padding: x itself is the im2col matrix [rows, K]; only its transpose is needed.
  const pointwise = ci.filterHeight === 1 && ci.filterWidth === 1 && ci.strideHeight === 1 && ci.strideWidth === 1;

  // dW [K, CO] = sum over chunks of P^T [K, rows] x dy_chunk [rows, CO]: one non-transposed XNNPACK matmul each.
  let acc: TensorInfo | null = null;
  try {
    for (let b0 = 0; b0 < B; b0 += nb) {
      const b1 = Math.min(B, b0 + nb);
      const rows = (b1 - b0) * pix;
      let PT: TensorInfo;
      if (pointwise) {
        const xs = { dataId: x.dataId, shape: [B * pix, K], dtype: 'float32' } as TensorInfo;
        if (b1 - b0 === B) {
          PT = call(backend, Transpose, { x: xs }, { perm: [1, 0] });
        } else {
          const part = backend.makeOutput([rows, K], 'float32');
          const h = heap(backend);
          const src = offsetOf(backend, x) + b0 * pix * K;
          h.copyWithin(offsetOf(backend, part), src, src + rows * K);
          PT = call(backend, Transpose, { x: part }, { perm: [1, 0] });
          dispose(backend, part);
        }
      } else {
        PT = backend.makeOutput([K, rows], 'float32');
        im2colT(heap(backend), offsetOf(backend, x), offsetOf(backend, PT), ci, b0, b1);
      }
      let dyc: TensorInfo;
      if (b1 - b0 === B) {
        dyc = { dataId: dy.dataId, shape: [1, rows, CO], dtype: 'float32' } as TensorInfo;
      } else {
        dyc = backend.makeOutput([1, rows, CO], 'float32');
        const h = heap(backend);
        const src = offsetOf(backend, dy) + b0 * pix * CO;
        h.copyWithin(offsetOf(backend, dyc), src, src + rows * CO);
      }
      let part: TensorInfo;
      try {
        part = call(backend, BatchMatMul, { a: { ...PT, shape: [1, K, rows] } as TensorInfo, b: dyc }, { transposeA: false, transposeB: false });
      } finally {
        dispose(backend, PT);
        if (dyc.dataId !== dy.dataId) dispose(backend, dyc);
      }
      if (acc === null) {
        acc = part;
      } else {
        const h = heap(backend);
        const a = offsetOf(backend, acc);
        const o = offsetOf(backend, part);
        for (let i = 0; i < K * CO; i++) h[a + i]! += h[o + i]!;
        dispose(backend, part);
      }
    }
  } catch (err) {
    if (acc) dispose(backend, acc);
    throw err;
  }
  return { dataId: acc!.dataId, shape: filterShape, dtype: 'float32' } as TensorInfo;
}
