/**
 * The layout's rules, checked on the sources (README, "Architecture"): no import cycle, no module importing
 * from a room above its own, no file in src/ past 450 lines. Imports are read with TypeScript's own
 * preprocessor (static imports, re-exports, dynamic import()) plus worker and child-process entries named with
 * `new URL('./x.js', import.meta.url)`, which are dependencies too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

const SRC = resolve('src');
const MAX_LINES = 450;

/**
 * Rooms from the bottom up. web/ is the page's TypeScript, bundled for the browser by esbuild (scripts/build-web.ts):
 * a sibling of the engines (it runs the model on onnxruntime-web), below serve/ (the server), which imports its
 * JSON types only. A module may import from its own room and from rooms of a lower rank; rooms of
 * the same rank are siblings that must not import each other (train and colorize, stages and model).
 */
const RANKS: Record<string, number> = {
  core: 0,
  'types.ts': 1, 'config.ts': 1,
  webdataset: 2, color: 2,
  stages: 3, network: 3, device: 3,
  tfjs: 4, onnx: 4, torch: 4, web: 4,
  train: 5, colorize: 5, shard: 5, serve: 5,
  commands: 6,
  'cli.ts': 7, 'index.ts': 7,
};

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The room of a source file: its first folder under src/, or its own name for a file at the top. */
function roomOf(file: string): string {
  return relative(SRC, file).split(sep)[0]!;
}

/** Relative imports of a file, resolved to source paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
  for (const m of text.matchAll(/new URL\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*,\s*import\.meta\.url/g)) specs.push(m[1]!);
  const out: string[] = [];
  for (const spec of specs) {
    if (!spec.startsWith('.')) continue;
    const target = resolve(dirname(file), spec.replace(/\.js$/, '.ts'));
    if (existsSync(target) && target.startsWith(SRC + sep)) out.push(target);
  }
  return out;
}

const files = walk(SRC);
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const rel = (f: string) => relative(SRC, f);

test('every room of src/ has a rank (a new room must say where it sits)', () => {
  const unknown = [...new Set(files.map(roomOf))].filter((r) => !(r in RANKS));
  assert.deepEqual(unknown, []);
});

test('no module imports from a room above its own or from a sibling room', () => {
  const bad: string[] = [];
  for (const [from, targets] of graph) {
    const a = roomOf(from);
    for (const to of targets) {
      const b = roomOf(to);
      if (a !== b && !(RANKS[b]! < RANKS[a]!)) bad.push(`${rel(from)} -> ${rel(to)} (${a} may not import ${b})`);
    }
  }
  assert.deepEqual(bad, []);
});

test('no import cycle', () => {
  // Tarjan's strongly connected components: any component of more than one file (or a self-import) is a cycle.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(rel(w));
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(comp.sort());
    }
  };
  for (const f of files) if (!idx.has(f)) visit(f);
  assert.deepEqual(cycles, []);
});

test(`no file in src/ is longer than ${MAX_LINES} lines`, () => {
  const long = files
    .map((f) => [rel(f), readFileSync(f, 'utf8').split('\n').length] as const)
    .filter(([, n]) => n > MAX_LINES)
    .map(([f, n]) => `${f}: ${n}`);
  assert.deepEqual(long, []);
});

test('the checks see the imports they police (a known edge and a worker entry are found)', () => {
  const shards = join(SRC, 'stages', 'shards.ts');
  assert.ok(graph.get(shards)!.includes(join(SRC, 'webdataset', 'tar.ts')));
  const lab = join(SRC, 'stages', 'lab.ts');
  assert.ok(graph.get(lab)!.includes(join(SRC, 'stages', 'lab-worker.ts')), 'new URL(...) worker entries count');
});

/** An engine's packages, and the one room that may import them (the engines' rooms below the graphs that use them). */
const ENGINE_PACKAGES: Array<[RegExp, string]> = [
  [/^@tensorflow\//, 'tfjs'],
  [/^onnxruntime-node/, 'onnx'],
  // The page's runtime: only the page's room bundles it.
  [/^onnxruntime-web/, 'web'],
];

test('an engine\'s packages are imported only in its room (tfjs in tfjs/, ONNX Runtime in onnx/, its web build in web/): colorize and train ask contracts', () => {
  const bad: string[] = [];
  for (const f of files) {
    for (const { fileName } of ts.preProcessFile(readFileSync(f, 'utf8'), true, true).importedFiles) {
      for (const [pkg, room] of ENGINE_PACKAGES) if (pkg.test(fileName) && roomOf(f) !== room) bad.push(`${rel(f)} -> ${fileName} (only ${room}/ may)`);
    }
  }
  assert.deepEqual(bad, []);
  // The check sees what it polices.
  const backend = ts.preProcessFile(readFileSync(join(SRC, 'tfjs', 'backend.ts'), 'utf8'), true, true).importedFiles.map((i) => i.fileName);
  assert.ok(backend.includes('@tensorflow/tfjs-core'));
});

test('colorize never imports train, nor train colorize', () => {
  const bad = [...graph].flatMap(([from, targets]) => targets
    .filter((to) => new Set([roomOf(from), roomOf(to)]).size === 2 && ['colorize', 'train'].includes(roomOf(from)) && ['colorize', 'train'].includes(roomOf(to)))
    .map((to) => `${rel(from)} -> ${rel(to)}`));
  assert.deepEqual(bad, []);
});

/** Every module a file reaches through its imports (itself included). */
function closure(file: string): Set<string> {
  const seen = new Set<string>();
  const stack = [file];
  while (stack.length) {
    const f = stack.pop()!;
    if (seen.has(f)) continue;
    seen.add(f);
    stack.push(...(graph.get(f) ?? []));
  }
  return seen;
}

test('the page (web/) imports only pure rooms (color, network, types) and, of packages, onnxruntime-web alone', () => {
  const web = files.filter((f) => roomOf(f) === 'web');
  assert.ok(web.length > 0);
  const rooms = new Set(['web', 'color', 'network', 'types.ts']);
  const bad: string[] = [];
  for (const f of web) {
    for (const to of graph.get(f)!) if (!rooms.has(roomOf(to))) bad.push(`${rel(f)} -> ${rel(to)}`);
  }
  // What the bundles take in, transitively: no Node module and no package but onnxruntime-web (checked on
  // the sources; tsconfig.web.json type-checks them without Node's types too).
  for (const f of new Set(web.flatMap((w) => [...closure(w)]))) {
    for (const { fileName } of ts.preProcessFile(readFileSync(f, 'utf8'), true, true).importedFiles) {
      if (!fileName.startsWith('.') && fileName !== 'onnxruntime-web') bad.push(`${rel(f)} -> ${fileName}`);
    }
  }
  assert.deepEqual(bad, []);
});

test("onnxruntime-web is imported in web/ only, and others take web/'s JSON types only (import type)", () => {
  const bad: string[] = [];
  for (const f of files.filter((f) => roomOf(f) !== 'web')) {
    const text = readFileSync(f, 'utf8');
    for (const { fileName } of ts.preProcessFile(text, true, true).importedFiles) {
      if (fileName === 'onnxruntime-web') bad.push(`${rel(f)} -> ${fileName}`);
    }
    for (const m of text.matchAll(/^(import|export)\b[^;]*?from\s+['"]((?:\.{1,2}\/)+web\/[^'"]+)['"]/gms)) {
      if (!/^import\s+type\b/.test(m[0])) bad.push(`${rel(f)} -> ${m[2]} (not import type)`);
    }
  }
  assert.deepEqual(bad, []);
});
