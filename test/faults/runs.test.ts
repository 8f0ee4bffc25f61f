/**
 * Runs that never finished (issue 11, items 2 and 3), end to end through the CLI: a symbolic link loop in --in
 * is walked once and reported, and a damaged newest checkpoint sends `--resume` to the older intact one with
 * one warning line, never a stack trace or a TypeError.
 * (Item 2's two `..` links in one folder: cli.test.ts.)
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, ROOT, tempDir } from '../helpers/tar.js';
import { exited, filesUnder, lastJson, linesMatching, noStack, run, tempLeftovers } from '../helpers/cli.js';
import { photos } from '../helpers/faults.js';
import { tinyModel } from '../helpers/model.js';

const { dir: TMP, cleanup } = tempDir('colorpipe-faults-runs-');
after(cleanup);

let modelDir: Promise<string> | undefined;
const model = (): Promise<string> => (modelDir ??= tinyModel(join(TMP, 'model')));

/** Colorizes and shards `input`; both finish, each photo once, and each link of the loop is named exactly once. */
async function walksOnce(input: string, out: string, photosIn: number, links: string[]): Promise<void> {
  const colorize = await run(['colorize', '--in', input, '--out', join(out, 'colorized'), '--model', await model(), '--quiet', '--json'], { timeoutMs: 60_000 });
  exited(colorize, 0);
  noStack(colorize.stderr);
  assert.equal(lastJson<{ written: number }>(colorize.stdout).written, photosIn);
  assert.equal(filesUnder(join(out, 'colorized')).length, photosIn, 'each photo written once, under one path');
  const shard = await run(['shard', '--in', input, '--out', join(out, 'shards'), '--labels', 'none'], { timeoutMs: 60_000 });
  exited(shard, 0);
  noStack(shard.stderr);
  assert.match(shard.stderr, new RegExp(`wrote ${photosIn} samples`));
  for (const r of [colorize, shard]) {
    const notes = linesMatching(r.stderr, /^colorpipe: note: .*symbolic link/);
    for (const link of links) assert.equal(notes.filter((l) => l.includes(`${link} (`)).length, 1, `${link} reported exactly once: ${r.stderr}`);
    assert.equal(notes.length, links.length, `no other note: ${r.stderr}`);
    assert.equal(notes.length, linesMatching(r.stderr, /symbolic link/).length, 'every loop line is a note');
  }
  assert.deepEqual(tempLeftovers(out), []);
}

test('a single loop of two links, a -> b -> a, is reported, not dropped without a word', { timeout: 90_000 }, async () => {
  const input = join(TMP, 'pair', 'in');
  await photos(input, 1);
  // ln -s b in/a; ln -s a in/b: each link resolves to the other (ELOOP).
  symlinkSync('b', join(input, 'a'));
  symlinkSync('a', join(input, 'b'));
  await walksOnce(input, join(TMP, 'pair'), 1, [join(input, 'a'), join(input, 'b')]);
});

test('a loop through two folders, a/tob -> ../b and b/toa -> ../a, walks each folder once and is reported', { timeout: 90_000 }, async () => {
  const input = join(TMP, 'cycle', 'in');
  await photos(input, 2, { name: (i) => `${i === 0 ? 'a' : 'b'}/p${i}.jpg` });
  symlinkSync(join('..', 'b'), join(input, 'a', 'tob'));
  symlinkSync(join('..', 'a'), join(input, 'b', 'toa'));
  await walksOnce(input, join(TMP, 'cycle'), 2, [join(input, 'a', 'tob'), join(input, 'b', 'toa')]);
});

// Damaged checkpoints: one tiny run with checkpoints at steps 2 and 4 (the two kept), copied for each kind of damage.
const SHARDS = join(FIXTURES, 'shards', 'data-*.tar');
const STEP2 = join('checkpoints', 'step-00000002');
const STEP4 = join('checkpoints', 'step-00000004');
let baseRun: Promise<string> | undefined;
function base(): Promise<string> {
  return (baseRun ??= (async () => {
    const out = join(TMP, 'base');
    const r = await run(['train', '--shards', SHARDS, '--config', join(ROOT, 'configs', 'tiny.json'), '--steps', '4', '--checkpoint-every', '2',
      '--backend', 'wasm', '--processes', '0', '--out', out, '--quiet'], { timeoutMs: 60_000 });
    exited(r, 0);
    assert.ok(existsSync(join(out, STEP2, 'weights.bin')) && existsSync(join(out, STEP4, 'weights.bin')), 'checkpoints at steps 2 and 4');
    return out;
  })());
}

/** A copy of the base run, damaged by `damage(runDir)`. */
async function damaged(name: string, damage: (runDir: string) => void): Promise<string> {
  const out = join(TMP, name);
  cpSync(await base(), out, { recursive: true, verbatimSymlinks: true });
  damage(out);
  return out;
}

/** `pipe train --resume` on `out` up to step 6, logging each step's keys. */
const resume = (out: string) => run(['train', '--shards', SHARDS, '--out', out, '--resume', '--steps', '6', '--backend', 'wasm', '--processes', '0', '--quiet', '--log-keys'], { timeoutMs: 60_000 });

