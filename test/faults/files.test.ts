/**
 * Messages and files (issue 11, items 9, 10 and 13), end to end through the CLI: a write that cannot happen
 * (--out a file or below one, a full or read-only file system) is one line naming the path, never a stack
 * trace or a leftover temp file; a killed colorize leaves nothing that the next run does not clean up; a
 * 255-byte name is written; a 0-byte tar is reported; --quiet hides only the progress bar.
 * (Item 9's `pipe shard --out` below a file and `pipe train --out` a file, and item 11: cli.test.ts.)
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { FIXTURES, ROOT, tempDir } from '../helpers/tar.js';
import { exited, filesUnder, finish, lastJson, linesMatching, noStack, run, start, tempLeftovers, type CliResult } from '../helpers/cli.js';
import { alive, deadPid, descendants, mountTmpfs, photos, remountReadOnly } from '../helpers/faults.js';
import { tinyModel } from '../helpers/model.js';
import { waitFor } from '../helpers/wait.js';

const { dir: TMP, cleanup } = tempDir('colorpipe-faults-files-');
const unmounts: (() => void)[] = [];
after(() => {
  for (const u of unmounts.splice(0)) u();
  cleanup();
});

let modelDir: Promise<string> | undefined;
const model = (): Promise<string> => (modelDir ??= tinyModel(join(TMP, 'model')));
const TINY = join(ROOT, 'configs', 'tiny.json');
const SHARDS = join(FIXTURES, 'shards', 'data-*.tar');
const IMAGES = join(FIXTURES, 'images');
const trainArgs = (out: string, ...more: string[]) =>
  ['train', '--shards', SHARDS, '--config', TINY, '--steps', '2', '--backend', 'wasm', '--processes', '0', '--out', out, '--quiet', ...more];

interface Summary { total: number; written: number; skipped: number; failed: number }

/** One line on stderr, `colorpipe: ...` naming `path` (besides the run's first line, what trains); no stack trace. */
function oneLineNaming(r: CliResult, path: string, reason?: RegExp): void {
  noStack(r.stderr);
  const lines = r.stderr.trimEnd().split('\n').filter((l) => !l.startsWith('colorpipe: training '));
  assert.equal(lines.length, 1, r.stderr);
  assert.ok(lines[0]!.startsWith('colorpipe: ') && lines[0]!.includes(path), `names ${path}: ${r.stderr}`);
  if (reason) assert.match(lines[0]!, reason);
}

/** A tmpfs at `dir` with `options`, unmounted after the suite; the reason to skip when this machine has none. */
function tmpfs(dir: string, options: string): string | null {
  const m = mountTmpfs(dir, options);
  if (typeof m === 'string') return m;
  unmounts.push(m);
  return null;
}

/**
 * A 1 MB tmpfs at TMP/NAME holding the empty folders `dirs`, then made read-only; the reason to skip when this
 * machine has none.
 */
function readOnlyTmpfs(name: string, ...dirs: string[]): { mnt: string; why: string | null } {
  const mnt = join(TMP, name);
  // With no folder to make first, it is mounted read-only at once.
  const why = tmpfs(mnt, dirs.length > 0 ? 'size=1m' : 'size=1m,ro');
  if (!why && dirs.length > 0) {
    for (const d of dirs) mkdirSync(join(mnt, d));
    remountReadOnly(mnt);
  }
  return { mnt, why };
}

/** Exit 1 with one line naming `path` and saying the file system is read-only. */
function refusedReadOnly(r: CliResult, path: string): void {
  exited(r, 1);
  oneLineNaming(r, path, /: read-only file system$/);
}

// Writes that cannot happen: --out in the way, a full disk, a read-only directory or file system.

