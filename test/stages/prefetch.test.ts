import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prefetch } from '../../src/stages/prefetch.js';
import { pipeline, collect, type StageContext } from '../../src/core/pipeline.js';
import { sleep } from '../../src/core/abort.js';
import { AbortError, InvalidOptionError } from '../../src/core/errors.js';
import { settle } from '../helpers/tar.js';
import { settled, turns, until } from '../helpers/wait.js';

/** A source that counts its pulls and notes when its `finally` ran. */
function counted(total: number) {
  const state = { pulled: 0, finished: false };
  const source = async function* (ctx: StageContext) {
    try {
      for (let i = 0; i < total; i++) {
        state.pulled++;
        yield i;
        if (ctx.signal.aborted) return;
      }
    } finally {
      state.finished = true;
    }
  };
  return { state, source };
}

test('delivers everything in order', async () => {
  const { source } = counted(50);
  assert.deepEqual(await collect(pipeline(source, prefetch<number>(4))), Array.from({ length: 50 }, (_, i) => i));
  assert.deepEqual(await collect(pipeline(source, prefetch<number>({ size: 1 }))), Array.from({ length: 50 }, (_, i) => i));
});

test('pulls exactly n items ahead while the consumer is busy, and no more', { timeout: 10_000 }, async () => {
  for (const n of [1, 3, 8]) {
    const { state, source } = counted(100);
    const it = pipeline(source, prefetch<number>(n))[Symbol.asyncIterator]();
    assert.deepEqual(await it.next(), { done: false, value: 0 });
    // The consumer is "computing": the source keeps being pulled in the background, up to n items beyond the
    // one delivered...
    await until(() => state.pulled >= 1 + n, `n=${n}: ${1 + n} pulls while the consumer holds the first item`);
    await settle(20);
    // ...and never further while nothing is taken.
    assert.equal(state.pulled, 1 + n, `n=${n}`);
    await it.next();
    await until(() => state.pulled >= 2 + n, `n=${n}: one more pull once an item is taken`);
    await settle(20);
    assert.equal(state.pulled, 2 + n);
    await it.return?.();
  }
});

test('the consumer returning stops the pulls and returns the source', async () => {
  const { state, source } = counted(1000);
  let got = 0;
  for await (const _ of pipeline(source, prefetch<number>(5))) if (++got === 3) break;
  assert.ok(state.finished, "the source's finally ran");
  const at = state.pulled;
  await settle(20);
  assert.equal(state.pulled, at, 'no pull after return');
  assert.ok(at <= 3 + 5 + 1, `pulled ${at}`);
});

test('a source error surfaces at the consumer', async () => {
  const source = async function* () {
    yield 1;
    yield 2;
    throw new Error('source broke');
  };
  const got: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const x of pipeline(source, prefetch<number>(4))) got.push(x);
    })(),
    /source broke/,
  );
  assert.deepEqual(got, [1, 2].slice(0, got.length), 'a prefix of the items came first');
});

test('an abort wakes a consumer waiting on a stalled source; the source is returned', async () => {
  let finished = false;
  let stalled = false;
  const source = async function* (ctx: StageContext) {
    try {
      yield 1;
      stalled = true;
      await sleep(60_000, ctx.signal);
      yield 2;
    } finally {
      finished = true;
    }
  };
  const p = pipeline(source, prefetch<number>(2));
  const it = p[Symbol.asyncIterator]();
  assert.deepEqual(await it.next(), { done: false, value: 1 });
  const waiting = it.next();
  const woke = settled(waiting);
  await until(() => stalled, 'the source pulled past its first item');
  await turns();
  assert.equal(woke(), false, 'the consumer waits on the stalled source');
  p.abort();
  await until(woke, 'the abort woke the waiting consumer');
  await assert.rejects(waiting, (err: unknown) => err instanceof AbortError);
  await settle();
  assert.ok(finished);
});

test('options are validated at once', () => {
  assert.throws(() => prefetch(0), /Expected positive integer for options.size but received 0/);
  assert.throws(() => prefetch({ size: 2.5 }), InvalidOptionError);
});

test('without a type argument the item type flows through pipeline() (checked when the tests compile)', async () => {
  const p = pipeline([{ n: 1 }, { n: 2 }], prefetch(2), prefetch({ size: 1 }));
  const got: number[] = [];
  // `x` is { n: number }, not unknown: this line would not compile if prefetch(2) were a Stage<unknown, unknown>.
  for await (const x of p) got.push(x.n);
  assert.deepEqual(got, [1, 2]);
});
