/**
 * Multi-threaded tfjs-backend-wasm in Node.
 *
 * tfjs-backend-wasm ships a threaded SIMD build (XNNPACK on an emscripten pthread pool) but disables it in
 * Node (WASM_HAS_MULTITHREAD_SUPPORT is false there, tfjs issue 3830) because emscripten starts its pthread
 * workers from blob: URLs, which Node's worker_threads cannot load:
 * - the worker script is handed to `new Worker(URL.createObjectURL(blob))`;
 * - each worker then `importScripts` the main module script, also from a blob: URL.
 *
 * This shim makes both loadable: the worker script (the package's own wasm-out/*.worker.js contents) is
 * written once to a temporary .cjs file whose path `URL.createObjectURL` returns for that blob (and only for
 * it: other blobs get a normal blob: URL), and the worker is told to import the package's
 * wasm-out/tfjs-backend-wasm-threaded-simd.js by path instead of the blob. Then the flag is turned on.
 *
 * Must run before the wasm backend initializes (setupTfjs calls it). The temporary file is removed at exit.
 */
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';

const require = createRequire(import.meta.url);
let state: { ok: boolean; reason: string } | null = null;

export function enableNodeWasmThreads(): { ok: boolean; reason: string } {
  if (state) return state;
  try {
    if (typeof SharedArrayBuffer === 'undefined') return (state = { ok: false, reason: 'SharedArrayBuffer is unavailable' });
    const wasmDir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
    const workerModule = join(wasmDir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js');
    const mainScript = join(wasmDir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
    if (!existsSync(workerModule) || !existsSync(mainScript)) {
      return (state = { ok: false, reason: 'the threaded wasm build is missing from @tensorflow/tfjs-backend-wasm' });
    }
    const contents = (require(workerModule) as { wasmWorkerContents: string }).wasmWorkerContents;
    const dir = mkdtempSync(join(tmpdir(), 'colorpipe-wasm-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const workerPath = join(dir, 'tfjs-backend-wasm-threaded-simd.worker.cjs');
    // The worker receives the main script as a Blob: import the same script from the package by path instead.
    const shim =
      `\n;(function(){var orig=self.onmessage;self.onmessage=function(e){` +
      `if(e&&e.data&&e.data.cmd==="load"&&typeof e.data.urlOrBlob!=="string")e.data.urlOrBlob=${JSON.stringify(mainScript)};` +
      `return orig(e)}})();\n`;
    // As tfjs does before making its blob: the template literal holds raw newlines inside string literals.
    writeFileSync(workerPath, contents.replace(/\n/g, "\\n") + shim);
    const original = URL.createObjectURL.bind(URL);
    // tfjs makes the worker-script blob with type 'application/javascript' (the main-script blob is 'text/javascript').
    URL.createObjectURL = (obj: Blob | MediaSource) =>
      obj instanceof Blob && obj.type === 'application/javascript' ? workerPath : original(obj as Blob);
    tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
    return (state = { ok: true, reason: '' });
  } catch (err) {
    return (state = { ok: false, reason: (err as Error).message.split('\n')[0]! });
  }
}
