/**
 * `pipe train` as the engine tests run it: configs/tiny.json logging every step with a checkpoint every 4, on the
 * fixture shards, with one decode process and one thread; and what a run directory then holds.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, FIXTURES, tmpDir } from './tar.js';
import { exited, run } from './cli.js';

export const SHARDS = join(FIXTURES, 'shards', 'data-*.tar');

/** configs/tiny.json logging every step, with a checkpoint every 4, written into `dir`: its path. */
export function tinyConfig(dir: string): string {
  const tiny = JSON.parse(readFileSync(join(ROOT, 'configs', 'tiny.json'), 'utf8')) as { train: Record<string, unknown> };
  const path = join(dir, 'tiny.json');
  writeFileSync(path, JSON.stringify({ ...tiny, train: { ...tiny.train, logEvery: 1, checkpointEvery: 4 } }));
  return path;
}

/** The arguments of `pipe train` for `steps` steps of `config` into `out`, then `more`. */
export const train = (config: string, out: string, steps: number, ...more: string[]) =>
  ['train', '--shards', SHARDS, '--config', config, '--steps', String(steps), '--out', out, '--quiet', '--processes', '1', '--threads', '1', ...more];

/** The run's weights.bin. */
export const weights = (run: string) => readFileSync(join(run, 'model', 'weights.bin'));

/** The step of the run's last checkpoint (0 before the first). */
export const stepOf = (run: string) => {
  try {
    return (JSON.parse(readFileSync(join(run, 'state.json'), 'utf8')) as { step: number }).step;
  } catch {
    return 0;
  }
};

/** The run's logged training steps by step (metrics.jsonl, validation lines left out). */
export const losses = (run: string) => new Map(readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n')
  .map((l) => JSON.parse(l) as { step: number; loss: number; type?: string; engine?: string })
  .filter((l) => !l.type).map((l) => [l.step, l] as const));

/**
 * A tfjs (wasm) run moved to `engine` after step 8 and back after step 12 goes on as the same run on tfjs alone:
 * every step's loss within 2% (the same weights, optimizer moments and batches on another engine: float rounding,
 * amplified a little by Adam).
 */
export async function assertMovesAndBack(t: Pick<TestContext, 'after'>, engine: string): Promise<void> {
  const dir = tmpDir(t);
  const config = tinyConfig(dir);
  const [ref, moved] = [join(dir, 'ref'), join(dir, 'moved')];
  const wasm = ['--engine', 'tfjs', '--backend', 'wasm'];
  exited(await run(train(config, ref, 16, ...wasm)), 0);
  exited(await run(train(config, moved, 8, ...wasm)), 0);
  exited(await run(train(config, moved, 12, '--engine', engine, '--resume')), 0);
  exited(await run(train(config, moved, 16, ...wasm, '--resume')), 0);
  const [a, b] = [losses(moved), losses(ref)];
  for (let s = 1; s <= 16; s++) {
    const rel = Math.abs(a.get(s)!.loss - b.get(s)!.loss) / b.get(s)!.loss;
    assert.ok(rel < 0.02, `step ${s} (${a.get(s)!.engine}): ${a.get(s)!.loss} vs ${b.get(s)!.loss}`);
  }
  assert.deepEqual([8, 9, 12, 13].map((s) => a.get(s)!.engine), ['tfjs', engine, engine, 'tfjs']);
}
