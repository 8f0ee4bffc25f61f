/**
 * wasm32 memory: the tfjs-backend-wasm heap is one WebAssembly.Memory of at most 4 GiB (65535 pages), for the
 * weights, the optimizer state, every activation a training step keeps for its backward pass, and XNNPACK's
 * packed copies. Running out must never surface as `RuntimeError: Aborted()` or as a silently corrupted heap:
 *
 * 1. `checkTrainMemory` refuses a batch up front when the estimate below exceeds the limit (OutOfMemoryError
 *    naming the largest batch that fits);
 * 2. `guardWasmMalloc` makes a failed allocation of a tensor throw a WasmAllocationError at once (tfjs would
 *    otherwise register the tensor at address 0 and write over the heap's start);
 * 3. the trainer translates any of these failures (and an emscripten abort) into OutOfMemoryError, saying
 *    whether the engine can go on (a refused allocation: yes; an abort: no, the module is dead).
 */
import type { ModelConfig } from '../config.js';
import { OutOfMemoryError } from '../core/errors.js';
import { countParams, layerTable } from '../network/table.js';
import { WASM_HEAP_LIMIT, WasmAllocationError } from '../core/errors.js';


interface EmscriptenModule {
  _malloc: (n: number) => number;
  _free: (p: number) => void;
  HEAPU8: Uint8Array;
  [guarded]?: boolean;
}
const guarded = Symbol.for('colorpipe.guardedMalloc');

/**
 * Makes `_malloc` of the wasm backend's module throw WasmAllocationError instead of returning 0. Idempotent.
 * Covers every tensor allocation (tfjs allocates all tensors from JS); allocations inside the C++ kernels
 * (XNNPACK scratch) are covered by the up-front estimate's headroom.
 */
export function guardWasmMalloc(backend: unknown): void {
  const mod = (backend as { wasm?: EmscriptenModule }).wasm;
  if (!mod || mod[guarded]) return;
  // Emscripten's first _malloc call replaces Module._malloc with the raw export: trigger it before wrapping.
  mod._free(mod._malloc(16));
  const raw = mod._malloc;
  mod._malloc = (n: number) => {
    const p = raw(n);
    if (p === 0 && n > 0) throw new WasmAllocationError(n);
    return p;
  };
  mod[guarded] = true;
}

/** Bytes the wasm heap currently spans (it only grows: after a step, its peak). */
export function wasmHeapBytes(backend: unknown): number | null {
  const mod = (backend as { wasm?: EmscriptenModule }).wasm;
  return mod ? mod.HEAPU8.length : null;
}

