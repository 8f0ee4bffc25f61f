import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parallelMap } from '../../src/stages/parallel-map.js';
import { pipeline, collect, type StageContext } from '../../src/core/pipeline.js';
import { sleep } from '../../src/core/abort.js';
import { AbortError, InvalidOptionError } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import { settle } from '../helpers/tar.js';
import { settled, until } from '../helpers/wait.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Waits a random number of event-loop turns: varied completion order without timers. */
async function jitter(rng: Rng): Promise<void> {
  for (let k = rng.int(6); k > 0; k--) await new Promise((r) => setImmediate(r));
}

test('ordered by default, unordered on request; in-flight calls never exceed concurrency', async () => {
  for (const concurrency of [1, 3, 8]) {
    for (const ordered of [true, false]) {
      const rng = new Rng(`pm-${concurrency}-${ordered}`);
      let inFlight = 0;
      let maxInFlight = 0;
      const fn = async (x: number) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await jitter(rng);
        inFlight--;
        return x * 10;
      };
      const out = await collect(pipeline(range(60), parallelMap(fn, { concurrency, ordered })));
      assert.equal(maxInFlight, concurrency, `concurrency ${concurrency} reached, never exceeded`);
      assert.equal(inFlight, 0);
      if (ordered) assert.deepEqual(out, range(60).map((x) => x * 10));
      else assert.deepEqual([...out].sort((a, b) => a - b), range(60).map((x) => x * 10));
    }
  }
});

test('ordered keeps input order when later calls finish first; unordered emits in completion order', async () => {
  for (const ordered of [true, false]) {
    const resolvers: ((v: string) => void)[] = [];
    const fn = (x: string) =>
      new Promise<string>((resolve) => {
        resolvers.push(resolve);
        void x;
      });
    const it = pipeline(['a', 'b', 'c'], parallelMap(fn, { concurrency: 3, ordered }))[Symbol.asyncIterator]();
    const first = it.next();
    await until(() => resolvers.length === 3, 'all 3 calls started at once');
    resolvers[2]!('C');
    resolvers[1]!('B');
    await settle();
    resolvers[0]!('A');
    const rest = [(await first).value, (await it.next()).value, (await it.next()).value];
    assert.deepEqual(rest, ordered ? ['A', 'B', 'C'] : ['C', 'B', 'A']);
    assert.equal((await it.next()).done, true);
  }
});

test('a rejection surfaces at the consumer in its turn; the source is returned and running calls finish', async () => {
  let sourceFinished = false;
  const source = async function* () {
    try {
      for (let i = 0; ; i++) yield i;
    } finally {
      sourceFinished = true;
    }
  };
  let inFlight = 0;
  const rng = new Rng('err');
  const fn = async (x: number) => {
    inFlight++;
    try {
      await jitter(rng);
      if (x === 5) throw new Error('fn failed on 5');
      return x;
    } finally {
      inFlight--;
    }
  };
  const got: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const x of pipeline(source, parallelMap(fn, { concurrency: 4 }))) got.push(x);
    })(),
    /fn failed on 5/,
  );
  assert.deepEqual(got, [0, 1, 2, 3, 4]);
  assert.ok(sourceFinished);
  assert.equal(inFlight, 0, 'calls in flight were awaited before the pipeline returned');
});

test('an early break starts no new call, awaits the running ones and returns the source', async () => {
  let sourceFinished = false;
  let pulled = 0;
  const source = async function* () {
    try {
      for (let i = 0; i < 1000; i++) {
        pulled++;
        yield i;
      }
    } finally {
      sourceFinished = true;
    }
  };
  let calls = 0;
  let inFlight = 0;
  const rng = new Rng('break');
  const fn = async (x: number) => {
    calls++;
    inFlight++;
    await jitter(rng);
    inFlight--;
    return x;
  };
  const got: number[] = [];
  for await (const x of pipeline(source, parallelMap(fn, { concurrency: 5 }))) {
    got.push(x);
    if (got.length === 7) break;
  }
  assert.deepEqual(got, range(7));
  assert.ok(sourceFinished);
  assert.equal(inFlight, 0);
  const callsAtStop = calls;
  const pulledAtStop = pulled;
  assert.ok(callsAtStop <= 7 + 5, `calls ${callsAtStop}`);
  await settle(20);
  assert.equal(calls, callsAtStop);
  assert.equal(pulled, pulledAtStop);
});

test('a source error comes after the results of the items already started', async () => {
  const source = async function* () {
    yield 1;
    yield 2;
    throw new Error('source failed');
  };
  const got: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const x of pipeline(source, parallelMap(async (x: number) => x + 100, { concurrency: 4 }))) got.push(x);
    })(),
    /source failed/,
  );
  assert.deepEqual(got, [101, 102]);
});

test('fn receives ctx; an abort rejects the waiting consumer and the fns see the signal', async () => {
  let aborts = 0;
  let started = 0;
  const fn = async (x: number, ctx: StageContext) => {
    started++;
    try {
      await sleep(60_000, ctx.signal);
    } catch (err) {
      aborts++;
      throw err;
    }
    return x;
  };
  const p = pipeline(range(10), parallelMap(fn, { concurrency: 3 }));
  const run = collect(p);
  await until(() => started === 3, '3 calls running');
  p.abort();
  await until(settled(run), 'the abort ended the waiting consumer');
  await assert.rejects(run, (err: unknown) => err instanceof AbortError);
  assert.equal(aborts, 3);
  assert.equal(started, 3, 'no call started after the abort');
});

test('options are validated at once', () => {
  const f = async (x: number) => x;
  assert.throws(() => parallelMap(f, { concurrency: 0 }), /Expected positive integer for options.concurrency but received 0/);
  assert.throws(() => parallelMap(f, { concurrency: 2, ordered: 1 as unknown as boolean }), InvalidOptionError);
  assert.throws(() => parallelMap(null as unknown as typeof f, { concurrency: 2 }), InvalidOptionError);
});
