import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  activationFloatsPerImage,
  checkTrainMemory,
  estimateTrainMemory,
  guardWasmMalloc,
  isWasmMemoryFailure,
  maxTrainBatch,
  wasmOomMessage,
} from '../../src/tfjs/memory.js';
import { OutOfMemoryError, WASM_HEAP_LIMIT, WasmAllocationError } from '../../src/core/errors.js';

const PAPER = { inputSize: 224, width: 1, numClasses: 205 };

test('estimate grows with batch and size; the paper config fits wasm32 at batch 8 but not 128', () => {
  const e8 = estimateTrainMemory(PAPER, 8);
  const e16 = estimateTrainMemory(PAPER, 16);
  assert.equal(e16.bytes - e8.bytes, 8 * e8.perImage);
  assert.ok(estimateTrainMemory({ ...PAPER, inputSize: 112 }, 8).bytes < e8.bytes);
  assert.ok(e8.bytes < WASM_HEAP_LIMIT, `batch 8 must fit: ${e8.bytes}`);
  assert.ok(maxTrainBatch(PAPER) >= 8);
  assert.doesNotThrow(() => checkTrainMemory(PAPER, 8));
  assert.throws(() => checkTrainMemory(PAPER, 128), (err: unknown) => {
    assert.ok(err instanceof OutOfMemoryError);
    assert.match(err.message, new RegExp(`--batch ${maxTrainBatch(PAPER)}\\b`));
    return true;
  });
  // 224x224 low-level activations alone: 112*112*64 + 112*112*128 + ... per image.
  assert.ok(activationFloatsPerImage(PAPER) > 112 * 112 * (64 + 128));
  assert.equal(maxTrainBatch({ inputSize: 4096, width: 4, numClasses: 0 }), 0);
  assert.throws(() => checkTrainMemory({ inputSize: 4096, width: 4, numClasses: 0 }, 1), /lower --size or --width/);
});

test('guardWasmMalloc makes a failed allocation throw instead of returning address 0', () => {
  let calls = 0;
  const mod = {
    _malloc: (n: number) => {
      calls++;
      return n > 1000 ? 0 : 64;
    },
    _free: () => {},
    HEAPU8: new Uint8Array(16),
  };
  guardWasmMalloc({ wasm: mod });
  assert.equal(mod._malloc(8), 64);
  assert.throws(() => mod._malloc(4096), WasmAllocationError);
  guardWasmMalloc({ wasm: mod }); // idempotent: not wrapped twice
  const before = calls;
  mod._malloc(8);
  assert.equal(calls, before + 1);
});

test('memory failures are recognized and explained', () => {
  assert.ok(isWasmMemoryFailure(new WasmAllocationError(10)));
  assert.ok(isWasmMemoryFailure(new WebAssembly.RuntimeError('Aborted(). Build with -sASSERTIONS for more info.')));
  assert.ok(isWasmMemoryFailure(new WebAssembly.RuntimeError('memory access out of bounds')));
  assert.ok(!isWasmMemoryFailure(new TypeError('x is undefined')));
  const m = wasmOomMessage(PAPER, 16, new WasmAllocationError(1));
  assert.match(m, /--batch 8\b/);
  assert.doesNotMatch(m, /cannot continue/);
  assert.match(wasmOomMessage(PAPER, 16, new WebAssembly.RuntimeError('Aborted()')), /--resume/);
});
