/**
 * The training graph end to end on the fixture shards with the tiny config: loss falls, checkpoints are
 * complete and loadable, a SIGKILLed run resumed with --resume equals an uninterrupted one (same steps, same
 * data order, same weights), Ctrl-C writes a checkpoint and exits 0, bad inputs are skipped and counted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, ROOT, tmpDir } from '../helpers/tar.js';
import { trainGraph } from '../../src/train/graph.js';
import { applyOverrides, loadConfig } from '../../src/config.js';
import { setupTfjs } from '../../src/tfjs/backend.js';
import { loadColorizer } from '../../src/tfjs/network.js';
import { readMetrics } from '../../src/train/report.js';
import { latestCheckpoint } from '../../src/train/checkpoint.js';
import { Rng } from '../../src/core/rng.js';
import { CLI } from '../helpers/cli.js';

const TINY = join(ROOT, 'configs', 'tiny.json');
const GOOD = join(FIXTURES, 'shards', 'data-*.tar');

function runCli(
  args: string[],
  opts: { killWhen?: (dir: string) => boolean; dir?: string; signal?: NodeJS.Signals; delayMs?: number } = {},
): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'train', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    let timer: NodeJS.Timeout | undefined;
    if (opts.killWhen && opts.dir) {
      timer = setInterval(() => {
        if (opts.killWhen!(opts.dir!)) {
          clearInterval(timer);
          setTimeout(() => child.kill(opts.signal ?? 'SIGKILL'), opts.delayMs ?? 0);
        }
      }, 2);
    }
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearInterval(timer);
      resolve({ code, signal, stderr });
    });
  });
}

const stateStep = (dir: string): number => {
  try {
    return JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).step as number;
  } catch {
    return 0;
  }
};

/** The last step in data-order.jsonl (written synchronously after every step), 0 when none. */
const loggedStep = (dir: string): number => {
  try {
    const lines = readFileSync(join(dir, 'data-order.jsonl'), 'utf8').trim().split('\n');
    return (JSON.parse(lines.at(-1)!) as { step: number }).step;
  } catch {
    return 0;
  }
};

const weightsOf = (dir: string) => readFileSync(join(dir, 'model', 'weights.bin'));
const keysOf = (dir: string) => readFileSync(join(dir, 'data-order.jsonl'), 'utf8');

test('a tiny run trains: loss falls, checkpoint complete, model loads, report written', async (t) => {
  const dir = tmpDir(t);
  const engine = await setupTfjs({ backend: 'wasm' });
  const config = applyOverrides(loadConfig(TINY), { steps: 30 });
  const r = await trainGraph({ shards: GOOD, config, out: dir, tfjsBackend: engine, quiet: true, processes: 0 });
  assert.equal(r.steps, 30);
  const { steps, val } = await readMetrics(dir);
  assert.ok(steps.length >= 5);
  const first = steps[0]!.mse!;
  const last = steps.at(-1)!.mse!;
  assert.ok(last < first * 0.8, `mse should fall: first ${first}, last ${last}`);
  assert.ok(val.length >= 1 && Number.isFinite(val[0]!.psnr));
  for (const m of steps) {
    assert.ok(m.data_stall! >= 0 && m.data_stall! <= 1);
    assert.ok(m.img_per_s! > 0);
    assert.equal(m.backend, 'wasm');
  }
  assert.equal(readlinkSync(join(dir, 'model')), join('checkpoints', 'step-00000030'));
  const ck = await latestCheckpoint(dir);
  assert.equal(ck?.state.step, 30);
  const loaded = await loadColorizer(join(dir, 'model'));
  assert.ok(loaded.infer.inputs.length === 2);
  // The model knows how it was trained: colorize's default resolution reads this.
  assert.deepEqual(loaded.trainingScale, { shortSide: config.augment.resize, crop: config.augment.crop });
  assert.ok(existsSync(join(dir, 'report.html')));
  const html = readFileSync(join(dir, 'report.html'), 'utf8');
  assert.match(html, /<svg/);
  assert.match(html, /samples\/step-00000030\.png/);
});

