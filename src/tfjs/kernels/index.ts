/**
 * colorpipe's gradient kernels, registered per backend at engine setup (`registerKernels(engine.name)`).
 * Idempotent: calling it again for a backend changes nothing.
 */
import { registerCpuKernels } from './cpu.js';
import { registerFusedKernels } from './fused.js';
import { registerWasmKernels } from './wasm.js';
import { registerWebgpuKernels } from './webgpu.js';

const FUSED = ['ColorpipeBatchNormTrain', 'ColorpipeBatchNormTrainGrad', 'ColorpipeAdamUpdate', 'ColorpipeAdadeltaUpdate'];

/** Registers the kernels colorpipe provides for `backendName`; returns their names (none for tensorflow). */
export function registerKernels(backendName: string): string[] {
  switch (backendName) {
    case 'wasm':
      registerWasmKernels();
      registerFusedKernels('wasm');
      return ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'BatchMatMul', 'Identity', ...FUSED];
    case 'cpu':
      registerFusedKernels('cpu');
      registerCpuKernels();
      return ['ResizeNearestNeighborGrad', ...FUSED];
    case 'webgpu':
      return registerWebgpuKernels();
    default:
      return [];
  }
}
