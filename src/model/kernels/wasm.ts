/**
 * Gradient kernels for @tensorflow/tfjs-backend-wasm, built on its fast XNNPACK Conv2D and matrix multiply.
 *
 * Why: tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter at all ("Kernel 'Conv2DBackpropFilter' not registered
 * for backend 'wasm'"), its Conv2DBackpropInput is a naive loop about 10x slower than its Conv2D, and its
 * BatchMatMul only takes the XNNPACK path when neither operand is transposed (the transposed products that
 * every Dense layer's gradient asks for run in a scalar loop, ~10x slower). These kernels rewrite each of them
 * as the fast primitives:
 *
 * - Conv2DBackpropInput: dx = a stride-1 convolution of dy with a "phase" filter. For stride s, each of the s*s
 *   output phases (dx rows/cols congruent to p mod s, in padded coordinates) is a small correlation of dy with
 *   a subset of the flipped filter taps; the phases are packed into the output channels of ONE XNNPACK Conv2D
 *   (filter [R, R, outC, s*s*inC], R = ceil(k/s)), then unpacked (depth-to-space) and cropped to the input
 *   window in one JS pass. For s = 1 that is exactly "conv2d(dy, flipped in/out-swapped filter)". For s > 1
 *   each phase runs as its own convolution with only its taps (9 for 3x3 at stride 2 where the combined
 *   filter has 16) and the phases are interleaved in JS.
 * - Conv2DBackpropFilter: the transposed im2col matrix P^T [kh*kw*inC, rows] of x, written from JS straight
 *   into a wasm-heap tensor, then ONE non-transposed XNNPACK matmul dW [K, outC] = P^T x dy [rows, outC] per
 *   batch chunk, accumulated. dy is the matmul's "weights" operand, which XNNPACK packs on every call: packing
 *   dy (outC columns) is cheap where packing P (K columns) cost more than the multiply itself. Chunks keep P^T
 *   under CHUNK_BYTES, so memory stays bounded at any batch.
 * - BatchMatMul with transposeA/transposeB (batch 1): explicit Transpose (cheap) then the XNNPACK path.
 * - Identity: shares the input's buffer (reference count + 1), as the cpu backend does, instead of copying it.
 *   The engine clones every tensor a gradient saves (engine.saveTensorsForBackwardMode -> Identity), so on wasm
 *   each training step copied most of its activations once more (time, and heap: the 4 GiB limit). Sharing is
 *   safe because no wasm kernel writes into its inputs (kernels here included).
 *
 * Anything these kernels do not cover (NCHW, dilations, unequal strides, batched transposed matmul) goes to
 * the backend's original kernel, so registering them never removes a capability.
 *
 * All three call other wasm kernels' functions directly (not tf ops), so nothing is recorded on the tape or in
 * the engine's tensor count; every intermediate they allocate is disposed before they return.
 */
