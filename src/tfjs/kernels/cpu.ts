/**
 * A replacement for tfjs-backend-cpu 4.22's ResizeNearestNeighborGrad, which is wrong for the network's nearest
 * x2 upsampling at some sizes (a batch of 2 of 8x8x8 maps: gradients off by up to 2.4 from the exact 2x2 sums),
 * so `--backend cpu` trained on wrong gradients below each upsampling layer (found against the PyTorch engine,
 * which matched the wasm backend exactly). The gradient of nearest resizing: each output pixel's gradient goes to
 * the input pixel it was read from, with tfjs's own source-index rule.
 */
import { getKernel, registerKernel, unregisterKernel, util } from '@tensorflow/tfjs-core';
import type { DataId, KernelConfig, TensorInfo } from '@tensorflow/tfjs-core';

interface CpuBackend {
  data: { get(d: DataId): { values: Float32Array } };
  readSync(d: DataId): Float32Array;
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

/** The input row (or column) output index `o` reads, as tfjs-backend-cpu's ResizeNearestNeighbor chooses it. */
function sourceIndex(o: number, inSize: number, outSize: number, alignCorners: boolean, halfPixelCenters: boolean): number {
  const ratio = alignCorners && outSize > 1 ? (inSize - 1) / (outSize - 1) : inSize / outSize;
  const frac = halfPixelCenters ? ratio * (o + 0.5) : ratio * o;
  const i = alignCorners ? Math.round(frac) : Math.floor(frac);
  return Math.max(0, Math.min(inSize - 1, i));
}

function resizeNearestNeighborGrad({ inputs, backend, attrs }: { inputs: { images: TensorInfo; dy: TensorInfo }; backend: unknown; attrs: { alignCorners: boolean; halfPixelCenters: boolean } }): TensorInfo {
  const b = backend as CpuBackend;
  const [n, inH, inW, c] = inputs.images.shape as [number, number, number, number];
  const [, outH, outW] = inputs.dy.shape as [number, number, number, number];
  const dy = b.readSync(inputs.dy.dataId);
  const dx = new Float32Array(util.sizeFromShape(inputs.images.shape));
  const cols = Int32Array.from({ length: outW }, (_, x) => sourceIndex(x, inW, outW, attrs.alignCorners, attrs.halfPixelCenters));
  for (let i = 0; i < n; i++) {
    for (let y = 0; y < outH; y++) {
      const sy = sourceIndex(y, inH, outH, attrs.alignCorners, attrs.halfPixelCenters);
      for (let x = 0; x < outW; x++) {
        const src = ((i * inH + sy) * inW + cols[x]!) * c;
        const from = ((i * outH + y) * outW + x) * c;
        for (let k = 0; k < c; k++) dx[src + k]! += dy[from + k]!;
      }
    }
  }
  return b.makeTensorInfo(inputs.images.shape, 'float32', dx);
}

/** Registers colorpipe's cpu kernels in place of tfjs's (idempotent). */
export function registerCpuKernels(): void {
  const mine = getKernel('ResizeNearestNeighborGrad', 'cpu');
  if (mine?.kernelFunc === (resizeNearestNeighborGrad as unknown)) return;
  if (mine) unregisterKernel('ResizeNearestNeighborGrad', 'cpu');
  registerKernel({ kernelName: 'ResizeNearestNeighborGrad', backendName: 'cpu', kernelFunc: resizeNearestNeighborGrad } as unknown as KernelConfig);
}
