import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import ts from 'typescript';

test("the public API resolves by the package's name, as a user imports it", async () => {
  // Self-reference through package.json "exports": what `import ... from 'colorpipe'` gives a user.
  // (A specifier in a variable: the compiler does not look for dist/ before it has written it.)
  const pkg: string = 'colorpipe';
  const api = (await import(pkg)) as Record<string, unknown>;
  for (const name of [
    'pipeline', 'compose', 'shards', 'files', 'decode', 'lab', 'filter', 'shuffle', 'batch', 'prefetch', 'parallelMap',
    'groupByShape', 'progress', 'loader', 'loaderResumeFrom', 'trainGraph', 'colorizeGraph', 'colorizeBuffers',
    'evaluateFolder', 'writeShards', 'buildColorizer', 'loadColorizer', 'saveColorizer', 'setupTfjs', 'exportOnnx',
    'loadOnnxColorizer', 'onnxTrainEngine', 'loadRunner', 'registerLayers', 'rgbToLab', 'labToRgb', 'psnr', 'ColorpipeError', 'Reporter',
  ]) {
    assert.equal(typeof api[name], 'function', name);
  }
});

test("'colorpipe/layers' registers the custom layers without pulling in Node-only modules", async () => {
  const entry: string = 'colorpipe/layers';
  const layers = (await import(entry)) as { registerLayers?: unknown };
  assert.equal(typeof layers.registerLayers, 'function');
  // Everything it imports, transitively: tfjs packages only (a browser bundle can take it).
  const seen = new Set<string>();
  const bare = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const { fileName } of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
      if (fileName.startsWith('.')) visit(resolve(dirname(file), fileName.replace(/\.js$/, '.ts')));
      else bare.add(fileName);
    }
  };
  visit(resolve('src/tfjs/layers.ts'));
  assert.deepEqual([...bare].filter((b) => !b.startsWith('@tensorflow/')), []);
});
