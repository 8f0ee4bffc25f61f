/**
 * What `npm pack` ships (package.json's `files`): the built library and CLI, and what they read at run time
 * (configs/*.json, the demo's photos with their licences, package.json for the version, the page `pipe serve`
 * serves); no tests, benchmarks,
 * fixtures, TypeScript sources or source maps. Runs `npm pack --dry-run --json` offline with --ignore-scripts (the
 * tests run after a build; prepack would build again).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers/tar.js';

/** Files under `dir` (relative to ROOT, POSIX separators), recursively. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir)).sort()) {
    const rel = `${dir}/${name}`;
    if (statSync(join(ROOT, rel)).isDirectory()) out.push(...filesUnder(rel));
    else out.push(rel);
  }
  return out;
}

interface Pkg {
  bin: Record<string, string>;
  main: string;
  types: string;
  exports: Record<string, { types: string; default: string }>;
  scripts: Record<string, string>;
}

test('npm pack ships the built CLI and library and what they read at run time, and nothing else', { timeout: 60_000 }, () => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '--offline'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 50_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const packed = new Set((JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path));
  const missing = (paths: string[]) => paths.filter((p) => !packed.has(p));

  // The entry points package.json names, and every module the CLI and library may load (workers included).
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Pkg;
  const entries = [
    ...Object.values(pkg.bin), pkg.main, pkg.types,
    ...Object.values(pkg.exports).flatMap((e) => [e.types, e.default]),
  ].map((p) => p.replace(/^\.\//, ''));
  assert.ok(entries.includes('dist/src/cli.js') && entries.includes('dist/src/index.js'));
  assert.deepEqual(missing(['package.json', 'README.md', 'LICENSE', ...entries]), []);
  const built = filesUnder('dist/src').filter((p) => p.endsWith('.js') || p.endsWith('.d.ts'));
  assert.ok(built.length > 50, 'built first');
  assert.deepEqual(missing(built), [], 'every compiled module and its types');

  // Read at run time: version.ts reads package.json; `pipe train --config configs/...` and `pipe demo` read
  // configs/*.json; `pipe demo` trains on demo/photos (whose MANIFEST.tsv and LICENSES/ must travel with them).
  const runtime = [...filesUnder('configs').filter((p) => p.endsWith('.json')), ...filesUnder('demo/photos')];
  assert.ok(runtime.includes('configs/demo.json') && runtime.includes('demo/photos/MANIFEST.tsv'));
  assert.ok(runtime.some((p) => p.startsWith('demo/photos/LICENSES/')));
  assert.deepEqual(missing(runtime), []);

  // The PyTorch engine's worker: a Python package run from source by the user's Python (no __pycache__).
  const python = filesUnder('src/torch/py').filter((p) => p.endsWith('.py'));
  assert.ok(python.includes('src/torch/py/colorpipe_torch/worker.py'));
  assert.deepEqual(missing(python), []);

  // `pipe serve` and `pipe export --web` serve the built page (scripts/build-web.ts): its HTML, bundles, stylesheet
  // and onnxruntime-web's module and WebAssembly, all of it (the page works offline, from no CDN).
  const web = filesUnder('dist/web');
  assert.ok(web.includes('dist/web/index.html') && web.includes('dist/web/assets/worker.js'), 'the page is built');
  assert.ok(web.some((p) => p.endsWith('.wasm')), "onnxruntime-web's WebAssembly");
  assert.deepEqual(missing(web), []);

  // Nothing for developers only: tests, benchmarks, fixtures, scripts, sources (but the worker's), source maps, CI.
  const extra = [...packed].filter((p) => !python.includes(p)).filter((p) =>
    /^(dist\/(test|bench|scripts)|test|bench|fixtures|scripts|src|docs|\.ci)\//.test(p) || p.endsWith('.map') || (p.endsWith('.ts') && !p.endsWith('.d.ts')));
  assert.deepEqual(extra, []);
  // What is left is exactly the list above (a new top-level folder must be chosen on purpose).
  const expected = new Set(['package.json', 'README.md', 'LICENSE', ...built, ...runtime, ...python, ...web]);
  assert.deepEqual([...packed].filter((p) => !expected.has(p)), []);

  // A fresh clone has no dist/: packing builds first (the library, then the page), from a clean dist/src.
  assert.match(pkg.scripts.prepack ?? '', /npm run -s build$/);
  assert.match(pkg.scripts.build ?? '', /^tsc -p tsconfig\.json && tsc -p tsconfig\.web\.json && node dist\/scripts\/build-web\.js$/);
});
