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
import { BatchMatMul, Conv2DBackpropFilter, Conv2DBackpropInput, getKernel, Identity, registerKernel, Transpose, unregisterKernel, util } from '@tensorflow/tfjs-core';
import type { DataId, KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';
import { BACKEND, originals, kernel, call, dispose, type WasmBackend } from './wasm-common.js';
import { conv2DBackpropFilterWasm } from './wasm-filter-grad.js';
import { conv2DBackpropInputWasm } from './wasm-input-grad.js';

export { setWasmChunkBytes, DEFAULT_CHUNK_BYTES } from './wasm-common.js';
export { setFilterGradPath } from './wasm-filter-grad.js';
export { setBackpropInputPath } from './wasm-input-grad.js';

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
