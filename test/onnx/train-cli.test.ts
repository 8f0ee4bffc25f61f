/**
 * `pipe train --engine onnx` as a user runs it (tiny network, CPU): its run checkpoints in colorpipe's format
 * (colorize and export take it); SIGKILL then --resume ends with the uninterrupted run's weights, bit for bit; a
 * run moves from tfjs to onnx and back without a jump in its losses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, FIXTURES, tmpDir } from '../helpers/tar.js';
import { exited, finish, run, start } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';

const SHARDS = join(FIXTURES, 'shards', 'data-*.tar');
/** Long enough that the kill below lands mid-run (the tiny network trains a step in milliseconds). */
const STEPS = 40;

/** configs/tiny.json logging every step, with a checkpoint every 4. */
function tinyConfig(dir: string): string {
  const tiny = JSON.parse(readFileSync(join(ROOT, 'configs', 'tiny.json'), 'utf8')) as { train: Record<string, unknown> };
  const path = join(dir, 'tiny.json');
  writeFileSync(path, JSON.stringify({ ...tiny, train: { ...tiny.train, logEvery: 1, checkpointEvery: 4 } }));
  return path;
}

const train = (config: string, out: string, steps: number, ...more: string[]) =>
  ['train', '--shards', SHARDS, '--config', config, '--steps', String(steps), '--out', out, '--quiet', '--processes', '1', '--threads', '1', ...more];
const weights = (dir: string) => readFileSync(join(dir, 'model', 'weights.bin'));
const stepOf = (dir: string) => {
  try {
    return (JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { step: number }).step;
  } catch {
    return 0;
  }
};
const losses = (dir: string) => new Map(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')
  .map((l) => JSON.parse(l) as { step: number; loss: number; type?: string; engine?: string })
  .filter((l) => !l.type).map((l) => [l.step, l] as const));

test('an onnx-trained run colorizes and exports; SIGKILL then --resume ends with the uninterrupted run\'s weights', { timeout: 240_000 }, async (t) => {
  const dir = tmpDir(t);
  const config = tinyConfig(dir);
  const ref = join(dir, 'ref');
  const r = await run(train(config, ref, STEPS, '--engine', 'onnx'));
  exited(r, 0);
  assert.match(r.stderr, /^colorpipe: training tiny from step 0: onnxruntime [\d.]+ cpu \(1 thread\), training graph$/m);
  assert.doesNotMatch(r.stderr, /onnxruntime:/, 'no ONNX Runtime warnings reach the user');
  assert.equal([...losses(ref).values()].at(-1)!.engine, 'onnx');
  exited(await run(['colorize', '--in', join(FIXTURES, 'images'), '--out', join(dir, 'colorized'), '--model', ref, '--quiet']), 0);
  exited(await run(['export', '--model', ref, '--out', join(dir, 'm.onnx'), '--quiet']), 0);
  assert.ok(existsSync(join(dir, 'm.onnx')));

  const killed = join(dir, 'killed');
  const p = start(train(config, killed, STEPS, '--engine', 'onnx'));
  const done = finish(p);
  assert.ok(await waitFor(() => stepOf(killed) >= 4 || p.exitCode !== null, 120_000), 'a checkpoint was written');
  p.kill('SIGKILL');
  assert.equal((await done).signal, 'SIGKILL', 'killed before its end');
  assert.ok(stepOf(killed) < STEPS);
  exited(await run(train(config, killed, STEPS, '--engine', 'onnx', '--resume')), 0);
  assert.ok(weights(killed).equals(weights(ref)), 'the resumed run ends with the uninterrupted run\'s weights');
});

test('a tfjs run resumes on onnx and back; the losses go on without a jump', { timeout: 240_000 }, async (t) => {
  const dir = tmpDir(t);
  const config = tinyConfig(dir);
  const [ref, moved] = [join(dir, 'ref'), join(dir, 'moved')];
  const wasm = ['--engine', 'tfjs', '--backend', 'wasm'];
  exited(await run(train(config, ref, 16, ...wasm)), 0);
  exited(await run(train(config, moved, 8, ...wasm)), 0);
  exited(await run(train(config, moved, 12, '--engine', 'onnx', '--resume')), 0);
  exited(await run(train(config, moved, 16, ...wasm, '--resume')), 0);
  const [a, b] = [losses(moved), losses(ref)];
  for (let s = 1; s <= 16; s++) {
    const rel = Math.abs(a.get(s)!.loss - b.get(s)!.loss) / b.get(s)!.loss;
    // The same weights, optimizer moments and batches on another engine: float rounding, amplified a little by Adam.
    assert.ok(rel < 0.02, `step ${s} (${a.get(s)!.engine}): ${a.get(s)!.loss} vs ${b.get(s)!.loss}`);
  }
  assert.deepEqual([8, 9, 12, 13].map((s) => a.get(s)!.engine), ['tfjs', 'onnx', 'onnx', 'tfjs']);
});
