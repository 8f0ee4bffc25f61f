import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pullAhead } from '../../src/core/pull-ahead.js';
import { settled, turns, until } from '../helpers/wait.js';

const turn = () => new Promise((r) => setImmediate(r));

test('pullAhead pulls while there is room, one next() at a time, and resumes on roomMade', async () => {
  let pulls = 0;
  let concurrent = 0;
  let maxConcurrent = 0;
  const source: AsyncIterable<number> = {
    [Symbol.asyncIterator]: () => ({
      async next() {
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        await turn();
        concurrent--;
        return pulls < 10 ? { done: false, value: pulls++ } : { done: true, value: undefined };
      },
    }),
  };
  const held: number[] = [];
  const p = pullAhead(source, new AbortController().signal, () => held.length < 3, (x) => held.push(x));
  while (held.length < 3) await p.wait();
  for (let i = 0; i < 10; i++) await turn();
  assert.deepEqual(held, [0, 1, 2], 'no pull past the room');
  held.length = 0;
  p.roomMade();
  while (held.length < 3) await p.wait();
  assert.deepEqual(held, [3, 4, 5]);
  assert.equal(maxConcurrent, 1, 'a source is never called concurrently');
  await p.close();
  assert.ok(p.ended);
});

test('pullAhead keeps a source error for the stage, and close() returns the source', async () => {
  let returned = false;
  const source = (async function* () {
    try {
      yield 1;
      throw new Error('bad shard');
    } finally {
      returned = true;
    }
  })();
  const got: number[] = [];
  const p = pullAhead(source, new AbortController().signal, () => true, (x) => got.push(x));
  while (!p.ended) await p.wait();
  assert.ok(p.failed);
  assert.match(String(p.error), /bad shard/);
  assert.deepEqual(got, [1]);
  await p.close();
  assert.ok(returned);
});

test('an abort stops pulling and wakes a waiting consumer', async () => {
  const a = new AbortController();
  let pulls = 0;
  const never: AsyncIterable<number> = {
    [Symbol.asyncIterator]: () => ({ next: () => (pulls++, new Promise(() => undefined)), return: async () => ({ done: true, value: undefined }) }),
  };
  const p = pullAhead(never, a.signal, () => true, () => undefined);
  const woke = p.wait();
  const isAwake = settled(woke);
  await turns();
  assert.equal(isAwake(), false, 'the consumer waits on a source that never answers');
  a.abort();
  await until(isAwake, 'the waiting consumer woke after the abort');
  assert.equal(await woke, undefined);
  assert.equal(p.failed, false, 'an abort is not a source error');
  await turns();
  assert.equal(pulls, 1, 'only the pull in flight at the abort');
});
