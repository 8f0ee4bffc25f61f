import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateEvery } from '../../src/train/validation.js';
import type { StepRecord } from '../../src/train/step.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { InvalidOptionError } from '../../src/core/errors.js';

const rec = (step: number, checkpointed = false): StepRecord => ({
  step, epoch: 0, loss: 1, mse: 1, ce: 0, batchSize: 1, waitMs: 0, computeMs: 1, imgPerS: 1, dataStall: 0, checkpointed,
});

test('validateEvery runs every N steps, skips checkpointed steps (already validated), before passing the record on', async () => {
  const events: string[] = [];
  const records = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((s) => rec(s, s === 6));
  const stage = validateEvery({ every: 3, run: async (step) => { events.push(`val ${step}`); } });
  for await (const r of pipeline(records, stage)) events.push(`step ${r.step}`);
  assert.deepEqual(events.filter((e) => e.startsWith('val')), ['val 3', 'val 9']);
  assert.ok(events.indexOf('val 3') < events.indexOf('step 3'), 'the validation line comes before the step line');
  assert.equal(events.filter((e) => e.startsWith('step')).length, 9);
});

test('validateEvery with 0 calls nothing; a bad value fails when made', async () => {
  let calls = 0;
  const out = await collect(pipeline([rec(1), rec(2)], validateEvery({ every: 0, run: async () => { calls++; } })));
  assert.equal(out.length, 2);
  assert.equal(calls, 0);
  assert.throws(() => validateEvery({ every: -1, run: async () => undefined }), InvalidOptionError);
});

test('an error in validation surfaces at the consumer', async () => {
  const stage = validateEvery({ every: 1, run: async () => { throw new Error('eval failed'); } });
  await assert.rejects(collect(pipeline([rec(1)], stage)), /eval failed/);
});
