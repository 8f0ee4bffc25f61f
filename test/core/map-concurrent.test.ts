import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapOrdered } from '../../src/core/map-concurrent.js';
import { InvalidOptionError } from '../../src/core/errors.js';

/** A call whose completion the test controls, with a count of calls in flight. */
function controlled() {
  let inFlight = 0;
  let peak = 0;
  const waiting = new Map<number, () => void>();
  return {
    fn: async (x: number) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise<void>((r) => waiting.set(x, r));
      inFlight--;
      return x * 10;
    },
    release: (x: number) => waiting.get(x)?.(),
    started: () => [...waiting.keys()],
    peak: () => peak,
  };
}

test('mapOrdered: results in input order although calls finish out of order; at most concurrency in flight', async () => {
  const c = controlled();
  const it = mapOrdered([1, 2, 3, 4, 5], c.fn, { concurrency: 2 });
  const first = it.next();
  for (let i = 0; i < 20 && c.started().length < 2; i++) await new Promise((r) => setImmediate(r));
  assert.deepEqual(c.started(), [1, 2]);
  c.release(2); // 2 finishes first: 1 still comes out first
  c.release(1);
  assert.deepEqual(await first, { done: false, value: 10 });
  const rest: number[] = [];
  const drain = (async () => {
    for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value);
  })();
  for (let x = 3; x <= 5; x++) {
    for (let i = 0; i < 50 && !c.started().includes(x); i++) await new Promise((r) => setImmediate(r));
    assert.ok(c.started().includes(x), `call ${x} started once a slot was free`);
    c.release(x);
  }
  await drain;
  assert.deepEqual(rest, [20, 30, 40, 50]);
  assert.equal(c.peak(), 2);
});

test('mapOrdered: an error surfaces in input order, after the results before it; in-flight calls are awaited', async () => {
  let settled = 0;
  const fn = async (x: number) => {
    await new Promise((r) => setImmediate(r));
    settled++;
    if (x === 2) throw new Error('two');
    return x;
  };
  const got: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const v of mapOrdered([1, 2, 3, 4], fn, { concurrency: 3 })) got.push(v);
    })(),
    /two/,
  );
  assert.deepEqual(got, [1]);
  const startedBeforeFailure = settled;
  await new Promise((r) => setImmediate(r));
  assert.equal(settled, startedBeforeFailure, 'nothing still running after the map returned');
});

test('mapOrdered: plain iterables, an abort, and validation', async () => {
  const out: number[] = [];
  for await (const v of mapOrdered(new Set([3, 1, 2]), (x) => x + 1, { concurrency: 1 })) out.push(v);
  assert.deepEqual(out, [4, 2, 3]);
  const a = new AbortController();
  a.abort(new Error('stopped'));
  await assert.rejects(mapOrdered([1], (x) => x, { concurrency: 1, signal: a.signal }).next(), /stopped/);
  assert.throws(() => mapOrdered([1], (x) => x, { concurrency: 0 }), InvalidOptionError);
});
