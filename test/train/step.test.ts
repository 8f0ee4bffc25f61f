import { test } from 'node:test';
import assert from 'node:assert/strict';
import { train, type StepRecord } from '../../src/train/step.js';
import type { TrainEngine } from '../../src/network/train-engine.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import type { LabBatch } from '../../src/types.js';
import { InvalidOptionError } from '../../src/core/errors.js';

function fakeBatch(i: number, size = 2): LabBatch {
  return {
    size, height: 2, width: 2, L: new Float32Array(size * 4), ab: new Float32Array(size * 8), cls: new Int32Array(size).fill(-1),
    keys: Array.from({ length: size }, (_, k) => `b${i}-${k}`),
    positions: Array.from({ length: size }, (_, k) => ({ epoch: i >= 3 ? 1 : 0, shardIndex: 0, shard: 's', sample: i * size + k })),
  };
}

function* batches(n: number) {
  for (let i = 0; i < n; i++) yield fakeBatch(i);
}

type Stepper = Pick<TrainEngine, 'step'> & Partial<Pick<TrainEngine, 'depth'>>;

const trainer = (): Stepper & { seen: string[] } => {
  const seen: string[] = [];
  return { seen, async step(b) { seen.push(b.keys[0]!); return { loss: 1 / (seen.length), mse: 0.5, ce: 0.1 }; } };
};

test('runs one step per batch, numbers steps from startStep, stops at steps', async () => {
  const t = trainer();
  const recs = await collect(pipeline(batches(10), train({ engine: t, steps: 7, startStep: 2, checkpointEvery: 100 })));
  assert.deepEqual(recs.map((r) => r.step), [3, 4, 5, 6, 7]);
  assert.equal(t.seen.length, 5);
  for (const r of recs) {
    assert.ok(r.dataStall >= 0 && r.dataStall <= 1);
    assert.ok(r.waitMs >= 0 && r.computeMs >= 0 && r.imgPerS > 0);
    assert.equal(r.batchSize, 2);
  }
  assert.equal(recs.at(-1)!.epoch, 1, 'the newest epoch seen');
});

test('checkpoints every N steps and at the end, before the record is yielded', async () => {
  const cks: number[] = [];
  const recs: StepRecord[] = await collect(pipeline(batches(10), train({
    engine: trainer(), steps: 7, checkpointEvery: 3, onCheckpoint: async (s) => { cks.push(s); },
  })));
  assert.deepEqual(cks, [3, 6, 7]);
  assert.deepEqual(recs.filter((r) => r.checkpointed).map((r) => r.step), [3, 6, 7]);
});

test('a stop request ends after the current step with a checkpoint', async () => {
  const stop = new AbortController();
  const cks: number[] = [];
  const recs = await collect(pipeline(batches(10), train({
    engine: trainer(), steps: 100, checkpointEvery: 50, stop: stop.signal,
    onCheckpoint: async (s) => { cks.push(s); },
    afterStep: (_b, r) => { if (r.step === 4) stop.abort(); },
  })));
  assert.equal(recs.at(-1)!.step, 4);
  assert.deepEqual(cks, [4]);
});

test('afterStep sees every batch in order (for acknowledging the shuffle buffer)', async () => {
  const seen: string[] = [];
  await collect(pipeline(batches(4), train({ engine: trainer(), steps: 4, checkpointEvery: 10, afterStep: (b) => seen.push(b.keys[0]!) })));
  assert.deepEqual(seen, ['b0-0', 'b1-0', 'b2-0', 'b3-0']);
});

test('an engine error surfaces at the consumer and stops the source', async () => {
  let closed = false;
  async function* src() {
    try { for (let i = 0; ; i++) yield fakeBatch(i); } finally { closed = true; }
  }
  const bad: Stepper = { async step() { throw new Error('engine failed'); } };
  await assert.rejects(collect(pipeline(src(), train({ engine: bad, steps: 5, checkpointEvery: 1 }))), /engine failed/);
  assert.ok(closed);
});

