/**
 * A faster Conv2DBackpropFilter for @tensorflow/tfjs-backend-webgpu.
 *
 * Why: on the H100 host, tfjs-webgpu trained the full network at 224 at 9.5 img/s with 83% of the kernel time in
 * its Conv2DBackpropFilter, a shader in which each thread computes one filter weight by looping over every
 * batch and output position (up to 32*112*112 iterations per thread, only kh*kw*inC*outC threads).
 *
 * Here the filter gradient is one large matrix product, the formulation GPUs are good at:
 *   dW [kh*kw*inC, outC] = P^T x dy,  P [rows, kh*kw*inC] = im2col(x),  rows = batch * outH * outW.
 * P is built from kh*kw strided slices of the padded input (one per filter tap, each [rows, inC]) concatenated
 * along channels, so its column order (kh, kw, c) is the filter layout's; the product runs through the
 * backend's own BatchMatMul (with transposeA), which picks its split-K program when rows is large. The batch
 * is processed in chunks so P stays under CHUNK_BYTES (a storage-buffer binding is limited).
 *
 * The kernel is written against tfjs's kernel registry only (PadV2, StridedSlice, Reshape, Concat,
 * BatchMatMul, Add of the backend it runs on), so it is tested here on the cpu backend against the built-in
 * kernel and finite differences (test/model/kernels.test.ts); on webgpu it has only been reviewed, not run: no
 * GPU was available to this change. `registerWebgpuKernels` registers it only when a 'webgpu' backend exists.
 */