test('SIGKILL at seeded random moments, then --resume, equals an uninterrupted run (steps, data order, weights)', async (t) => {
  const dir = tmpDir(t);
  const common = ['--shards', GOOD, '--config', TINY, '--steps', '12', '--checkpoint-every', '4', '--backend', 'wasm', '--processes', '2', '--log-keys', '--quiet'];
  const full = join(dir, 'full');
  const a = await runCli([...common, '--out', full]);
  assert.equal(a.code, 0, a.stderr);
  // Four kills, each once the run has logged a seeded random step and a seeded random 0-59 ms later: they land
  // inside steps, inside checkpoint writes and in start-up (a target already logged by the killed run before
  // is met before the resumed run truncates its log). The seed fixes the plan, not the moments.
  const rng = new Rng(2016).fork('kills');
  const targets = Array.from({ length: 4 }, () => 1 + rng.int(11)).sort((x, y) => x - y);
  const delays = targets.map(() => rng.int(60));
  const killed = join(dir, 'killed');
  let kills = 0;
  for (let i = 0; i < targets.length; i++) {
    const args = [...common, '--out', killed, ...(i === 0 ? [] : ['--resume'])];
    const r = await runCli(args, { dir: killed, killWhen: (d) => loggedStep(d) >= targets[i]!, delayMs: delays[i] });
    assert.ok(r.signal === 'SIGKILL' || r.code === 0, `kill ${i} at step ${targets[i]} + ${delays[i]} ms: ${r.stderr}`);
    if (r.signal === 'SIGKILL') kills++;
  }
  assert.ok(kills >= 3, `${kills} of 4 runs were killed (the plan: steps ${targets}, delays ${delays} ms)`);
  const last = await runCli([...common, '--out', killed, '--resume']);
  assert.equal(last.code, 0, last.stderr);
  assert.equal(stateStep(killed), 12);
  assert.equal(keysOf(killed), keysOf(full), 'same batches in the same order');
  assert.ok(weightsOf(killed).equals(weightsOf(full)), 'same weights');
  const metrics = (await readMetrics(killed)).steps.map((m) => m.step);
  assert.deepEqual(metrics, [...new Set(metrics)].sort((x, y) => x - y), 'no step logged twice');
});

test('valEvery validates between checkpoints without changing training (same data order, same weights)', async (t) => {
  const dir = tmpDir(t);
  const engine = await setupTfjs({ backend: 'wasm' });
  const base = applyOverrides(loadConfig(TINY), { steps: 6 });
  assert.equal(base.train.valEvery, 0, 'tiny.json validates at checkpoints only');
  const run = async (name: string, valEvery: number) => {
    const config = { ...base, train: { ...base.train, checkpointEvery: 4, valEvery } };
    await trainGraph({ shards: GOOD, config, out: join(dir, name), tfjsBackend: engine, quiet: true, processes: 0, logKeys: true });
    return join(dir, name);
  };
  const plain = await run('plain', 0);
  const every = await run('every', 2);
  assert.deepEqual((await readMetrics(plain)).val.map((v) => v.step), [4, 6], 'checkpoints only');
  assert.deepEqual((await readMetrics(every)).val.map((v) => v.step), [2, 4, 6], 'every 2 steps, once at a checkpoint');
  assert.ok(existsSync(join(every, 'samples', 'step-00000002.png')));
  assert.equal(keysOf(every), keysOf(plain), 'same batches');
  assert.ok(weightsOf(every).equals(weightsOf(plain)), 'same weights');
  const losses = async (d: string) => (await readMetrics(d)).steps.map((m) => [m.step, m.loss, m.mse, m.ce]);
  assert.deepEqual(await losses(every), await losses(plain), 'the same logged losses, to the last digit');
});

test('Ctrl-C writes a checkpoint at the current step and exits 130', async (t) => {
  const dir = tmpDir(t);
  const out = join(dir, 'run');
  const r = await runCli(['--shards', GOOD, '--config', TINY, '--steps', '100000', '--backend', 'wasm', '--processes', '0', '--out', out, '--quiet'],
    { dir: out, killWhen: (d) => existsSync(join(d, 'metrics.jsonl')), signal: 'SIGINT' });
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /interrupted/);
  const ck = await latestCheckpoint(out);
  assert.ok(ck && ck.state.step > 0 && ck.state.step < 100000);
});

test('training over shards with bad members and a truncated shard completes and counts them', async (t) => {
  const dir = tmpDir(t);
  const engine = await setupTfjs({ backend: 'wasm' });
  const config = applyOverrides(loadConfig(TINY), { steps: 6 });
  const r = await trainGraph({
    shards: [join(FIXTURES, 'shards', 'mixed.tar'), join(FIXTURES, 'shards', 'truncated.tar'), GOOD],
    config, out: dir, tfjsBackend: engine, quiet: true, processes: 0,
  });
  assert.equal(r.steps, 6);
  assert.ok(r.badInputs.total >= 3, JSON.stringify(r.badInputs));
});
