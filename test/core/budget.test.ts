import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteBudget, type Lease } from '../../src/core/budget.js';
import { AbortError, InvalidOptionError } from '../../src/core/errors.js';
import { turns } from '../helpers/wait.js';


test('leases are granted while they fit; the next waits until enough is released; the peak never passes the limit', async () => {
  const b = new ByteBudget(100);
  const a = await b.acquire(60);
  const c = await b.acquire(40);
  assert.equal(b.used, 100);
  let got: Lease | null = null;
  void b.acquire(50).then((l) => (got = l));
  await turns();
  assert.equal(got, null, '100 + 50 > 100: it waits');
  assert.equal(b.waiting, 1);
  c.release();
  c.release(); // twice: no-op
  await turns();
  assert.equal(got, null, '60 + 50 > 100: still waiting');
  assert.equal(b.used, 60);
  a.release();
  await turns();
  assert.equal((got as Lease | null)?.bytes, 50);
  assert.equal(b.used, 50);
  assert.equal(b.peak, 100);
});

test('requests are served in order: a large one is not starved by small ones behind it', async () => {
  const b = new ByteBudget(100);
  const first = await b.acquire(70);
  const order: string[] = [];
  const big = b.acquire(90).then((l) => {
    order.push('big');
    return l;
  });
  const small = b.acquire(20).then((l) => {
    order.push('small');
    return l;
  });
  await turns();
  assert.deepEqual(order, [], 'the small one fits but waits behind the big one');
  first.release();
  await turns();
  assert.deepEqual(order, ['big'], 'the big one is served once it fits, the small one still waits');
  (await big).release();
  await turns();
  assert.deepEqual(order, ['big', 'small']);
  assert.equal((await small).bytes, 20);
});

test('an item larger than the whole budget goes alone when nothing else is held', async () => {
  const b = new ByteBudget(100);
  const huge = await b.acquire(500);
  assert.equal(b.used, 500);
  let next = false;
  void b.acquire(1).then(() => (next = true));
  await turns();
  assert.equal(next, false);
  huge.release();
  await turns();
  assert.equal(next, true);
});

test('an abort rejects a waiting request with the signal\'s reason and lets the ones behind it through', async () => {
  const b = new ByteBudget(100);
  const held = await b.acquire(80);
  const ac = new AbortController();
  const waiting = b.acquire(90, ac.signal);
  const behind = b.acquire(20);
  ac.abort();
  await assert.rejects(waiting, AbortError);
  const l = await behind;
  assert.equal(l.bytes, 20);
  assert.equal(b.used, 100);
  held.release();
  await assert.rejects(b.acquire(1, ac.signal), AbortError);
  assert.throws(() => new ByteBudget(0), InvalidOptionError);
  assert.throws(() => b.acquire(-1), InvalidOptionError);
  assert.throws(() => b.acquire(Number.NaN), InvalidOptionError);
});
