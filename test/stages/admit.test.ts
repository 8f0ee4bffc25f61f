import { test } from 'node:test';
import assert from 'node:assert/strict';
import { admit, type Leased } from '../../src/stages/admit.js';
import { ByteBudget } from '../../src/core/budget.js';
import { pipeline } from '../../src/core/pipeline.js';
import { InvalidOptionError } from '../../src/core/errors.js';

test('items wait for their bytes: what is in flight past the gate never exceeds the budget, and all items pass in order', async () => {
  const budget = new ByteBudget(100);
  const sizes = [30, 50, 40, 90, 10, 120, 5, 60];
  let inFlight = 0;
  let most = 0;
  const held: Leased<{ i: number; bytes: number }>[] = [];
  const out: number[] = [];
  // A consumer that keeps up to 4 items before finishing the oldest (a pool of workers, say).
  const it = pipeline(sizes.map((bytes, i) => ({ i, bytes })), admit<{ i: number; bytes: number }>({ budget, costOf: (x) => x.bytes }))[Symbol.asyncIterator]();
  const finish = () => {
    const x = held.shift()!;
    inFlight -= x.bytes;
    out.push(x.i);
    x.lease.release();
  };
  for (;;) {
    const pending = it.next();
    // Finish items until the gate lets the next one through.
    let r: IteratorResult<Leased<{ i: number; bytes: number }>> | null = null;
    while (!r) {
      r = await Promise.race([pending, new Promise<null>((res) => setImmediate(() => res(null)))]);
      if (!r) finish();
    }
    if (r.done) break;
    held.push(r.value);
    inFlight += r.value.bytes;
    most = Math.max(most, r.value.bytes > 100 ? 0 : inFlight);
    assert.ok(r.value.bytes > 100 ? inFlight === r.value.bytes : inFlight <= 100, `in flight ${inFlight}`);
    if (held.length >= 4) finish();
  }
  while (held.length) finish();
  assert.deepEqual(out, sizes.map((_, i) => i));
  assert.ok(budget.peak <= 120 && most <= 100);
  assert.equal(budget.used, 0);
});

test('a costOf that throws gives the item a lease of 0 (the stages after it report it); bad options throw at once', async () => {
  const budget = new ByteBudget(10);
  const items: Leased<{ k: string }>[] = [];
  for await (const x of pipeline([{ k: 'a' }, { k: 'bad' }], admit<{ k: string }>({ budget, costOf: (x) => { if (x.k === 'bad') throw new Error('no header'); return 4; } }))) items.push(x);
  assert.deepEqual(items.map((x) => [x.k, x.lease.bytes]), [['a', 4], ['bad', 0]]);
  assert.throws(() => admit({ budget: {} as ByteBudget, costOf: () => 1 }), InvalidOptionError);
  assert.throws(() => admit({ budget, costOf: 3 as unknown as () => number }), InvalidOptionError);
});
