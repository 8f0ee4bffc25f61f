/**
 * Options that were silently ignored (issue 11, items 6 to 8), end to end through the CLI: config files with
 * unknown keys or the wrong shapes, class labels the model's head cannot hold, and a shard list that mixes a
 * brace range with commas. (Items 4, an unquoted glob, and 5, --resume with changed flags: cli.test.ts.)
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, ROOT, tempDir } from '../helpers/tar.js';
import { exited, linesMatching, noStack, run, type CliResult } from '../helpers/cli.js';
import { photoShard, photos } from '../helpers/faults.js';

const { dir: TMP, cleanup } = tempDir('colorpipe-faults-options-');
after(cleanup);

const TINY = join(ROOT, 'configs', 'tiny.json');
const trainArgs = (shards: string, out: string, ...more: string[]) =>
  ['train', '--shards', shards, '--out', out, '--backend', 'wasm', '--processes', '0', '--quiet', ...more];

test('config files: unknown keys name the nearest valid one; null sections and arrays are refused; exit 2 before anything is written', { timeout: 60_000 }, async () => {
  const cases: [config: unknown, message: RegExp][] = [
    [{ train: { batchsize: 4 } }, /^colorpipe: Unknown key train\.batchsize in the config .*c0\.json: did you mean train\.batch\?$/],
    [{ trian: { batch: 4 } }, /^colorpipe: Unknown key trian in the config .*c1\.json: did you mean train\?$/],
    [{ model: null }, /^colorpipe: Expected an object for model in .*c2\.json but received null$/],
    [[1, 2], /^colorpipe: Expected a JSON object for the config .*c3\.json but received an array/],
    [{ model: { inputSize: 32, width: 0.125, numClases: 4 } }, /^colorpipe: Unknown key model\.numClases in the config .*c4\.json: did you mean model\.numClasses\?$/],
  ];
  const runs = await Promise.all(cases.map(([config], i) => {
    const file = join(TMP, `c${i}.json`);
    writeFileSync(file, JSON.stringify(config));
    return run(trainArgs(join(FIXTURES, 'shards', 'data-*.tar'), join(TMP, `c${i}-run`), '--config', file), { timeoutMs: 30_000 });
  }));
  runs.forEach((r, i) => {
    exited(r, 2);
    noStack(r.stderr);
    const lines = r.stderr.trimEnd().split('\n');
    assert.match(lines[0]!, cases[i]![1]);
    assert.ok(!existsSync(join(TMP, `c${i}-run`)), `c${i}: refused before --out was made`);
  });
});

// A shard whose labels 9 and -5 lie outside configs/tiny.json's 4 classes; 6 steps of 8 are six epochs.
let labelRun: Promise<{ shard: string; r: CliResult }> | undefined;
const labels = () => (labelRun ??= (async () => {
  const shard = await photoShard(join(TMP, 'labels', 'data-000000.tar'), [
    { key: 'c0', cls: '0' }, { key: 'c1', cls: '1' }, { key: 'c2', cls: '2' }, { key: 'c3', cls: '3' },
    { key: 'nine', cls: '9' }, { key: 'minus', cls: '-5' }, { key: 'c1b', cls: '1' }, { key: 'c2b', cls: '2' },
  ]);
  const r = await run(['train', '--shards', shard, '--out', join(TMP, 'labels', 'run'), '--config', TINY, '--steps', '6', '--backend', 'wasm', '--processes', '0'], { timeoutMs: 60_000 });
  return { shard, r };
})());

test('class labels 9 and -5 with a 4-class model are reported with the sample and reason, and training goes on', { timeout: 90_000 }, async () => {
  const { shard, r } = await labels();
  exited(r, 0);
  noStack(r.stderr);
  assert.match(r.stderr, /done at step 6/);
  for (const [key, cls] of [['nine', 9], ['minus', -5]] as const) {
    const lines = linesMatching(r.stderr, new RegExp(`^colorpipe: skipped ${shard}#${key} \\(labels\\): class label ${cls} outside the model's 4 classes \\(0\\.\\.3\\): trained without a label$`));
    assert.ok(lines.length >= 1, `${key} reported: ${r.stderr}`);
  }
  assert.equal(linesMatching(r.stderr, /\(labels\)/).length, linesMatching(r.stderr, /#(nine|minus) \(labels\)/).length, 'no good label reported');
});

test('each out-of-range label is reported once, not once per epoch', { timeout: 90_000 }, async () => {
  const { r } = await labels();
  exited(r, 0);
  for (const key of ['nine', 'minus']) {
    assert.equal(linesMatching(r.stderr, new RegExp(`#${key} \\(labels\\)`)).length, 1, `${key}: ${r.stderr}`);
  }
});

test('classes.json with more classes than the model is a usage error (exit 2) saying what to set, before training', { timeout: 60_000 }, async () => {
  const dir = join(TMP, 'classes');
  const shard = await photoShard(join(dir, 'data-000000.tar'), [{ key: 'a', cls: '0' }, { key: 'b', cls: '1' }]);
  writeFileSync(join(dir, 'classes.json'), JSON.stringify(Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`c${i}`, i]))));
  const r = await run(trainArgs(shard, join(dir, 'run'), '--config', TINY), { timeoutMs: 30_000 });
  exited(r, 2);
  noStack(r.stderr);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^colorpipe: ${join(dir, 'classes.json')} names 16 classes but the model's head has 4 \\(model\\.numClasses\\): set model\\.numClasses to 16 in the config, or 0 for no class head\\n$`));
  assert.ok(!existsSync(join(dir, 'run', 'checkpoints')), 'nothing trained');
});

test('pipe shard --labels dirs on 5 class folders, then pipe train with configs/tiny.json (4 classes): exit 2 saying what to set', { timeout: 60_000 }, async () => {
  const dir = join(TMP, 'five');
  await photos(join(dir, 'photos'), 5, { name: (i) => `class${i}/p${i}.jpg` });
  const shard = await run(['shard', '--in', join(dir, 'photos'), '--out', join(dir, 'shards'), '--labels', 'dirs'], { timeoutMs: 30_000 });
  exited(shard, 0);
  assert.equal(Object.keys(JSON.parse(readFileSync(join(dir, 'shards', 'classes.json'), 'utf8')) as object).length, 5);
  const r = await run(trainArgs(join(dir, 'shards', '*.tar'), join(dir, 'run'), '--config', TINY), { timeoutMs: 30_000 });
  exited(r, 2);
  noStack(r.stderr);
  assert.match(r.stderr, /^colorpipe: .*classes\.json names 5 classes but the model's head has 4 \(model\.numClasses\): set model\.numClasses to 5/);
});

test('--shards \'d-{000000..000001}.tar,b.tar\' (a brace range and a comma) trains on all three shards', { timeout: 90_000 }, async () => {
  const dir = join(TMP, 'braces');
  mkdirSync(join(dir, 'extra'), { recursive: true });
  const shards: Record<string, string[]> = { 'd-000000.tar': ['d0a', 'd0b'], 'd-000001.tar': ['d1a', 'd1b'], 'b.tar': ['ba', 'bb'], 'extra/e.tar': ['ea', 'eb'] };
  for (const [file, keys] of Object.entries(shards)) await photoShard(join(dir, file), keys.map((key) => ({ key })));
  const keysTrained = async (list: string, out: string): Promise<Set<string>> => {
    // Relative to the folder, as a user types it there; 3 steps of 8 cover every sample.
    const r = await run(['train', '--shards', list, '--out', out, '--config', TINY, '--steps', '3', '--backend', 'wasm', '--processes', '0', '--quiet', '--log-keys'], { cwd: dir, timeoutMs: 60_000 });
    exited(r, 0);
    noStack(r.stderr);
    const steps = readFileSync(join(dir, out, 'data-order.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { keys: string[] });
    return new Set(steps.flatMap((s) => s.keys));
  };
  assert.deepEqual([...await keysTrained('d-{000000..000001}.tar,b.tar', 'run1')].sort(), ['ba', 'bb', 'd0a', 'd0b', 'd1a', 'd1b']);
  // And with a glob, as the README writes it.
  assert.deepEqual([...await keysTrained('d-{000000..000001}.tar,extra/*.tar', 'run2')].sort(), ['d0a', 'd0b', 'd1a', 'd1b', 'ea', 'eb']);
});
