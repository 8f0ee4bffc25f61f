/** Conv2DBackpropInput for tfjs-backend-wasm (see wasm.ts for why and how). */
import { backend_util, Conv2D, Conv2DBackpropInput } from '@tensorflow/tfjs-core';
import type { NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { originals, kernel, call, offsetOf, heap, dispose, type WasmBackend } from './wasm-common.js';
import { convInfoOf } from './conv-info.js';

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

export function conv2DBackpropInputWasm(args: { inputs: Record<string, TensorInfo>; attrs: NamedAttrMap; backend: unknown }): TensorInfo {
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