/** The first step the resumed run trained (data-order.jsonl). */
function firstStep(out: string): number {
  return (JSON.parse(readFileSync(join(out, 'data-order.jsonl'), 'utf8').split('\n')[0]!) as { step: number }).step;
}

/** Resumed from step 2 (the older checkpoint) to 6, with exactly one warning line naming the damaged one. */
async function fallsBack(out: string, why: RegExp): Promise<void> {
  const r = await resume(out);
  exited(r, 0);
  noStack(r.stderr);
  assert.doesNotMatch(r.stderr, /TypeError|Cannot read properties/);
  const warnings = linesMatching(r.stderr, /damaged/);
  assert.equal(warnings.length, 1, r.stderr);
  assert.ok(warnings[0]!.startsWith(`colorpipe: checkpoint ${join(out, STEP4)} is damaged (`), warnings[0]);
  assert.match(warnings[0]!, why);
  assert.match(warnings[0]!, /trying an older one$/);
  assert.match(r.stderr, /done at step 6/);
  assert.equal(firstStep(out), 3, 'resumed after step 2');
  assert.deepEqual(tempLeftovers(out), []);
}

test('a truncated weights.bin in the newest checkpoint: --resume falls back to the older one with one warning', { timeout: 90_000 }, async () => {
  const out = await damaged('weights', (d) => truncateSync(join(d, STEP4, 'weights.bin'), 1000));
  await fallsBack(out, /weights\.bin has 1000 bytes/);
});

test('a truncated optimizer.bin in the newest checkpoint: --resume falls back to the older one with one warning', { timeout: 90_000 }, async () => {
  const out = await damaged('optimizer', (d) => truncateSync(join(d, STEP4, 'optimizer.bin'), 100));
  await fallsBack(out, /optimizer\.bin has 100 bytes/);
});

test('a bad model.json in the newest checkpoint: --resume falls back to the older one with one warning', { timeout: 90_000 }, async () => {
  const out = await damaged('modeljson', (d) => {
    // Same size, not JSON: caught by the checksum, not only the size.
    const f = join(d, STEP4, 'model.json');
    const size = readFileSync(f).length;
    writeFileSync(f, '{'.padEnd(size, 'x'));
  });
  await fallsBack(out, /model\.json does not match the checksum/);
});

test('a state.json of {"step": -5} in the newest checkpoint: one clear line, the older one resumed, no TypeError', { timeout: 90_000 }, async () => {
  const out = await damaged('ckstate', (d) => writeFileSync(join(d, STEP4, 'state.json'), '{"step": -5}'));
  await fallsBack(out, /state\.json: step -5 is not a non-negative integer/);
});

test('every checkpoint\'s state.json {"step": -5}: --resume stops with a clear error (exit 1), never starts over', { timeout: 90_000 }, async () => {
  const out = await damaged('allstate', (d) => {
    for (const f of ['state.json', join(STEP4, 'state.json'), join(STEP2, 'state.json')]) writeFileSync(join(d, f), '{"step": -5}');
  });
  const r = await resume(out);
  exited(r, 1);
  noStack(r.stderr);
  assert.doesNotMatch(r.stderr, /TypeError|Cannot read properties/);
  assert.equal(linesMatching(r.stderr, /^colorpipe: checkpoint .* is damaged \(state\.json: step -5 is not a non-negative integer\): trying an older one$/).length, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^colorpipe: every checkpoint in ${out} is damaged \\(2\\); nothing to resume from$`, 'm'));
  assert.ok(!existsSync(join(out, 'data-order.jsonl')), 'nothing trained');
});

// The run's own state.json (the commit point beside model/) set to {"step": -5}, the reproduction.
let runStateResume: Promise<{ out: string; r: Awaited<ReturnType<typeof resume>> }> | undefined;
const runState = () => (runStateResume ??= (async () => {
  const out = await damaged('runstate', (d) => writeFileSync(join(d, 'state.json'), '{"step": -5}'));
  return { out, r: await resume(out) };
})());

test('the run\'s state.json {"step": -5}: no TypeError, --resume continues from the newest intact checkpoint', { timeout: 90_000 }, async () => {
  const { out, r } = await runState();
  exited(r, 0);
  noStack(r.stderr);
  assert.doesNotMatch(r.stderr, /TypeError|Cannot read properties/);
  assert.match(r.stderr, /done at step 6/);
  assert.equal(firstStep(out), 5, 'resumed after step 4 (its own state.json is intact)');
});

test('the run\'s state.json {"step": -5} is named in one clear line', { timeout: 90_000 }, async () => {
  const { out, r } = await runState();
  exited(r, 0);
  const lines = linesMatching(r.stderr, /state\.json/);
  assert.equal(lines.length, 1, `one line about the damaged state.json: ${r.stderr}`);
  assert.ok(lines[0]!.includes(join(out, 'state.json')), lines[0]);
});
