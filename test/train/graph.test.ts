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
import { fileURLToPath } from 'node:url';
import { FIXTURES, ROOT, tempDir } from '../helpers/tar.js';
import { trainGraph } from '../../src/train/graph.js';
import { applyOverrides, loadConfig } from '../../src/config.js';
import { setupEngine } from '../../src/model/engine.js';
import { loadColorizer } from '../../src/model/network.js';
import { readMetrics } from '../../src/train/report.js';
import { latestCheckpoint } from '../../src/train/checkpoint.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
const TINY = join(ROOT, 'configs', 'tiny.json');
const GOOD = join(FIXTURES, 'shards', 'data-*.tar');

function runCli(args: string[], opts: { killWhen?: (dir: string) => boolean; dir?: string; signal?: NodeJS.Signals } = {}): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'train', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    let timer: NodeJS.Timeout | undefined;
    if (opts.killWhen && opts.dir) {
      timer = setInterval(() => {
        if (opts.killWhen!(opts.dir!)) {
          clearInterval(timer);
          child.kill(opts.signal ?? 'SIGKILL');
        }
      }, 5);
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

const weightsOf = (dir: string) => readFileSync(join(dir, 'model', 'weights.bin'));
const keysOf = (dir: string) => readFileSync(join(dir, 'data-order.jsonl'), 'utf8');

test('a tiny run trains: loss falls, checkpoint complete, model loads, report written', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const engine = await setupEngine({ backend: 'wasm' });
    const config = applyOverrides(loadConfig(TINY), { steps: 30 });
    const r = await trainGraph({ shards: GOOD, config, out: dir, engine, quiet: true, processes: 0 });
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
    assert.ok(existsSync(join(dir, 'report.html')));
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    assert.match(html, /<svg/);
    assert.match(html, /samples\/step-00000030\.png/);
  } finally {
    cleanup();
  }
});

test('SIGKILL at any moment, then --resume, equals an uninterrupted run (steps, data order, weights)', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const common = ['--shards', GOOD, '--config', TINY, '--steps', '12', '--checkpoint-every', '4', '--backend', 'wasm', '--processes', '2', '--log-keys', '--quiet'];
    const full = join(dir, 'full');
    const a = await runCli([...common, '--out', full]);
    assert.equal(a.code, 0, a.stderr);
    // Checkpoint every 4 steps; kill as soon as the first checkpoint exists (mid-step 5 or so), twice.
    const killed = join(dir, 'killed');
    const b1 = await runCli([...common, '--out', killed, '--seed', '0'], { dir: killed, killWhen: (d) => stateStep(d) >= 4 });
    assert.equal(b1.signal, 'SIGKILL');
    const b2 = await runCli([...common, '--out', killed, '--resume'], { dir: killed, killWhen: (d) => stateStep(d) >= 8 });
    assert.ok(b2.signal === 'SIGKILL' || b2.code === 0, b2.stderr);
    const b3 = await runCli([...common, '--out', killed, '--resume']);
    assert.equal(b3.code, 0, b3.stderr);
    assert.equal(stateStep(killed), 12);
    assert.equal(keysOf(killed), keysOf(full), 'same batches in the same order');
    assert.ok(weightsOf(killed).equals(weightsOf(full)), 'same weights');
    const metrics = (await readMetrics(killed)).steps.map((m) => m.step);
    assert.deepEqual(metrics, [...new Set(metrics)].sort((x, y) => x - y), 'no step logged twice');
  } finally {
    cleanup();
  }
});

test('Ctrl-C writes a checkpoint at the current step and exits 0', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const out = join(dir, 'run');
    const r = await runCli(['--shards', GOOD, '--config', TINY, '--steps', '100000', '--backend', 'wasm', '--processes', '0', '--out', out, '--quiet'],
      { dir: out, killWhen: (d) => existsSync(join(d, 'metrics.jsonl')), signal: 'SIGINT' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /interrupted/);
    const ck = await latestCheckpoint(out);
    assert.ok(ck && ck.state.step > 0 && ck.state.step < 100000);
  } finally {
    cleanup();
  }
});

test('training over shards with bad members and a truncated shard completes and counts them', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const engine = await setupEngine({ backend: 'wasm' });
    const config = applyOverrides(loadConfig(TINY), { steps: 6 });
    const r = await trainGraph({
      shards: [join(FIXTURES, 'shards', 'mixed.tar'), join(FIXTURES, 'shards', 'truncated.tar'), GOOD],
      config, out: dir, engine, quiet: true, processes: 0,
    });
    assert.equal(r.steps, 6);
    assert.ok(r.badInputs.total >= 3, JSON.stringify(r.badInputs));
  } finally {
    cleanup();
  }
});