/** True for the failures a full wasm heap produces. */
export function isWasmMemoryFailure(err: unknown): boolean {
  if (err instanceof WasmAllocationError) return true;
  if (err instanceof WebAssembly.RuntimeError) {
    return /Aborted|out of bounds|memory/i.test(err.message);
  }
  const msg = err instanceof Error ? err.message : String(err);
  return /Aborted\(|Cannot enlarge memory|Out of memory|OOM/i.test(msg);
}

export interface MemoryEstimate {
  /** Total bytes a training step needs at this batch size. */
  bytes: number;
  /** Of which: weights, gradients and optimizer state (independent of the batch). */
  fixed: number;
  /** Of which: per image (activations kept for the backward pass, their gradients, scratch). */
  perImage: number;
}

/**
 * Floats of activation per image for one training forward pass: every conv/dense output of the train graph
 * (low-level computed once), the fusion concatenation and the upsampled maps.
 */
export function activationFloatsPerImage(config: ModelConfig): number {
  const t = layerTable(config);
  let s = config.inputSize;
  let total = 0;
  let c = 1;
  for (const l of t.low) {
    s = Math.ceil(s / l.stride!);
    c = l.out!;
    total += s * s * c;
  }
  const lowS = s;
  let gs = lowS;
  for (const l of t.global) {
    if (l.kind === 'conv') {
      gs = Math.ceil(gs / l.stride!);
      total += gs * gs * l.out!;
    } else if (l.kind === 'dense') total += l.out!;
  }
  for (const l of t.mid) total += lowS * lowS * l.out!;
  const fuseIn = t.mid[t.mid.length - 1]!.out! + t.global[t.global.length - 1]!.out!;
  total += lowS * lowS * (fuseIn + t.fusion[1]!.out!);
  s = lowS;
  let prev = t.fusion[1]!.out!;
  for (const l of t.color) {
    if (l.kind === 'upsample') {
      s *= 2;
      total += s * s * prev;
    } else {
      prev = l.out!;
      total += s * s * prev;
    }
  }
  return total;
}

/**
 * Calibration of the estimate, measured on the wasm engine (tfjs 4.22, Adam, colorpipe's kernels) for the
 * paper network at 224: peak heap 1461 MB at batch 2 and 1941 MB at batch 8, i.e. about 80 MB per image
 * (2.6 bytes-per-float copies of the 7.8M activation floats per image: a conv output, the batch-norm/ReLU
 * output, and their gradients live until the backward pass ends) and about 1.3 GB fixed (weights, gradients,
 * two Adam moments, transient updates and XNNPACK's packed copy of the 25.7M-weight FC: ~7.6 copies of 170 MB
 * including heap-growth slack). The constants below over-estimate both by about 1.25x, so a refused batch
 * would really have failed and an accepted one has headroom for fragmentation.
 */
export const FLOATS_PER_ACTIVATION = 4;
export const COPIES_PER_PARAM = 6;
/** Binary, XNNPACK state, the im2col chunk (kernels/wasm.ts), fragmentation. */
export const FIXED_OVERHEAD_BYTES = 384 * 1024 * 1024;

/** Estimated wasm heap bytes for training `config` at `batch` (conservative: an over-estimate by design). */
export function estimateTrainMemory(config: ModelConfig, batch: number): MemoryEstimate {
  const perImage = activationFloatsPerImage(config) * 4 * FLOATS_PER_ACTIVATION;
  const fixed = countParams(config).total * 4 * COPIES_PER_PARAM + FIXED_OVERHEAD_BYTES;
  return { bytes: fixed + perImage * batch, fixed, perImage };
}

/** The largest batch whose estimate fits `limit` bytes (0 when even one image does not). */
export function maxTrainBatch(config: ModelConfig, limit = WASM_HEAP_LIMIT): number {
  const e = estimateTrainMemory(config, 1);
  return Math.max(0, Math.floor((limit - e.fixed) / e.perImage));
}

const gib = (b: number) => (b / 2 ** 30).toFixed(2);

/**
 * Throws OutOfMemoryError when training `config` at `batch` cannot fit the wasm heap, naming the largest batch
 * that fits (or a smaller input size/width when none does).
 */
export function checkTrainMemory(config: ModelConfig, batch: number): void {
  const e = estimateTrainMemory(config, batch);
  if (e.bytes <= WASM_HEAP_LIMIT) return;
  throw new OutOfMemoryError(
    `Training ${config.inputSize}px, width ${config.width} at batch ${batch} needs about ${gib(e.bytes)} GiB, more than ` +
      `the wasm engine's ${gib(WASM_HEAP_LIMIT)} GiB (wasm32). ${suggestion(config)}`,
  );
}

function suggestion(config: ModelConfig): string {
  const max = maxTrainBatch(config);
  return max >= 1
    ? `Try --batch ${max} (or smaller), or a GPU engine (--backend tensorflow or webgpu).`
    : 'Even batch 1 does not fit: lower --size or --width, or use a GPU engine (--backend tensorflow or webgpu).';
}

/** Message for a memory failure during a step at `batch`. */
export function wasmOomMessage(config: ModelConfig, batch: number, err: unknown): string {
  const dead = !(err instanceof WasmAllocationError);
  const max = Math.min(maxTrainBatch(config), Math.max(1, Math.floor(batch / 2)));
  const tryBatch = max >= 1 && max < batch ? `Try --batch ${max}.` : suggestion(config);
  return (
    `The wasm engine ran out of memory at batch ${batch} (${config.inputSize}px, width ${config.width}; wasm32 heap limit ` +
    `${gib(WASM_HEAP_LIMIT)} GiB). ${tryBatch}` +
    (dead
      ? ' The wasm module aborted and cannot continue in this process: exit and resume from the last checkpoint (--resume).'
      : '')
  );
}
