import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { latestCheckpoint, saveCheckpoint, checkpointName } from '../../src/train/checkpoint.js';
import { setupEngine } from '../../src/model/engine.js';
import { buildColorizer, disposeColorizer } from '../../src/model/network.js';
import { makeConfig } from '../../src/config.js';
import { ColorpipeError } from '../../src/core/errors.js';

const TINY = { inputSize: 32, width: 0.125, numClasses: 0 };

async function runWithCheckpoints(steps: number[]): Promise<string> {
  await setupEngine({ backend: 'cpu' });
  const runDir = mkdtempSync(join(tmpdir(), 'colorpipe-ck-'));
  const net = buildColorizer(TINY, { seed: 1 });
  const config = makeConfig({ name: 'tiny', model: TINY });
  for (const step of steps) {
    await saveCheckpoint({
      runDir, model: net.infer, keep: 5,
      state: { version: 1, step, epoch: 0, samplesSeen: step, seed: 0, config, backend: 'cpu', data: null, optimizer: { type: 'adam' } },
      optimizerWeights: [],
    });
  }
  disposeColorizer(net);
  return runDir;
}

const dirOf = (runDir: string, step: number) => join(runDir, 'checkpoints', checkpointName(step));

test('a checkpoint records its files\' sizes and checksums; an intact run resumes from the newest', async () => {
  const runDir = await runWithCheckpoints([1, 2]);
  try {
    const state = JSON.parse(readFileSync(join(dirOf(runDir, 2), 'state.json'), 'utf8')) as { files: Record<string, { bytes: number }> };
    assert.deepEqual(Object.keys(state.files).sort(), ['model.json', 'optimizer.bin', 'weights.bin']);
    assert.ok(state.files['weights.bin']!.bytes > 0);
    const damaged: string[] = [];
    assert.equal((await latestCheckpoint(runDir, (d) => damaged.push(d)))?.state.step, 2);
    assert.deepEqual(damaged, []);
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
});

test('a damaged newest checkpoint (truncated weights, bad model.json, a bad state) falls back to the newest intact one', async () => {
  for (const damage of [
    (d: string) => truncateSync(join(d, 'weights.bin'), 10),
    (d: string) => writeFileSync(join(d, 'optimizer.bin'), 'not the optimizer'),
    (d: string) => writeFileSync(join(d, 'model.json'), '{ "modelTopology": '),
    (d: string) => writeFileSync(join(d, 'state.json'), '{"step": -5}'),
  ]) {
    const runDir = await runWithCheckpoints([1, 2]);
    try {
      damage(dirOf(runDir, 2));
      const damaged: [string, string][] = [];
      const ck = await latestCheckpoint(runDir, (d, reason) => damaged.push([d, reason]));
      assert.equal(ck?.state.step, 1, 'the older, intact checkpoint');
      assert.equal(damaged.length, 1, 'the damaged one reported once');
      assert.equal(damaged[0]![0], dirOf(runDir, 2));
    } finally {
      rmSync(runDir, { recursive: true, force: true });
    }
  }
});

test('when every checkpoint is damaged, resuming is an error, not a silent start from step 0', async () => {
  const runDir = await runWithCheckpoints([1]);
  try {
    truncateSync(join(dirOf(runDir, 1), 'weights.bin'), 3);
    await assert.rejects(latestCheckpoint(runDir, () => undefined), (e: unknown) => e instanceof ColorpipeError && e.code === 'ERR_CHECKPOINT');
    const empty = mkdtempSync(join(tmpdir(), 'colorpipe-ck-'));
    assert.equal(await latestCheckpoint(empty), null, 'no checkpoint at all: null (a fresh run)');
    rmSync(empty, { recursive: true, force: true });
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
});
