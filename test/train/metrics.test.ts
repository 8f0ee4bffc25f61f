import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { logMetrics, MetricWindow, RunTotals } from '../../src/train/metrics.js';
import type { StepRecord } from '../../src/train/step.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { tmpDir } from '../helpers/tar.js';

const rec = (step: number, over: Partial<StepRecord> = {}): StepRecord => ({
  step, epoch: 0, loss: step, mse: step / 2, ce: 1, batchSize: 4, waitMs: 10, computeMs: 30,
  imgPerS: 100, dataStall: 0.25, checkpointed: false, ...over,
});

test('a window logs the means since the last line and throughput from the summed times', () => {
  const w = new MetricWindow();
  w.add(rec(1, { waitMs: 0, computeMs: 100 }));
  w.add(rec(2, { waitMs: 100, computeMs: 100, loss: 4 }));
  const engine = { backend: 'wasm', engine: 'tfjs', device: 'cpu' };
  const line = w.take(rec(2), engine);
  assert.deepEqual(line, { step: 2, epoch: 0, loss: 2.5, mse: 0.75, ce: 1, img_per_s: 8 * 1000 / 300, data_stall: 100 / 300, backend: 'wasm', engine: 'tfjs', device: 'cpu' });
  w.add(rec(3));
  assert.equal(w.take(rec(3), engine).loss, 3, 'the window starts afresh after a line');
});

test('logMetrics writes a line every N steps, at checkpointed steps and at the last step, and passes every record on', async (t) => {
  const dir = tmpDir(t);
  const path = join(dir, 'metrics.jsonl');
  const records = [1, 2, 3, 4, 5, 6, 7].map((s) => rec(s, { checkpointed: s === 3 }));
  const out = await collect(pipeline(records, logMetrics({ path, every: 4, last: 7, backend: 'cpu', engine: 'tfjs', device: 'cpu' })));
  assert.deepEqual(out.map((r) => r.step), [1, 2, 3, 4, 5, 6, 7]);
  const lines = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss: number });
  assert.deepEqual(lines.map((l) => l.step), [3, 4, 7]);
  assert.deepEqual(lines.map((l) => l.loss), [2, 4, 6], 'means over (1,2,3), (4), (5,6,7)');
});

test('logMetrics validates its options when made', () => {
  assert.throws(() => logMetrics({ path: 'x', every: 0, last: 1, backend: 'cpu', engine: 'tfjs', device: 'cpu' }), InvalidOptionError);
  assert.throws(() => logMetrics({ path: '', every: 1, last: 1, backend: 'cpu', engine: 'tfjs', device: 'cpu' }), /options.path/);
});

test('RunTotals: last loss and per-step means; zeros for an empty run', () => {
  const t = new RunTotals();
  assert.deepEqual([t.steps, t.meanImgPerS, t.meanDataStall], [0, 0, 0]);
  t.add(rec(1, { imgPerS: 10, dataStall: 0.5 }));
  t.add(rec(2, { imgPerS: 30, dataStall: 0 }));
  assert.deepEqual([t.steps, t.lastLoss, t.meanImgPerS, t.meanDataStall], [2, 2, 20, 0.25]);
});