test('options are validated when the stage is made', () => {
  assert.throws(() => train({ engine: trainer(), steps: 0, checkpointEvery: 1 }), InvalidOptionError);
  assert.throws(() => train({ engine: trainer(), steps: 1, checkpointEvery: 0 }), /checkpointEvery/);
});

/** An engine of depth 2 whose steps finish only when the test says; it records what was in flight when. */
function manualEngine() {
  const pending: Array<{ key: string; resolve: (v: { loss: number; mse: number; ce: number }) => void }> = [];
  const maxInflight = { value: 0 };
  const engine: Stepper = {
    depth: 2,
    step(b) {
      return new Promise((resolve) => {
        pending.push({ key: b.keys[0]!, resolve });
        maxInflight.value = Math.max(maxInflight.value, pending.length);
      });
    },
  };
  return { engine, pending, maxInflight };
}

/** Finishes the engine's steps one at a time, as they arrive, until the run ends; returns what was in flight at each checkpoint. */
async function runManual(o: { steps: number; checkpointEvery: number; syncAfter?: (s: number) => boolean; stopAt?: number }) {
  const m = manualEngine();
  const stop = new AbortController();
  const inflightAtCheckpoint: Array<[number, number]> = [];
  const run = collect(pipeline(batches(20), train({
    engine: m.engine, steps: o.steps, checkpointEvery: o.checkpointEvery, stop: stop.signal,
    ...(o.syncAfter ? { syncAfter: o.syncAfter } : {}),
    onCheckpoint: async (s) => { inflightAtCheckpoint.push([s, m.pending.length]); },
    afterStep: (_b, r) => { if (r.step === o.stopAt) stop.abort(); },
  })));
  let done = false;
  void run.finally(() => { done = true; });
  let finished = 0;
  while (!done) {
    // Let the stage hand over what it will before finishing the oldest step.
    await new Promise((r) => setImmediate(r));
    const next = m.pending.shift();
    if (next) next.resolve({ loss: ++finished, mse: 0, ce: 0 });
  }
  return { records: await run, inflightAtCheckpoint, maxInflight: m.maxInflight.value };
}

test('an engine of depth 2 gets the next batch before the previous step is back, in order', async () => {
  const r = await runManual({ steps: 6, checkpointEvery: 100 });
  assert.equal(r.maxInflight, 2);
  assert.deepEqual(r.records.map((x) => x.step), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(r.records.map((x) => x.loss), [1, 2, 3, 4, 5, 6], 'each record carries its own step\'s losses');
});

test('nothing is in flight at a checkpoint or after a step syncAfter names', async () => {
  const r = await runManual({ steps: 9, checkpointEvery: 4, syncAfter: (s) => s === 6 });
  assert.deepEqual(r.inflightAtCheckpoint, [[4, 0], [8, 0], [9, 0]]);
  assert.equal(r.maxInflight, 2);
});

test('a stop with a step in flight checkpoints after that step, not before it', async () => {
  const r = await runManual({ steps: 100, checkpointEvery: 50, stopAt: 3 });
  assert.deepEqual(r.inflightAtCheckpoint, [[4, 0]], 'step 4 was in flight when the stop came');
  assert.equal(r.records.at(-1)!.step, 4);
  assert.ok(r.records.at(-1)!.checkpointed);
});

test('an engine that computes inside step() itself (as tfjs does) has that time counted as compute, not lost', async () => {
  const busy = (ms: number) => {
    const end = performance.now() + ms;
    while (performance.now() < end);
  };
  const engine: Stepper = { async step() { busy(20); return { loss: 1, mse: 1, ce: 0 }; } };
  const recs = await collect(pipeline(batches(3), train({ engine, steps: 3, checkpointEvery: 10 })));
  for (const r of recs) {
    assert.ok(r.computeMs >= 20, `compute ${r.computeMs} ms`);
    assert.ok(r.imgPerS <= (r.batchSize * 1000) / 20, 'throughput counts the compute');
  }
});
