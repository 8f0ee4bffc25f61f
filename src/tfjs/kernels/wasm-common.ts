/**
 * What colorpipe's wasm kernels share (wasm.ts explains them): the backend's own kernels kept as building
 * blocks, heap access, views that alias heap memory, and the im2col chunk bound.
 */
import { backend_util, getKernel } from '@tensorflow/tfjs-core';
import type { DataId, KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from '@tensorflow/tfjs-core';

/** The parts of tfjs-backend-wasm's BackendWasm these kernels use (its class is not exported as a type we can import cleanly). */
export interface WasmBackend {
  dataIdMap: { get(dataId: DataId): { id: number; memoryOffset: number } };
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  disposeData(dataId: DataId, force?: boolean): boolean;
  wasm: { HEAPF32: Float32Array };
}

/** Upper bound for one im2col chunk in bytes. */
export const DEFAULT_CHUNK_BYTES = 48 * 1024 * 1024;
let CHUNK_BYTES = DEFAULT_CHUNK_BYTES;

/** The current im2col chunk bound in bytes. */
export function chunkBytes(): number {
  return CHUNK_BYTES;
}

/** Sets the im2col chunk bound (tests use a tiny one to exercise chunking); returns the previous value. */
export function setWasmChunkBytes(bytes: number): number {
  const prev = CHUNK_BYTES;
  CHUNK_BYTES = Math.max(1, bytes);
  return prev;
}

export const BACKEND = 'wasm';
/** The backend's own kernels, kept as fallbacks and as the building blocks. */
export const originals = new Map<string, KernelConfig>();

export function kernel(name: string): KernelFunc {
  const k = originals.get(name) ?? getKernel(name, BACKEND);
  if (k == null) throw new Error(`colorpipe wasm kernels: the wasm backend has no ${name} kernel`);
  return k.kernelFunc;
}

export function call(backend: WasmBackend, name: string, inputs: Record<string, TensorInfo>, attrs: NamedAttrMap = {}): TensorInfo {
  return kernel(name)({ inputs, attrs, backend: backend as never }) as TensorInfo;
}

/** Float offset of a tensor in the wasm heap. The heap view must be re-read after any allocation (it can grow). */
export function offsetOf(backend: WasmBackend, t: TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset >>> 2;
}

export function heap(backend: WasmBackend): Float32Array {
  return backend.wasm.HEAPF32;
}

export function dispose(backend: WasmBackend, ...ts: TensorInfo[]): void {
  for (const t of ts) backend.disposeData(t.dataId);
}


/**
 * A tensor aliasing `shape` floats of the heap at float offset `off` (no copy, no ownership). Release it with
 * `releaseView`, never `dispose` (that would free memory it does not own).
 */
export function viewAt(backend: WasmBackend, off: number, shape: number[]): TensorInfo {
  return (backend as unknown as { makeOutput(s: number[], d: 'float32', o: number): TensorInfo }).makeOutput(shape, 'float32', off * 4);
}

export function releaseView(backend: WasmBackend, v: TensorInfo): void {
  const b = backend as unknown as {
    dataIdMap: { get(d: DataId): { id: number }; delete(d: DataId): boolean };
    wasm: { tfjs: { disposeData(id: number): void } };
  };
  b.wasm.tfjs.disposeData(b.dataIdMap.get(v.dataId).id);
  b.dataIdMap.delete(v.dataId);
}