import { convInfoOf } from './conv-info.js';
import { backend_util, BatchMatMul, Concat, Conv2DBackpropFilter, Add, findBackend, getKernel, PadV2, registerKernel, Reshape, StridedSlice, unregisterKernel } from '@tensorflow/tfjs-core';
import type { DataId, KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';

/** Largest im2col chunk in bytes. */
export const WEBGPU_CHUNK_BYTES = 256 * 1024 * 1024;

interface AnyBackend {
  disposeData(dataId: DataId, force?: boolean): boolean;
}

type Args = { inputs: Record<string, TensorInfo>; attrs: NamedAttrMap; backend: unknown };

/**
 * Conv2DBackpropFilter by im2col + one matmul per batch chunk, built from `backendName`'s own kernels.
 * Exported for tests (run on the cpu backend there).
 */
export function im2colFilterGrad(backendName: string, chunkBytes = WEBGPU_CHUNK_BYTES): KernelFunc {
  const k = (name: string): KernelFunc => {
    const c = getKernel(name, backendName);
    if (c == null) throw new Error(`colorpipe: backend ${backendName} has no ${name} kernel`);
    return c.kernelFunc;
  };
  return ((args: Args) => {
    const backend = args.backend as AnyBackend;
    const run = (name: string, inputs: Record<string, TensorInfo>, attrs: NamedAttrMap) =>
      k(name)({ inputs, attrs, backend: backend as never }) as TensorInfo;
    const free = (...ts: TensorInfo[]) => ts.forEach((t) => backend.disposeData(t.dataId));
    const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
    const { filterShape } = args.attrs as unknown as { filterShape: [number, number, number, number] };
    const ci = convInfoOf(x.shape as [number, number, number, number], filterShape, args.attrs);
    if (ci.dataFormat !== 'channelsLast') throw new Error('colorpipe Conv2DBackpropFilter: NHWC only');
    const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: CO } = ci;
    const { filterHeight: FH, filterWidth: FW, strideHeight: sh, strideWidth: sw } = ci;
    const { top, left } = ci.padInfo;
    // Pad so every tap's window is in range: rows needed sh*(OH-1) + FH, cols sw*(OW-1) + FW.
    const bottom = Math.max(0, sh * (OH - 1) + FH - H - top);
    const right = Math.max(0, sw * (OW - 1) + FW - W - left);
    const K = FH * FW * C;
    const pix = OH * OW;
    const nb = Math.max(1, Math.min(B, Math.floor(chunkBytes / Math.max(1, pix * K * 4))));
    let acc: TensorInfo | null = null;
    const padded =
      top || bottom || left || right
        ? run(PadV2, { x }, { paddings: [[0, 0], [top, bottom], [left, right], [0, 0]], constantValue: 0 } as unknown as NamedAttrMap)
        : null;
    const src = padded ?? x;
    for (let b0 = 0; b0 < B; b0 += nb) {
      const n = Math.min(B, b0 + nb) - b0;
      const taps: TensorInfo[] = [];
      for (let kh = 0; kh < FH; kh++) {
        for (let kw = 0; kw < FW; kw++) {
          const t = run(StridedSlice, { x: src }, {
            begin: [b0, kh, kw, 0],
            end: [b0 + n, kh + sh * (OH - 1) + 1, kw + sw * (OW - 1) + 1, C],
            strides: [1, sh, sw, 1],
            beginMask: 0,
            endMask: 0,
            ellipsisMask: 0,
            newAxisMask: 0,
            shrinkAxisMask: 0,
          } as unknown as NamedAttrMap);
          taps.push(t);
        }
      }
      const flat = taps.map((t) => run(Reshape, { x: t }, { shape: [n * pix, C] }));
      free(...taps);
      const P = flat.length === 1 ? flat[0]! : run(Concat, flat as unknown as Record<string, TensorInfo>, { axis: 1 });
      if (flat.length > 1) free(...flat);
      const dyc =
        n === B
          ? run(Reshape, { x: dy }, { shape: [B * pix, CO] })
          : run(StridedSlice, { x: dy }, {
              begin: [b0, 0, 0, 0],
              end: [b0 + n, OH, OW, CO],
              strides: [1, 1, 1, 1],
              beginMask: 0,
              endMask: 0,
              ellipsisMask: 0,
              newAxisMask: 0,
              shrinkAxisMask: 0,
            } as unknown as NamedAttrMap);
      const dy2 = n === B ? dyc : run(Reshape, { x: dyc }, { shape: [n * pix, CO] });
      if (dy2 !== dyc) free(dyc);
      const part = run(BatchMatMul, { a: P, b: dy2 }, { transposeA: true, transposeB: false });
      free(P, dy2);
      if (acc === null) acc = part;
      else {
        const sum = run(Add, { a: acc, b: part }, {});
        free(acc, part);
        acc = sum;
      }
    }
    if (padded) free(padded);
    const out = run(Reshape, { x: acc! }, { shape: filterShape });
    free(acc!);
    return out;
  }) as unknown as KernelFunc;
}

let previous: KernelConfig | null = null;

/**
 * Replaces webgpu's Conv2DBackpropFilter with the im2col + matmul kernel above. Only when a 'webgpu' backend is
 * registered (tfjs-backend-webgpu imported on a machine with a GPU); idempotent. Returns what it registered.
 */
export function registerWebgpuKernels(): string[] {
  if (findBackend('webgpu') == null) return [];
  const cur = getKernel(Conv2DBackpropFilter, 'webgpu') as (KernelConfig & { colorpipe?: boolean }) | undefined;
  if (cur?.colorpipe) return [Conv2DBackpropFilter];
  if (cur) {
    previous = cur;
    unregisterKernel(Conv2DBackpropFilter, 'webgpu');
  }
  registerKernel({
    kernelName: Conv2DBackpropFilter,
    backendName: 'webgpu',
    kernelFunc: im2colFilterGrad('webgpu'),
    colorpipe: true,
  } as KernelConfig);
  return [Conv2DBackpropFilter];
}

/** Restores webgpu's own kernel (for comparisons on a GPU host). */
export function unregisterWebgpuKernels(): void {
  const cur = getKernel(Conv2DBackpropFilter, 'webgpu') as (KernelConfig & { colorpipe?: boolean }) | undefined;
  if (cur?.colorpipe) {
    unregisterKernel(Conv2DBackpropFilter, 'webgpu');
    if (previous) registerKernel(previous);
  }
}