import {
  backend_util,
  BatchMatMul,
  Conv2D,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  getKernel,
  Identity,
  registerKernel,
  Transpose,
  unregisterKernel,
  util,
} from '@tensorflow/tfjs-core';
import type { DataId, KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';

/** The parts of tfjs-backend-wasm's BackendWasm these kernels use (its class is not exported as a type we can import cleanly). */
interface WasmBackend {
  dataIdMap: { get(dataId: DataId): { id: number; memoryOffset: number } };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  disposeData(dataId: DataId, force?: boolean): boolean;
  wasm: { HEAPF32: Float32Array };
}

/** Upper bound for one im2col chunk in bytes. */
export const DEFAULT_CHUNK_BYTES = 48 * 1024 * 1024;
let CHUNK_BYTES = DEFAULT_CHUNK_BYTES;

/** Sets the im2col chunk bound (tests use a tiny one to exercise chunking); returns the previous value. */
export function setWasmChunkBytes(bytes: number): number {
  const prev = CHUNK_BYTES;
  CHUNK_BYTES = Math.max(1, bytes);
  return prev;
}

const BACKEND = 'wasm';
/** The backend's own kernels, kept as fallbacks and as the building blocks. */
const originals = new Map<string, KernelConfig>();

function kernel(name: string): KernelFunc {
  const k = originals.get(name) ?? getKernel(name, BACKEND);
  if (k == null) throw new Error(`colorpipe wasm kernels: the wasm backend has no ${name} kernel`);
  return k.kernelFunc;
}

function call(backend: WasmBackend, name: string, inputs: Record<string, TensorInfo>, attrs: NamedAttrMap = {}): TensorInfo {
  return kernel(name)({ inputs, attrs, backend: backend as never }) as TensorInfo;
}

/** Float offset of a tensor in the wasm heap. The heap view must be re-read after any allocation (it can grow). */
function offsetOf(backend: WasmBackend, t: TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset >>> 2;
}

function heap(backend: WasmBackend): Float32Array {
  return backend.wasm.HEAPF32;
}

function dispose(backend: WasmBackend, ...ts: TensorInfo[]): void {
  for (const t of ts) backend.disposeData(t.dataId);
}

function convInfoOf(
  xShape: [number, number, number, number],
  filterShape: [number, number, number, number],
  attrs: NamedAttrMap,
): backend_util.Conv2DInfo {
  const { strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as {
    strides: [number, number] | number;
    pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  return backend_util.computeConv2DInfo(
    xShape,
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    backend_util.convertConv2DDataFormat(dataFormat ?? 'NHWC'),
  );
}

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
 * A tensor aliasing `shape` floats of the heap at float offset `off` (no copy, no ownership). Release it with
 * `releaseView`, never `dispose` (that would free memory it does not own).
 */
function viewAt(backend: WasmBackend, off: number, shape: number[]): TensorInfo {
  return (backend as unknown as { makeOutput(s: number[], d: 'float32', o: number): TensorInfo }).makeOutput(shape, 'float32', off * 4);
}

function releaseView(backend: WasmBackend, v: TensorInfo): void {
  const b = backend as unknown as {
    dataIdMap: { get(d: DataId): { id: number }; delete(d: DataId): boolean };
    wasm: { tfjs: { disposeData(id: number): void } };
  };
  b.wasm.tfjs.disposeData(b.dataIdMap.get(v.dataId).id);
  b.dataIdMap.delete(v.dataId);
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

function conv2DBackpropFilterWasm(args: { inputs: Record<string, TensorInfo>; attrs: NamedAttrMap; backend: unknown }): TensorInfo {
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
  const nb = Math.max(1, Math.min(B, Math.floor(CHUNK_BYTES / Math.max(1, pix * K * 4))));
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

// ---------------------------------------------------------------------------------------------------------
// Conv2DBackpropInput
// ---------------------------------------------------------------------------------------------------------

/** Geometry of the phase decomposition along one axis. */
interface PhaseAxis {
  /** Window of dy (taps per phase): ceil(k / s). */
  R: number;
  /** First and last phase-grid index needed. */
  m0: number;
  /** Explicit padding of dy for the phase convolution. */
  padBefore: number;
  padAfter: number;
  /** Rows (cols) the phase convolution produces. */
  n: number;
  /** Offset of dx's first row in the depth-to-space output. */
  crop: number;
}

function phaseAxis(k: number, s: number, padStart: number, inSize: number, outSize: number): PhaseAxis | null {
  const R = Math.ceil(k / s);
  const m0 = Math.floor(padStart / s);
  const m1 = Math.floor((padStart + inSize - 1) / s);
  const padBefore = R - 1 - m0;
  if (padBefore < 0) return null;
  const padAfter = Math.max(0, m1 - (outSize - 1));
  const n = outSize + padBefore + padAfter - R + 1;
  return { R, m0, padBefore, padAfter, n, crop: padStart - s * m0 };
}

/**
 * Stride > 1: one XNNPACK convolution per output phase (py, px), each with only that phase's filter taps
 * (for 3x3 at stride 2: 2x2, 2x1, 1x2 and 1x1, i.e. exactly the 9 useful taps instead of the combined
 * filter's 16), then the phases interleaved into dx. Returns null when a phase would need negative padding
 * (then the combined single convolution is used).
 */
let SPLIT_PHASES = true;

/** For tests and benchmarks: stride > 1 input gradient as one combined convolution or one per phase. */
export function setBackpropInputPath(path: 'auto' | 'combined' | 'split'): void {
  SPLIT_PHASES = path !== 'combined';
}

function phaseSplitBackpropInput(backend: WasmBackend, dy: TensorInfo, filter: TensorInfo, ci: backend_util.Conv2DInfo, ay: PhaseAxis, ax: PhaseAxis): TensorInfo | null {
  const s = ci.strideHeight;
  const { filterHeight: FH, filterWidth: FW, inChannels: CI, outChannels: CO, batchSize: B, inHeight: H, inWidth: W } = ci;
  const lo = (R: number, k: number, p: number) => (p >= k ? -1 : Math.max(0, R - 1 - Math.floor((k - 1 - p) / s)));
  for (let p = 0; p < s; p++) {
    const ly = lo(ay.R, FH, p);
    const lx = lo(ax.R, FW, p);
    if ((ly >= 0 && ay.padBefore - ly < 0) || (lx >= 0 && ax.padBefore - lx < 0)) return null;
  }
  const out = backend.makeOutput([B, H, W, CI], 'float32');
  const parts: Array<{ py: number; px: number; y: TensorInfo | null }> = [];
  try {
    for (let py = 0; py < s; py++) {
      for (let px = 0; px < s; px++) {
        const ly = lo(ay.R, FH, py);
        const lx = lo(ax.R, FW, px);
        if (ly < 0 || lx < 0) {
          parts.push({ py, px, y: null }); // no tap lands on this phase: its dx is zero
          continue;
        }
        const ry = ay.R - ly;
        const rx = ax.R - lx;
        const F = backend.makeOutput([ry, rx, CO, CI], 'float32');
        {
          const h = heap(backend);
          const fo = offsetOf(backend, F);
          const wo = offsetOf(backend, filter);
          for (let i = 0; i < ry; i++) {
            const kh = py + s * (ay.R - 1 - (ly + i));
            for (let j = 0; j < rx; j++) {
              const kw = px + s * (ax.R - 1 - (lx + j));
              for (let c = 0; c < CI; c++) {
                const wRow = wo + ((kh * FW + kw) * CI + c) * CO;
                let d = fo + (i * rx + j) * CO * CI + c;
                for (let o = 0; o < CO; o++, d += CI) h[d] = h[wRow + o]!;
              }
            }
          }
        }
        try {
          const y = call(backend, Conv2D, { x: dy, filter: F }, {
            strides: [1, 1],
            pad: [
              [0, 0],
              [ay.padBefore - ly, ay.padAfter],
              [ax.padBefore - lx, ax.padAfter],
              [0, 0],
            ] as unknown as NamedAttrMap[string],
            dataFormat: 'NHWC',
            dilations: [1, 1],
          });
          parts.push({ py, px, y });
        } finally {
          dispose(backend, F);
        }
      }
    }
    // Interleave: dx[b, r, q] = phase (py, px) at (m, n), r + crop_y = s*m + py, q + crop_x = s*n + px.
    const h = heap(backend);
    const dst = offsetOf(backend, out);
    for (const { py, px, y } of parts) {
      const [, MY, MX] = y ? (y.shape as number[]) : [0, ay.n, ax.n];
      const src = y ? offsetOf(backend, y) : -1;
      const m0 = Math.max(0, Math.ceil((ay.crop - py) / s));
      const n0 = Math.max(0, Math.ceil((ax.crop - px) / s));
      for (let b = 0; b < B; b++) {
        for (let m = m0; m < MY!; m++) {
          const r = s * m + py - ay.crop;
          if (r >= H) break;
          const rowDst = dst + (b * H + r) * W * CI;
          const rowSrc = src + (b * MY! + m) * MX! * CI;
          for (let n = n0; n < MX!; n++) {
            const q = s * n + px - ax.crop;
            if (q >= W) break;
            const d = rowDst + q * CI;
            if (src < 0) h.fill(0, d, d + CI);
            else if (CI >= 64) h.copyWithin(d, rowSrc + n * CI, rowSrc + (n + 1) * CI);
            else for (let e = 0; e < CI; e++) h[d + e] = h[rowSrc + n * CI + e]!;
          }
        }
      }
    }
    return out;
  } catch (err) {
    dispose(backend, out);
    throw err;
  } finally {
    for (const p of parts) if (p.y) dispose(backend, p.y);
  }
}

function conv2DBackpropInputWasm(args: { inputs: Record<string, TensorInfo>; attrs: NamedAttrMap; backend: unknown }): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const inputShape = args.attrs['inputShape'] as unknown as [number, number, number, number];
  const fShape = filter.shape as [number, number, number, number];
  const ci = convInfoOf(inputShape, fShape, args.attrs);
  const s = ci.strideHeight;
  const ay = phaseAxis(ci.filterHeight, s, ci.padInfo.top, ci.inHeight, ci.outHeight);
  const ax = phaseAxis(ci.filterWidth, ci.strideWidth, ci.padInfo.left, ci.inWidth, ci.outWidth);
  if (ci.dataFormat !== 'channelsLast' || s !== ci.strideWidth || ay === null || ax === null) {
    return originals.get(Conv2DBackpropInput)!.kernelFunc(args as never) as TensorInfo;
  }
  if (s > 1 && SPLIT_PHASES) {
    const split = phaseSplitBackpropInput(backend, dy, filter, ci, ay, ax);
    if (split) return split;
  }
  const { filterHeight: FH, filterWidth: FW, inChannels: CI, outChannels: CO, batchSize: B, inHeight: H, inWidth: W } = ci;
  const RY = ay.R;
  const RX = ax.R;
  const CP = s * s * CI;

  // Phase filter F [RY, RX, CO, s*s*CI]: F[ry, rx, o, (py*s + px)*CI + c] = W[py + s*(RY-1-ry), px + s*(RX-1-rx), c, o].
  const F = backend.makeOutput([RY, RX, CO, CP], 'float32');
  {
    const h = heap(backend);
    const fo = offsetOf(backend, F);
    const wo = offsetOf(backend, filter);
    h.fill(0, fo, fo + RY * RX * CO * CP);
    for (let ry = 0; ry < RY; ry++) {
      for (let rx = 0; rx < RX; rx++) {
        for (let py = 0; py < s; py++) {
          const kh = py + s * (RY - 1 - ry);
          if (kh >= FH) continue;
          for (let px = 0; px < s; px++) {
            const kw = px + s * (RX - 1 - rx);
            if (kw >= FW) continue;
            const phase = (py * s + px) * CI;
            for (let c = 0; c < CI; c++) {
              const wRow = wo + ((kh * FW + kw) * CI + c) * CO;
              let d = fo + (ry * RX + rx) * CO * CP + phase + c;
              for (let o = 0; o < CO; o++, d += CP) h[d] = h[wRow + o]!;
            }
          }
        }
      }
    }
  }
  let y: TensorInfo;
  try {
    y = call(
      backend,
      Conv2D,
      { x: dy, filter: F },
      {
        strides: [1, 1],
        pad: [
          [0, 0],
          [ay.padBefore, ay.padAfter],
          [ax.padBefore, ax.padAfter],
          [0, 0],
        ] as unknown as NamedAttrMap[string],
        dataFormat: 'NHWC',
        dilations: [1, 1],
      },
    );
  } finally {
    dispose(backend, F);
  }
  const [, MY, MX] = y.shape as [number, number, number, number];
  if (s === 1 && ay.crop === 0 && ax.crop === 0 && MY === H && MX === W) {
    return { dataId: y.dataId, shape: [B, H, W, CI], dtype: 'float32' } as TensorInfo;
  }
  // Depth-to-space and crop in one pass: dx[b, r, q, :] = y[b, m, n, ((r' % s)*s + q' % s)*CI : +CI] with
  // r' = r + crop_y = s*m + py, q' = q + crop_x = s*n + px. For a fixed (b, r, n), the phases px = 0..s-1 are
  // adjacent both in y's channels and in dx's columns, so each n contributes one run of up to s*CI floats.
  // (wasm's DepthToSpace kernel computes every index separately: 10x slower than this.)
  const out = backend.makeOutput([B, H, W, CI], 'float32');
  const h = heap(backend);
  const src = offsetOf(backend, y);
  const dst = offsetOf(backend, out);
  const yRow = MX * CP;
  for (let b = 0; b < B; b++) {
    for (let r = 0; r < H; r++) {
      const rr = r + ay.crop;
      const m = Math.floor(rr / s);
      const py = rr - m * s;
      const rowSrc = src + (b * MY + m) * yRow + py * s * CI;
      const rowDst = dst + (b * H + r) * W * CI;
      // Columns q = 0..W-1 map to q' = q + crop_x; walk them in runs that stay within one n.
      let q = 0;
      while (q < W) {
        const qq = q + ax.crop;
        const n = Math.floor(qq / s);
        const px = qq - n * s;
        const len = Math.min(s - px, W - q);
        const sOff = rowSrc + n * CP + px * CI;
        const dOff = rowDst + q * CI;
        const cnt = len * CI;
        if (cnt >= 16) h.copyWithin(dOff, sOff, sOff + cnt);
        else for (let e = 0; e < cnt; e++) h[dOff + e] = h[sOff + e]!;
        q += len;
      }
    }
  }
  dispose(backend, y);
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// BatchMatMul with transposes
// ---------------------------------------------------------------------------------------------------------

function batchMatMulWasm(args: { inputs: Record<string, TensorInfo>; attrs: NamedAttrMap; backend: unknown }): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
  const batchA = util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = util.sizeFromShape(b.shape.slice(0, -2));
  const orig = originals.get(BatchMatMul)!.kernelFunc;
  if ((!transposeA && !transposeB) || batchA !== 1 || batchB !== 1 || a.dtype !== 'float32' || b.dtype !== 'float32') {
    return orig(args as never) as TensorInfo;
  }
  const t2 = (m: TensorInfo): TensorInfo => {
    const r = m.shape.length;
    const as2 = { dataId: m.dataId, shape: [m.shape[r - 2]!, m.shape[r - 1]!], dtype: m.dtype } as TensorInfo;
    return call(backend, Transpose, { x: as2 }, { perm: [1, 0] });
  };
  const a2 = transposeA ? t2(a) : a;
  const b2 = transposeB ? t2(b) : b;
  try {
    const out = orig({ inputs: { a: a2, b: b2 }, attrs: { transposeA: false, transposeB: false }, backend } as never) as TensorInfo;
    const outer = a.shape.length >= b.shape.length ? a.shape.slice(0, -2) : b.shape.slice(0, -2);
    out.shape = [...outer, out.shape[out.shape.length - 2]!, out.shape[out.shape.length - 1]!];
    return out;
  } finally {
    if (a2 !== a) dispose(backend, a2);
    if (b2 !== b) dispose(backend, b2);
  }
}

function identityWasm(args: { inputs: Record<string, TensorInfo>; backend: unknown }): TensorInfo {
  const x = args.inputs['x']!;
  (args.backend as { incRef(d: DataId): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

/**
 * Registers the kernels above for 'wasm', replacing the backend's Conv2DBackpropInput and BatchMatMul (kept
 * as fallbacks). Idempotent. Must run after the wasm backend is initialized (setupFuncs of the kernels it
 * calls have run then).
 */
export function registerWasmKernels(): void {
  for (const name of [Conv2DBackpropInput, BatchMatMul, Identity]) {
    if (!originals.has(name)) {
      const k = getKernel(name, BACKEND);
      if (k == null) throw new Error(`colorpipe wasm kernels: the wasm backend has no ${name} kernel`);
      if ((k as { colorpipe?: boolean }).colorpipe) continue;
      originals.set(name, k);
    }
  }
  const mine: Array<[string, KernelFunc]> = [
    [Conv2DBackpropFilter, conv2DBackpropFilterWasm as unknown as KernelFunc],
    [Conv2DBackpropInput, conv2DBackpropInputWasm as unknown as KernelFunc],
    [BatchMatMul, batchMatMulWasm as unknown as KernelFunc],
    [Identity, identityWasm as unknown as KernelFunc],
  ];
  for (const [name, fn] of mine) {
    const cur = getKernel(name, BACKEND) as (KernelConfig & { colorpipe?: boolean }) | undefined;
    if (cur?.colorpipe) continue;
    if (cur) unregisterKernel(name, BACKEND);
    registerKernel({ kernelName: name, backendName: BACKEND, kernelFunc: fn, colorpipe: true } as KernelConfig);
  }
}

/** Puts the backend's own kernels back (tests compare against them). */
export function unregisterWasmKernels(): void {
  for (const name of [Conv2DBackpropFilter, Conv2DBackpropInput, BatchMatMul, Identity]) {
    const cur = getKernel(name, BACKEND) as (KernelConfig & { colorpipe?: boolean }) | undefined;
    if (cur?.colorpipe) {
      unregisterKernel(name, BACKEND);
      const o = originals.get(name);
      if (o) registerKernel(o);
    }
  }
}
