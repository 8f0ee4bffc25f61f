/**
 * Hostile input at the command line (issue 11): every case gets one clear line and the right exit status
 * (0 done, 1 failure, 2 usage error), never a stack trace, and nothing from outside reaches the terminal raw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, ROOT, tmpDir } from '../helpers/tar.js';
import { lastJson, noStack, pipe } from '../helpers/cli.js';
import { tinyModel } from '../helpers/model.js';

test('pipe --version and -v print the package version', { timeout: 30_000 }, () => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  for (const flag of ['--version', '-v']) {
    const r = pipe([flag]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `colorpipe ${version}\n`);
  }
});

test('usage errors exit 2 with one line naming the flag; an unquoted glob suggests quoting', { timeout: 60_000 }, (t) => {
  const dir = tmpDir(t);
  // `pipe train --shards data/*.tar` as the shell hands it over.
  const shards = [join(FIXTURES, 'shards', 'data-000000.tar'), join(FIXTURES, 'shards', 'data-000001.tar')];
  const glob = pipe(['train', '--shards', ...shards, '--out', join(dir, 'run')]);
  assert.equal(glob.status, 2, glob.stderr);
  assert.match(glob.stderr, /^colorpipe: Unexpected argument ".*data-000001\.tar": options take one value each; if the shell expanded a glob, quote it: --shards '.*\/\*\.tar'\n/);
  noStack(glob.stderr);
  for (const [cmd, ...args] of [['colorize', '--in', dir], ['shard', '--in', dir, '--out', join(dir, 'o'), 'stray'], ['eval', '--nope'], ['export']]) {
    const r = pipe([cmd!, ...args]);
    assert.equal(r.status, 2, `${cmd}: ${r.stderr}`);
    assert.match(r.stderr, /^colorpipe: (Missing --|Unexpected argument|Unknown option)/, cmd);
    noStack(r.stderr);
  }
  assert.equal(pipe(['nope']).status, 2);
  assert.equal(pipe(['train', '--shards', join(dir, 'none-*.tar'), '--out', join(dir, 'run')]).status, 2, 'nothing matches the shards: an option error');
});

test('--out that is a file, or below one: one line naming the path, exit 1, no stack', { timeout: 60_000 }, (t) => {
  const dir = tmpDir(t);
  const file = join(dir, 'file');
  writeFileSync(file, 'x');
  const shard = pipe(['shard', '--in', join(FIXTURES, 'bad'), '--out', join(file, 'below'), '--labels', 'none', '--quiet']);
  assert.equal(shard.status, 1, shard.stderr);
  assert.equal(shard.stderr, `colorpipe: cannot write ${join(file, 'below')}: a part of the path is a file, not a directory\n`);
  const train = pipe(['train', '--shards', join(FIXTURES, 'shards', 'data-*.tar'), '--config', join(ROOT, 'configs', 'tiny.json'), '--out', file, '--backend', 'cpu']);
  assert.equal(train.status, 1, train.stderr);
  assert.match(train.stderr, /^colorpipe: cannot write .*file: a file is in the way \(not a directory\)\n$/);
});

test('a file name with a newline or escape codes cannot forge a line: skip lines are escaped', { timeout: 60_000 }, (t) => {
  const dir = tmpDir(t);
  const input = join(dir, 'in');
  mkdirSync(input);
  const forged = 'x\ncolorpipe: 99 written, 0 skipped, 0 failed\x1b[2K\x9b1A.jpg';
  copyFileSync(join(FIXTURES, 'bad', 'corrupt.jpg'), join(input, forged));
  const r = pipe(['shard', '--in', input, '--out', join(dir, 'out'), '--labels', 'none']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(!/^colorpipe: 99 written/m.test(r.stderr), r.stderr);
  assert.ok(!/[\x1b\x9b]/.test(r.stderr), 'no raw escape codes');
  assert.match(r.stderr, /skipped x\\ncolorpipe: 99 written, 0 skipped, 0 failed\\x1b\[2K\\x9b1A\.jpg \(shard\)/);
});

test('symbolic link loops in --in: pipe shard and pipe colorize finish, each file once, each loop reported once', { timeout: 120_000 }, async (t) => {
  const dir = tmpDir(t);
  const { symlinkSync } = await import('node:fs');
  const input = join(dir, 'in');
  mkdirSync(join(input, 'd'), { recursive: true });
  copyFileSync(join(FIXTURES, 'images', 'renewable', 'dam1.jpg'), join(input, 'd', 'a.jpg'));
  // mkdir -p in/d; ln -s .. in/d/p1; ln -s .. in/d/p2: walked forever before.
  symlinkSync('..', join(input, 'd', 'p1'));
  symlinkSync('..', join(input, 'd', 'p2'));
  const shard = pipe(['shard', '--in', input, '--out', join(dir, 'shards'), '--labels', 'none']);
  assert.equal(shard.status, 0, shard.stderr);
  assert.equal((shard.stderr.match(/symbolic link/g) ?? []).length, 2, shard.stderr);
  noStack(shard.stderr);
  const model = await tinyModel(join(dir, 'model'));
  const colorize = pipe(['colorize', '--in', input, '--out', join(dir, 'out'), '--model', model, '--quiet', '--json']);
  assert.equal(colorize.status, 0, colorize.stderr);
  assert.equal(lastJson<{ written: number }>(colorize.stdout).written, 1);
  assert.equal((colorize.stderr.match(/symbolic link/g) ?? []).length, 2, colorize.stderr);
  noStack(colorize.stderr);
});

test('--resume refuses a changed model or schedule, naming each change; --steps may change', { timeout: 120_000 }, (t) => {
  const dir = tmpDir(t);
  const out = join(dir, 'run');
  const common = ['--shards', join(FIXTURES, 'shards', 'data-*.tar'), '--out', out, '--backend', 'wasm', '--processes', '0', '--quiet'];
  const first = pipe(['train', ...common, '--config', join(ROOT, 'configs', 'tiny.json'), '--steps', '2']);
  assert.equal(first.status, 0, first.stderr);
  const width = pipe(['train', ...common, '--resume', '--steps', '3', '--width', '0.25']);
  assert.equal(width.status, 2, width.stderr);
  assert.match(width.stderr, /model\.width: 0\.125 -> 0\.25/);
  noStack(width.stderr);
  const lr = pipe(['train', ...common, '--resume', '--steps', '3', '--lr', '0.01', '--batch', '4']);
  assert.equal(lr.status, 2, lr.stderr);
  assert.match(lr.stderr, /train\.lr: 0\.002 -> 0\.01; train\.batch: 8 -> 4/);
  // The run's own config (no --config: the checkpoint's) with more steps continues.
  const more = pipe(['train', ...common, '--resume', '--steps', '3']);
  assert.equal(more.status, 0, more.stderr);
  assert.match(more.stderr, /done at step 3/);
});
