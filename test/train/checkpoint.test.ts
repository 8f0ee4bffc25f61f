import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { latestCheckpoint, saveCheckpoint, checkpointName } from '../../src/train/checkpoint.js';
import { setupTfjs } from '../../src/tfjs/backend.js';
import { buildColorizer, colorizerWeights, disposeColorizer } from '../../src/tfjs/network.js';
import { makeConfig } from '../../src/config.js';
import { ColorpipeError } from '../../src/core/errors.js';

const TINY = { inputSize: 32, width: 0.125, numClasses: 0 };

async function runWithCheckpoints(steps: number[], runDir = mkdtempSync(join(tmpdir(), 'colorpipe-ck-')), keep = 5): Promise<string> {
  await setupTfjs({ backend: 'cpu' });
  const net = buildColorizer(TINY, { seed: 1 });
  const config = makeConfig({ name: 'tiny', model: TINY });
  for (const step of steps) {
    await saveCheckpoint({
      runDir, weights: await colorizerWeights(net), keep,
      state: { version: 1, step, epoch: 0, samplesSeen: step, seed: 0, config, backend: 'cpu', data: null, optimizer: { type: 'adam' } },
      optimizer: { iterations: 0, slots: [] },
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

test('a damaged newest checkpoint (truncated weights, bad model.json, a bad state, a folder in place of a file) falls back to the newest intact one', async () => {
  for (const damage of [
    (d: string) => truncateSync(join(d, 'weights.bin'), 10),
    (d: string) => writeFileSync(join(d, 'optimizer.bin'), 'not the optimizer'),
    (d: string) => writeFileSync(join(d, 'model.json'), '{ "modelTopology": '),
    (d: string) => writeFileSync(join(d, 'state.json'), '{"step": -5}'),
    // A folder where a file should be (EISDIR): not the checkpoint as written, and reading again cannot change that.
    (d: string) => (rmSync(join(d, 'weights.bin')), mkdirSync(join(d, 'weights.bin'))),
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

test("the run's own state.json unusable: one notice naming it and the checkpoint used instead; absent: none", async () => {
  const runDir = await runWithCheckpoints([1, 2]);
  try {
    const file = join(runDir, 'state.json');
    for (const [text, why] of [
      ['{"step": -5}', /^step -5 is not a non-negative integer$/],
      ['{ "step": ', /JSON/],
      [readFileSync(file, 'utf8').replace('checkpoints/step-00000002', 'checkpoints/step-00000009'), /^it names checkpoints\/step-00000009, which is missing$/],
      [readFileSync(file, 'utf8').replace('checkpoints/step-00000002', '../../elsewhere'), /is not a checkpoint directory/],
    ] as const) {
      writeFileSync(file, text);
      const ignored: [string, string, string | null][] = [];
      const ck = await latestCheckpoint(runDir, () => assert.fail('no checkpoint is damaged'), (f, reason, used) => ignored.push([f, reason, used]));
      assert.equal(ck?.state.step, 2, 'the newest intact checkpoint');
      assert.equal(ignored.length, 1, text);
      assert.equal(ignored[0]![0], file);
      assert.match(ignored[0]![1], why);
      assert.equal(ignored[0]![2], dirOf(runDir, 2));
    }
    rmSync(file);
    assert.equal((await latestCheckpoint(runDir, undefined, () => assert.fail('a missing state.json is no damage')))?.state.step, 2);
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
});

test('retention never removes the newest intact checkpoint in favour of a damaged one (after a fallback)', async () => {
  const runDir = await runWithCheckpoints([2, 4]);
  try {
    truncateSync(join(dirOf(runDir, 4), 'weights.bin'), 10);
    const ck = await latestCheckpoint(runDir, () => undefined);
    assert.equal(ck?.state.step, 2, 'resumed from the older one');
    // The resumed run checkpoints step 3 keeping 2: by name alone that kept 3 and the damaged 4, and removed 2.
    await runWithCheckpoints([3], runDir, 2);
    assert.deepEqual(readdirSync(join(runDir, 'checkpoints')).sort(), ['step-00000002', 'step-00000003']);
    // And on: the older intact ones go by age as before.
    await runWithCheckpoints([4, 5], runDir, 2);
    assert.deepEqual(readdirSync(join(runDir, 'checkpoints')).sort(), ['step-00000004', 'step-00000005']);
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
});

/**
 * A read that fails with EIO for any user, root included (chmod stops no root): the file replaced by a link to
 * /proc/self/mem, whose first page is never mapped, so reading it from the start is an input/output error.
 * Returns the undo (the file's bytes put back), or null where there is no such file (not Linux).
 */
function unreadable(file: string): (() => void) | null {
  if (process.platform !== 'linux') return null;
  const bytes = readFileSync(file);
  rmSync(file);
  symlinkSync('/proc/self/mem', file);
  return () => {
    rmSync(file);
    writeFileSync(file, bytes);
  };
}

test('a checkpoint that cannot be read (an I/O error; no permission, too many open files alike) is no damaged one: resuming stops naming the file and the reason, nothing skipped', async (t) => {
  const runDir = await runWithCheckpoints([2, 4]);
  try {
    const file = join(dirOf(runDir, 4), 'weights.bin');
    const undo = unreadable(file);
    if (!undo) return t.skip('needs /proc/self/mem (Linux) for a read error');
    await assert.rejects(
      latestCheckpoint(runDir, (d, reason) => assert.fail(`reported damaged: ${d}: ${reason}`)),
      (e: unknown) => e instanceof ColorpipeError && e.code === 'ERR_CHECKPOINT' &&
        e.message.includes(dirOf(runDir, 4)) && e.message.endsWith(`cannot read ${file}: input/output error`),
    );
    // Readable again: the run resumes from it, nothing was lost.
    undo();
    assert.equal((await latestCheckpoint(runDir, () => assert.fail('intact')))?.state.step, 4);
  } finally {
    rmSync(runDir, { recursive: true, force: true });
  }
});

test('retention never removes a checkpoint it could not read: kept, said once with the reason, not counted as intact', async (t) => {
  const source = await runWithCheckpoints([2, 4]);
  // A copy is a run this process has not seen (as after a restart): retention must read its checkpoints.
  const runDir = mkdtempSync(join(tmpdir(), 'colorpipe-ck-'));
  cpSync(source, runDir, { recursive: true, verbatimSymlinks: true });
  rmSync(source, { recursive: true, force: true });
  const write = process.stderr.write;
  const lines: string[] = [];
  try {
    const file = join(dirOf(runDir, 4), 'weights.bin');
    const undo = unreadable(file);
    if (!undo) return t.skip('needs /proc/self/mem (Linux) for a read error');
    process.stderr.write = ((chunk: string) => (lines.push(String(chunk)), true)) as typeof process.stderr.write;
    // Step 5 keeping 2: step 4 could not be read, so step 2 is the other intact one; 4 is not removed either.
    await runWithCheckpoints([5], runDir, 2);
    await runWithCheckpoints([6], runDir, 3);
    process.stderr.write = write;
    assert.deepEqual(readdirSync(join(runDir, 'checkpoints')).sort(), ['step-00000002', 'step-00000004', 'step-00000005', 'step-00000006']);
    assert.deepEqual(lines, [`colorpipe: checkpoint ${dirOf(runDir, 4)} could not be read (cannot read ${file}: input/output error): kept, not counted as intact\n`]);
    // Readable again, it is an intact checkpoint like any other, and retention goes by age.
    undo();
    await runWithCheckpoints([7], runDir, 2);
    assert.deepEqual(readdirSync(join(runDir, 'checkpoints')).sort(), ['step-00000006', 'step-00000007']);
  } finally {
    process.stderr.write = write;
    rmSync(runDir, { recursive: true, force: true });
  }
});
