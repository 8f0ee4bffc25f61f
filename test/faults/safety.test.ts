/**
 * Untrusted folders and shared run folders (issue 20), end to end through the CLI: a model folder, a run's
 * state.json or its `model` link that names a file outside its folder (`..`, an absolute path, a link leading
 * out) is refused with one line naming the file and the field, before anything is read or written; one process
 * writes a run or shard folder at a time, a lock left by a killed one is taken over, and a stopped `pipe shard`
 * rerun keeps the whole shards it wrote.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { FIXTURES, ROOT, tempDir } from '../helpers/tar.js';
import { exited, filesUnder, finish, noStack, run, start, tempLeftovers, type CliResult } from '../helpers/cli.js';
import { photos } from '../helpers/faults.js';
import { tinyModel } from '../helpers/model.js';
import { waitFor } from '../helpers/wait.js';

const { dir: TMP, cleanup } = tempDir('colorpipe-faults-safety-');
after(cleanup);

const IMAGES = join(FIXTURES, 'images');
const SHARDS = join(FIXTURES, 'shards', 'data-*.tar');
const TINY = join(ROOT, 'configs', 'tiny.json');
const LOCK = '.colorpipe.lock';
const trainArgs = (out: string, ...more: string[]) =>
  ['train', '--shards', SHARDS, '--config', TINY, '--backend', 'wasm', '--processes', '0', '--out', out, '--quiet', ...more];

let modelDir: Promise<string> | undefined;
const model = (): Promise<string> => (modelDir ??= tinyModel(join(TMP, 'model')));

/** Exit `status` with exactly one line on stderr, `colorpipe: ` and then `line` (a string: the whole of it). */
function oneLine(r: CliResult, status: number, line: string | RegExp): void {
  exited(r, status);
  noStack(r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  if (typeof line === 'string') assert.equal(lines[0], `colorpipe: ${line}`);
  else assert.match(lines[0]!, line);
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// A model folder that names a file outside it.

/** A copy of the tiny model whose weight file is `secret` (a copy of its weights: loadable) by `path`, or a link. */
async function hostileModel(name: string, path: (secret: string) => string, link = false): Promise<{ dir: string; json: string; field: string }> {
  const dir = join(TMP, 'models', name);
  cpSync(await model(), dir, { recursive: true });
  const secret = join(TMP, 'secretdir', `${name}.bin`);
  mkdirSync(join(TMP, 'secretdir'), { recursive: true });
  renameSync(join(dir, 'weights.bin'), secret);
  const json = join(dir, 'model.json');
  const m = JSON.parse(readFileSync(json, 'utf8')) as { weightsManifest: { paths: string[] }[] };
  m.weightsManifest[0]!.paths = [path(secret)];
  writeFileSync(json, JSON.stringify(m));
  if (link) symlinkSync(secret, join(dir, path(secret)));
  return { dir, json, field: `weightsManifest[0].paths[0] ${JSON.stringify(path(secret))}` };
}

const HOSTILE: [name: string, path: (secret: string) => string, link: boolean, why: string][] = [
  ['dotdot', (s) => `../../secretdir/${s.split('/').at(-1)}`, false, 'leads out of the folder (..)'],
  ['absolute', (s) => s, false, 'is an absolute path'],
  ['link', () => 'weights.bin', true, 'is a link that leads out of the folder'],
];

for (const [name, path, link, why] of HOSTILE) {
  test(`a model.json whose weight path ${why}: colorize (tfjs and onnx), export and eval refuse it, one line naming model.json and the field`, { timeout: 120_000 }, async () => {
    const m = await hostileModel(name, path, link);
    const line = `${m.json}: ${m.field} ${why}; a model reads only files in its own folder`;
    const out = join(TMP, `out-${name}`);
    const runs: string[][] = [
      ['colorize', '--in', IMAGES, '--out', join(out, 'tfjs'), '--model', m.dir, '--engine', 'tfjs', '--quiet'],
      ['colorize', '--in', IMAGES, '--out', join(out, 'default'), '--model', m.dir, '--quiet'],
      ['export', '--model', m.dir, '--out', join(out, 'model.onnx')],
      ['eval', '--in', IMAGES, '--model', m.dir],
    ];
    for (const args of runs) {
      const r = await run(args, { timeoutMs: 60_000 });
      // A model that cannot be used is a bad --model: exit 2, as for one that cannot be read.
      oneLine(r, 2, line);
    }
    assert.deepEqual(filesUnder(out), [], 'nothing written');
    assert.deepEqual(readdirSync(m.dir).filter((f) => f.startsWith('model.onnx')), [], 'no export cached beside it');
  });
}

test('the ONNX export cache is colorpipe\'s own: a model.onnx that is a link out of the folder is rebuilt, never followed', { timeout: 120_000 }, async () => {
  const dir = join(TMP, 'cached');
  cpSync(await model(), dir, { recursive: true });
  const args = ['colorize', '--in', IMAGES, '--out', join(TMP, 'cached-out'), '--model', dir, '--engine', 'onnx', '--quiet', '--overwrite'];
  exited(await run(args, { timeoutMs: 60_000 }), 0);
  assert.ok(statSync(join(dir, 'model.onnx')).isFile(), 'cached');
  const elsewhere = join(TMP, 'not-a-model.onnx');
  writeFileSync(elsewhere, 'not an onnx model');
  renameSync(join(dir, 'model.onnx'), join(TMP, 'moved.onnx'));
  symlinkSync(elsewhere, join(dir, 'model.onnx'));
  const r = await run(args, { timeoutMs: 60_000 });
  exited(r, 0);
  noStack(r.stderr);
  assert.ok(!statSync(join(dir, 'model.onnx'), { throwIfNoEntry: false })?.isSymbolicLink());
  assert.deepEqual(readFileSync(join(dir, 'model.onnx')), readFileSync(join(TMP, 'moved.onnx')), 'rebuilt, the same export');
  assert.equal(readFileSync(elsewhere, 'utf8'), 'not an onnx model', 'the link\'s target untouched');
});

// A run directory that leads out: its model link, its state.json's checkpoint.

let baseRun: Promise<string> | undefined;
function base(): Promise<string> {
  return (baseRun ??= (async () => {
    const out = join(TMP, 'base');
    exited(await run(trainArgs(out, '--steps', '2', '--checkpoint-every', '2'), { timeoutMs: 60_000 }), 0);
    return out;
  })());
}

test('a run whose model link leads out of it: colorize and export refuse it, one line naming the run and the link', { timeout: 120_000 }, async () => {
  const runDir = join(TMP, 'run-link');
  mkdirSync(runDir);
  symlinkSync(await model(), join(runDir, 'model'));
  const line = `${runDir}: the model "model/model.json" is a link that leads out of the folder; a run reads only files in its own directory`;
  oneLine(await run(['colorize', '--in', IMAGES, '--out', join(TMP, 'run-link-out'), '--model', runDir, '--quiet'], { timeoutMs: 60_000 }), 2, line);
  oneLine(await run(['export', '--model', runDir], { timeoutMs: 60_000 }), 2, line);
  assert.deepEqual([...filesUnder(join(TMP, 'run-link-out')), ...filesUnder(runDir)], [], 'nothing written');
});

test('a run whose state.json names a checkpoint through a link out of it: --resume refuses it, one line naming state.json and the field', { timeout: 120_000 }, async () => {
  const src = await base();
  const runDir = join(TMP, 'run-ckpt-link');
  mkdirSync(runDir);
  cpSync(join(src, 'state.json'), join(runDir, 'state.json'));
  symlinkSync(join(src, 'checkpoints'), join(runDir, 'checkpoints'));
  const r = await run(trainArgs(runDir, '--resume', '--steps', '3'), { timeoutMs: 60_000 });
  oneLine(r, 2, `${join(runDir, 'state.json')}: checkpoint "checkpoints/step-00000002" is a link that leads out of the folder; a run reads only files in its own directory`);
  assert.deepEqual(readdirSync(runDir).sort(), ['checkpoints', 'state.json'], 'nothing written');
});

// One writer per run folder.

/** `pipe ARGS...` started, once `cond(pid)` holds while it still runs (or the test fails), with its result to come. */
async function startedUntil(args: string[], cond: (pid: number) => boolean): Promise<{ p: ChildProcess; ended: Promise<CliResult> }> {
  const p = start(args);
  const ended = finish(p, 120_000);
  assert.ok(await waitFor(() => cond(p.pid!) || p.exitCode !== null, 60_000) && p.exitCode === null, `${args[0]} under way`);
  return { p, ended };
}

/** The pid a folder's lock file names, or null when it has none. */
function lockPid(dir: string): number | null {
  try {
    return (JSON.parse(readFileSync(join(dir, LOCK), 'utf8')) as { pid: number }).pid;
  } catch {
    return null;
  }
}

/** The step a run's state.json records. */
const stepOf = (runDir: string) => (JSON.parse(readFileSync(join(runDir, 'state.json'), 'utf8')) as { step: number }).step;

/** The refusal of a second writer of `dir` while `pid` (`command`) holds it. */
function inUse(dir: string, command: string, pid: number): RegExp {
  return new RegExp(`^colorpipe: ${escape(dir)} is in use by ${command} \\(pid ${pid} on host ${escape(os.hostname())}, since \\S+\\): one run writes a folder at a time$`);
}

test('two pipe train on one --out: the second (train, --resume, demo) is refused naming pid, host and start; Ctrl-C releases the lock; a killed run\'s lock is taken over', { timeout: 240_000 }, async () => {
  const runDir = join(TMP, 'busy');
  let stderr = '';
  const a = start(trainArgs(runDir, '--steps', '100000'));
  const endedA = finish(a, 180_000, (_o, e) => (stderr = e));
  assert.ok(await waitFor(() => stderr.includes('colorpipe: training '), 60_000), `first run training: ${stderr}`);
  assert.equal(lockPid(runDir), a.pid);
  for (const args of [trainArgs(runDir, '--steps', '2'), trainArgs(runDir, '--resume', '--steps', '2'), ['demo', '--out', runDir, '--steps', '1', '--quiet']]) {
    oneLine(await run(args, { timeoutMs: 60_000 }), 1, inUse(runDir, 'pipe train', a.pid!));
  }
  a.kill('SIGINT');
  const ra = await endedA;
  exited(ra, 130);
  assert.ok(!existsSync(join(runDir, LOCK)), 'released on Ctrl-C');

  // kill -9 leaves the lock; the next run sees its process gone and takes it over, saying so.
  const b = await startedUntil(trainArgs(runDir, '--resume', '--steps', '100000'), (pid) => lockPid(runDir) === pid);
  const pidB = b.p.pid!;
  b.p.kill('SIGKILL');
  assert.equal((await b.ended).signal, 'SIGKILL');
  assert.equal(lockPid(runDir), pidB, 'a killed run leaves its lock');
  const stopped = stepOf(runDir);
  const r = await run(trainArgs(runDir, '--resume', '--steps', String(stopped + 1)), { timeoutMs: 60_000 });
  exited(r, 0);
  noStack(r.stderr);
  assert.match(r.stderr, new RegExp(`^colorpipe: note: ${escape(runDir)}: taking over the lock of pipe train \\(pid ${pidB} on host ${escape(os.hostname())}, since \\S+\\), which is no longer running$`, 'm'));
  assert.match(r.stderr, new RegExp(`done at step ${stopped + 1}`));
  assert.ok(!existsSync(join(runDir, LOCK)), 'released at the end');
  assert.deepEqual(tempLeftovers(runDir), []);
});

test('a run folder locked on another host is refused: its liveness cannot be checked from here, and the line says which file to remove', { timeout: 60_000 }, async () => {
  const runDir = join(TMP, 'other-host');
  mkdirSync(runDir);
  writeFileSync(join(runDir, LOCK), JSON.stringify({ pid: 4242, host: 'elsewhere.example', since: '2026-01-02T03:04:05.000Z', command: 'pipe train' }));
  oneLine(await run(trainArgs(runDir, '--steps', '1'), { timeoutMs: 60_000 }), 1,
    `${runDir} is locked by pipe train (pid 4242 on host elsewhere.example, since 2026-01-02T03:04:05.000Z); ` +
      `whether it still runs cannot be checked from ${os.hostname()}: if it does not, remove ${join(runDir, LOCK)}`);
  assert.deepEqual(readdirSync(runDir), [LOCK], 'nothing written');
});

test('pipe shard: a second into one --out is refused; Ctrl-C leaves whole shards and a rerun keeps them; a killed run\'s lock is taken over; the result is byte-identical', { timeout: 240_000 }, async () => {
  const input = join(TMP, 'shard-in');
  await photos(input, 300, { w: 32, h: 24 });
  const shard = (out: string) => ['shard', '--in', input, '--out', out, '--maxcount', '1', '--labels', 'none', '--quiet'];
  const ref = join(TMP, 'shard-ref');
  exited(await run(shard(ref), { timeoutMs: 120_000 }), 0);
  const out = join(TMP, 'shard-out');
  const tars = () => (existsSync(out) ? readdirSync(out).filter((f) => f.endsWith('.tar')).length : 0);

  // Paused (SIGSTOP) once two shards are written, so that it is surely still running.
  const a = await startedUntil(shard(out), () => tars() >= 2);
  a.p.kill('SIGSTOP');
  oneLine(await run(shard(out), { timeoutMs: 60_000 }), 1, inUse(out, 'pipe shard', a.p.pid!));
  a.p.kill('SIGINT');
  a.p.kill('SIGCONT');
  const ra = await a.ended;
  exited(ra, 130);
  noStack(ra.stderr);
  assert.ok(!existsSync(join(out, 'classes.json')) && !existsSync(join(out, LOCK)));
  const kept = readdirSync(out).filter((f) => f.endsWith('.tar')).sort();
  assert.ok(kept.length >= 2 && kept.length < 300, `stopped early: ${kept.length} shards`);
  const inodes = kept.map((f) => statSync(join(out, f)).ino);

  // The rerun is killed in turn (its lock left behind); the one after takes the lock over and keeps every whole shard.
  const b = await startedUntil(shard(out), () => tars() >= kept.length + 2);
  b.p.kill('SIGKILL');
  await b.ended;
  assert.equal(lockPid(out), b.p.pid);
  const r = await run(shard(out), { timeoutMs: 120_000 });
  exited(r, 0);
  noStack(r.stderr);
  assert.match(r.stderr, new RegExp(`^colorpipe: note: ${escape(out)}: taking over the lock of pipe shard \\(pid ${b.p.pid} on host \\S+, since \\S+\\), which is no longer running$`, 'm'));
  assert.match(r.stderr, new RegExp(`^colorpipe: wrote 300 samples in 300 shards to ${escape(out)}; skipped 0; kept the first \\d+ shards, which an earlier run wrote$`, 'm'));
  assert.deepEqual(kept.map((f) => statSync(join(out, f)).ino), inodes, 'the first run\'s shards kept, not rewritten');
  assert.deepEqual(readdirSync(out).sort(), readdirSync(ref).sort(), 'no lock, progress or temp file left');
  for (const f of readdirSync(ref)) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(ref, f))), f);
});

// From the last round: pipe bench where the benchmarks are not.

test('pipe bench from an installed package (no bench/, no fixtures/) says in one line that it runs in a clone; in an unbuilt clone, to build', { timeout: 60_000 }, async () => {
  // What npm installs: package.json and dist/src/ (package.json's `files`; test/package.test.ts checks the list).
  const pkg = join(TMP, 'installed', 'node_modules', 'colorpipe');
  cpSync(join(ROOT, 'dist', 'src'), join(pkg, 'dist', 'src'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
  const installed = join(pkg, 'dist', 'src', 'cli.js');
  oneLine(await run(['bench', 'train'], { timeoutMs: 30_000, cli: installed }), 2,
    "pipe bench runs in a clone of the colorpipe repository (git clone, then 'npm ci' and 'npm run build'): the installed package ships without the benchmarks and their fixtures");
  // A clone with the benchmark's source but not its build.
  mkdirSync(join(pkg, 'bench'));
  writeFileSync(join(pkg, 'bench', 'train.ts'), '');
  oneLine(await run(['bench', 'train'], { timeoutMs: 30_000, cli: installed }), 2,
    `Benchmark ${join(pkg, 'dist', 'bench', 'train.js')} is not built: run 'npm run build' first`);
});
