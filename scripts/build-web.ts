/**
 * Builds the page of `pipe serve` and `pipe export --web` into dist/web/ (`npm run build` runs it after tsc;
 * `tsc -p tsconfig.web.json` type-checks the page first): esbuild bundles src/web/page.ts, runs.ts and worker.ts
 * for the browser, the HTML and the stylesheet are copied, and so is onnxruntime-web's own build (its module,
 * the JSEP glue and its WebAssembly, which run both the WebGPU and the WebAssembly providers): the worker imports
 * it as ./ort.min.mjs, so that onnxruntime-web finds its files beside itself and starts its threads from them.
 * Nothing is fetched from a CDN: the folder works offline.
 *
 * Usage (from the repository root): node dist/scripts/build-web.js
 */
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = join(ROOT, 'src/web');
const OUT = join(ROOT, 'dist/web');
const ASSETS = join(OUT, 'assets');

/** onnxruntime-web's files the page loads (the JSEP build: WebGPU and WebAssembly in one). */
export const ORT_FILES = ['ort.min.mjs', 'ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'];

/** `import ... from 'onnxruntime-web'` stays an import, of the copy beside the bundle. */
const ortBeside: Plugin = {
  name: 'ort-beside',
  setup(b) {
    b.onResolve({ filter: /^onnxruntime-web$/ }, () => ({ path: './ort.min.mjs', external: true }));
  },
};

async function main(): Promise<void> {
  rmSync(OUT, { recursive: true, force: true });
  mkdirSync(ASSETS, { recursive: true });
  await build({
    entryPoints: ['page.ts', 'runs.ts', 'worker.ts'].map((f) => join(SRC, f)),
    outdir: ASSETS,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome113', 'firefox121', 'safari17'],
    minify: true,
    sourcemap: false,
    legalComments: 'eof',
    plugins: [ortBeside],
    logLevel: 'warning',
  });
  for (const f of ['index.html', 'runs.html']) copyFileSync(join(SRC, f), join(OUT, f));
  for (const f of ['style.css', 'icon.svg']) copyFileSync(join(SRC, f), join(ASSETS, f));
  const ortDist = dirname(createRequire(import.meta.url).resolve('onnxruntime-web/ort-wasm-simd-threaded.jsep.wasm'));
  for (const f of ORT_FILES) copyFileSync(join(ortDist, f), join(ASSETS, f));

}

main().catch((err: unknown) => {
  process.stderr.write(`build-web: ${(err as Error).message ?? String(err)}\n`);
  process.exit(1);
});