test('--out below a file (colorize, train, export) or a file (colorize, shard): one line naming it, no stack', { timeout: 60_000 }, async () => {
  const file = join(TMP, 'a-file');
  writeFileSync(file, 'x');
  const below = join(file, 'below');
  const m = await model();
  const cases: [args: string[], path: string][] = [
    [['colorize', '--in', IMAGES, '--out', below, '--model', m, '--quiet'], below],
    [['colorize', '--in', IMAGES, '--out', file, '--model', m, '--quiet'], file],
    [trainArgs(below), below],
    [['shard', '--in', IMAGES, '--out', file, '--quiet'], file],
    [['export', '--model', m, '--out', join(below, 'model.onnx')], below],
  ];
  for (const [args, path] of cases) {
    const r = await run(args, { timeoutMs: 30_000 });
    assert.ok(!r.timedOut, args.join(' '));
    assert.ok(r.status === 1 || r.status === 2, `${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
    oneLineNaming(r, path);
  }
});

test('a full disk (ENOSPC) under colorize: each file that did not fit is named once with the reason, the rest written, no temp file', { timeout: 60_000 }, async (t) => {
  const out = join(TMP, 'full-colorize');
  const why = tmpfs(out, 'size=32k');
  if (why) return t.skip(why);
  const r = await run(['colorize', '--in', IMAGES, '--out', join(out, 'o'), '--model', await model(), '--quiet', '--json'], { timeoutMs: 60_000 });
  exited(r, 1);
  noStack(r.stderr);
  const s = lastJson<Summary>(r.stdout);
  assert.ok(s.written > 0 && s.failed > 0, `some fit, some did not: ${JSON.stringify(s)}`);
  assert.equal(s.written + s.failed, s.total);
  const skipped = linesMatching(r.stderr, /^colorpipe: skipped /);
  assert.equal(skipped.length, s.failed, r.stderr);
  for (const l of skipped) assert.match(l, /^colorpipe: skipped .*\/o\/\S+\.jpg \(write\): .*no space left on device/);
  assert.equal(new Set(skipped).size, skipped.length, 'each once');
  assert.equal(filesUnder(join(out, 'o')).length, s.written);
  assert.deepEqual(tempLeftovers(out), []);
});

test('a full disk (ENOSPC) under pipe shard: one line naming the shard, no stack, no temp file', { timeout: 60_000 }, async (t) => {
  const out = join(TMP, 'full-shard');
  const why = tmpfs(out, 'size=48k');
  if (why) return t.skip(why);
  const r = await run(['shard', '--in', IMAGES, '--out', join(out, 's'), '--maxcount', '4', '--labels', 'dirs'], { timeoutMs: 60_000 });
  exited(r, 1);
  noStack(r.stderr);
  assert.match(r.stderr, /^colorpipe: cannot write .*\/s\/data-\d{6}\.tar: no space left on device$/m);
  assert.deepEqual(tempLeftovers(out), []);
});

test('a full disk (ENOSPC) under pipe train: one line naming the file it could not write, weights.bin inside the checkpoint', { timeout: 60_000 }, async (t) => {
  const out = join(TMP, 'full-train');
  // Room for the writability probe, not for a checkpoint (about 3 MB with the tiny model).
  const why = tmpfs(out, 'size=256k');
  if (why) return t.skip(why);
  const r = await run(trainArgs(join(out, 'run')), { timeoutMs: 60_000 });
  exited(r, 1);
  // The checkpoint's first file (weights.bin, written before model.json) is the one that does not fit; the line
  // names it inside the checkpoint, not the temp directory it was staged in, nor the checkpoint folder alone.
  oneLineNaming(r, join(out, 'run', 'checkpoints', 'step-00000002', 'weights.bin'), /^colorpipe: cannot write \S+: no space left on device$/);
  assert.deepEqual(tempLeftovers(out), []);
});

test('a read-only --out directory (chmod 555): pipe train fails up front with one line', { timeout: 60_000 }, async (t) => {
  const out = join(TMP, 'chmod-ro');
  mkdirSync(out);
  chmodSync(out, 0o555);
  try {
    writeFileSync(join(out, 'probe'), '');
    rmSync(join(out, 'probe'));
    return t.skip('chmod does not stop this user writing (root): see the read-only file system test');
  } catch {
    // Read-only for this user: the case to test.
  }
  const r = await run(trainArgs(out), { timeoutMs: 30_000 });
  exited(r, 1);
  oneLineNaming(r, out, /: permission denied$/);
  assert.ok(!existsSync(join(out, 'checkpoints')));
  chmodSync(out, 0o755);
});

test('an existing directory on a read-only file system: train and colorize fail up front with one line naming it', { timeout: 60_000 }, async (t) => {
  const { mnt, why } = readOnlyTmpfs('ro', 'run');
  if (why) return t.skip(why);
  const train = await run(trainArgs(join(mnt, 'run')), { timeoutMs: 30_000 });
  exited(train, 1);
  oneLineNaming(train, join(mnt, 'run'), /^colorpipe: cannot write .*: read-only file system$/);
  // Up front, before training: the line names the run directory itself (the writability probe), not a file a
  // step or a checkpoint writes, and the run holds nothing training makes.
  assert.equal(train.stderr, `colorpipe: cannot write ${join(mnt, 'run')}: read-only file system\n`);
  assert.deepEqual(filesUnder(join(mnt, 'run')).filter((f) => /^(metrics\.jsonl|data-order\.jsonl|checkpoints\/)/.test(f)), []);
  for (const made of ['metrics.jsonl', 'data-order.jsonl', 'checkpoints']) assert.ok(!existsSync(join(mnt, 'run', made)), made);
  const colorize = await run(['colorize', '--in', IMAGES, '--out', join(mnt, 'run'), '--model', await model(), '--quiet'], { timeoutMs: 30_000 });
  refusedReadOnly(colorize, join(mnt, 'run'));
});

test('pipe shard on a read-only file system: one line naming the directory, no stack', { timeout: 60_000 }, async (t) => {
  const { mnt, why } = readOnlyTmpfs('ro-shard', 's');
  if (why) return t.skip(why);
  const r = await run(['shard', '--in', IMAGES, '--out', join(mnt, 's'), '--labels', 'dirs'], { timeoutMs: 30_000 });
  refusedReadOnly(r, join(mnt, 's'));
});

test('--out not yet made, on a read-only file system: "read-only file system", not a misleading ENOENT', { timeout: 60_000 }, async (t) => {
  const { mnt, why } = readOnlyTmpfs('ro-new');
  if (why) return t.skip(why);
  const r = await run(trainArgs(join(mnt, 'new', 'run')), { timeoutMs: 30_000 });
  refusedReadOnly(r, join(mnt, 'new'));
});

// What a killed colorize leaves, and long names.

test('temp files a killed colorize left in --out (colorpipe\'s own names, any folder) are removed by the next run', { timeout: 60_000 }, async () => {
  const input = join(TMP, 'temps-in');
  const out = join(TMP, 'temps-out');
  await photos(input, 4, { name: (i) => (i < 2 ? `p${i}.jpg` : `sub/p${i}.jpg`) });
  mkdirSync(join(out, 'sub'), { recursive: true });
  const pid = deadPid();
  // src/core/atomic.ts tempPathFor: .tmp-PID-COUNTER-RANDOM (a file or a staged directory); and the older .tmp-TARGET-PID-COUNTER.
  const leftovers = [join(out, `.tmp-${pid}-0-deadbeef`), join(out, 'sub', `.tmp-${pid}-7-0badf00d`), join(out, `.tmp-p0.jpg-${pid}-3`)];
  for (const f of leftovers) writeFileSync(f, 'half a jpeg');
  mkdirSync(join(out, `.tmp-${pid}-9-cafe0123`));
  // Not colorpipe's: kept.
  writeFileSync(join(out, 'sub', 'notes.tmp'), 'mine');
  const r = await run(['colorize', '--in', input, '--out', out, '--model', await model(), '--quiet', '--json'], { timeoutMs: 60_000 });
  exited(r, 0);
  noStack(r.stderr);
  assert.equal(lastJson<Summary>(r.stdout).written, 4);
  assert.deepEqual(tempLeftovers(out), []);
  assert.deepEqual(filesUnder(out), ['p0.jpg', 'p1.jpg', 'sub/notes.tmp', 'sub/p2.jpg', 'sub/p3.jpg']);
});

test('kill -9 during colorize, then a rerun: no temp file, no process left, every image written exactly once', { timeout: 90_000 }, async () => {
  const input = join(TMP, 'kill-in');
  const out = join(TMP, 'kill-out');
  const n = 30;
  await photos(input, n, { w: 96, h: 72, name: (i) => `${i % 2 ? 'a' : 'b'}/p${String(i).padStart(2, '0')}.jpg` });
  // The slowest engine, one image a batch: the kill lands mid-run.
  const args = ['colorize', '--in', input, '--out', out, '--model', await model(), '--engine', 'tfjs', '--backend', 'cpu', '--batch', '1', '--quiet', '--json'];
  const p = start(args);
  const ended = finish(p, 60_000);
  assert.ok(await waitFor(() => filesUnder(out).length >= 3, 45_000), 'colorize wrote its first files');
  const kids = descendants(p.pid!);
  p.kill('SIGKILL');
  const killed = await ended;
  assert.equal(killed.signal, 'SIGKILL');
  assert.ok(await waitFor(() => !kids.some(alive), 2_000), `processes left: ${kids.filter(alive).join(' ')}`);
  const before = filesUnder(out).filter((f) => !f.split('/').some((part) => part.startsWith('.tmp-')));
  assert.ok(before.length < n, `killed mid-run (${before.length} of ${n} written)`);
  const rerun = await run(args, { timeoutMs: 60_000 });
  exited(rerun, 0);
  noStack(rerun.stderr);
  const s = lastJson<Summary>(rerun.stdout);
  assert.equal(s.skipped, before.length, 'what the killed run finished is kept');
  assert.equal(s.written, n - before.length, 'the rest written once');
  assert.equal(s.failed, 0);
  assert.deepEqual(tempLeftovers(out), []);
  const written = filesUnder(out);
  assert.equal(written.length, n);
  for (const f of written) {
    const meta = await sharp(join(out, f)).metadata();
    assert.deepEqual([meta.width, meta.height], [96, 72], `${f} is a whole image`);
  }
});

test('a 255-byte file name colorizes (the temp name does not lengthen it)', { timeout: 60_000 }, async () => {
  const input = join(TMP, 'long-in');
  const out = join(TMP, 'long-out');
  const name = `${'n'.repeat(251)}.jpg`;
  assert.equal(Buffer.byteLength(name), 255);
  await photos(input, 1, { name: () => name });
  copyFileSync(join(input, name), join(input, 'short.jpg'));
  const r = await run(['colorize', '--in', input, '--out', out, '--model', await model(), '--quiet', '--json'], { timeoutMs: 60_000 });
  exited(r, 0);
  noStack(r.stderr);
  assert.equal(lastJson<Summary>(r.stdout).written, 2);
  assert.deepEqual(readdirSync(out).sort(), [name, 'short.jpg'], 'both written, no temp file beside them');
});

// Bad inputs are reported, under --quiet too.

let emptyTarRun: Promise<{ empty: string; r: CliResult }> | undefined;
const emptyTar = () => (emptyTarRun ??= (async () => {
  const empty = join(TMP, 'zero', 'empty.tar');
  mkdirSync(join(TMP, 'zero'));
  writeFileSync(empty, '');
  const good = join(FIXTURES, 'shards', 'data-000000.tar');
  const r = await run(['train', '--shards', `${good},${empty}`, '--config', TINY, '--steps', '3', '--backend', 'wasm', '--processes', '0', '--out', join(TMP, 'zero', 'run')], { timeoutMs: 60_000 });
  return { empty, r };
})());

test('a 0-byte tar is reported as bad with its path and reason; training goes on', { timeout: 60_000 }, async () => {
  const { empty, r } = await emptyTar();
  exited(r, 0);
  noStack(r.stderr);
  assert.ok(linesMatching(r.stderr, new RegExp(`^colorpipe: skipped ${empty} \\(shards\\): empty file \\(0 bytes\\): not a tar$`)).length >= 1, r.stderr);
  assert.match(r.stderr, /done at step 3/);
});

test('a 0-byte tar is reported once, not once per epoch', { timeout: 60_000 }, async () => {
  const { empty, r } = await emptyTar();
  exited(r, 0);
  assert.equal(linesMatching(r.stderr, new RegExp(`skipped ${empty} `)).length, 1, r.stderr);
});

test('colorize --quiet hides only the progress bar: each bad input still has its line', { timeout: 60_000 }, async () => {
  const input = join(TMP, 'quiet-in');
  await photos(input, 2);
  copyFileSync(join(FIXTURES, 'bad', 'corrupt.jpg'), join(input, 'corrupt.jpg'));
  const r = await run(['colorize', '--in', input, '--out', join(TMP, 'quiet-out'), '--model', await model(), '--quiet', '--json'], { timeoutMs: 60_000 });
  exited(r, 1);
  noStack(r.stderr);
  assert.equal(linesMatching(r.stderr, new RegExp(`^colorpipe: skipped ${join(input, 'corrupt.jpg')} \\(`)).length, 1, r.stderr);
  assert.equal(lastJson<Summary>(r.stdout).written, 2);
});

test('train --quiet hides only the progress bar: the 0-byte tar is still reported', { timeout: 60_000 }, async () => {
  const empty = join(TMP, 'quiet-train', 'empty.tar');
  mkdirSync(join(TMP, 'quiet-train'));
  writeFileSync(empty, '');
  const r = await run(['train', '--shards', `${join(FIXTURES, 'shards', 'data-000000.tar')},${empty}`, '--config', TINY, '--steps', '1', '--backend', 'wasm', '--processes', '0', '--out', join(TMP, 'quiet-train', 'run'), '--quiet'], { timeoutMs: 60_000 });
  exited(r, 0);
  assert.ok(linesMatching(r.stderr, new RegExp(`^colorpipe: skipped ${empty} \\(shards\\)`)).length >= 1, r.stderr);
});
