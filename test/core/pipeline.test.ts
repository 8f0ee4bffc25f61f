import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pipeline, compose, collect, drain, type Stage, type StageContext } from '../../src/core/pipeline.js';
import { throwIfAborted, sleep } from '../../src/core/abort.js';
import { AbortError, BadInputError, Reporter } from '../../src/core/errors.js';
import { activeTimers, settled, turns, until } from '../helpers/wait.js';

const map =
  <I, O>(f: (x: I) => O): Stage<I, O> =>
  async function* (source) {
    for await (const x of source) yield f(x);
  };

/** A stage that records its lifecycle: started, finished (its finally ran), and the signal it saw. */
function tracked<T>(name: string, log: string[], seen: { signal?: AbortSignal } = {}): Stage<T, T> {
  return async function* (source, ctx) {
    seen.signal = ctx.signal;
    log.push(`${name}:start`);
    try {
      for await (const x of source) yield x;
    } finally {
      log.push(`${name}:finally`);
    }
  };
}

function countingSource(n: number, log: string[]): (ctx: StageContext) => AsyncIterable<number> {
  return async function* () {
    try {
      for (let i = 0; i < n; i++) {
        log.push(`source:${i}`);
        yield i;
      }
    } finally {
      log.push('source:finally');
    }
  };
}

test('stages compose left to right, over sync, async and function sources', async () => {
  const inc = map((x: number) => x + 1);
  const dbl = map((x: number) => x * 2);
  assert.deepEqual(await collect(pipeline([1, 2, 3], inc, dbl)), [4, 6, 8]);
  assert.deepEqual(await collect(pipeline([1, 2, 3], dbl, inc)), [3, 5, 7]);
  assert.deepEqual(
    await collect(
      pipeline(
        (async function* () {
          yield 5;
        })(),
        inc,
      ),
    ),
    [6],
  );
  assert.deepEqual(await collect(pipeline(() => (async function* () { yield 1; yield 2; })(), dbl)), [2, 4]);
  assert.deepEqual(await collect(pipeline(['a', 'b'])), ['a', 'b']);
  const both = compose(inc, dbl, map((x: number) => `${x}`));
  const ctx: StageContext = { signal: new AbortController().signal, reporter: new Reporter({ log: null }) };
  assert.deepEqual(await collect(both((async function* () { yield 1; })(), ctx)), ['4']);
  assert.equal(await drain(pipeline([1, 2, 3, 4], inc)), 4);
});

test('typed overloads: a mistyped chain does not compile', async () => {
  const toStr = map((x: number) => String(x));
  const len = map((s: string) => s.length);
  const ok: AsyncIterable<number> = pipeline([1, 22, 333], toStr, len);
  assert.deepEqual(await collect(ok), [1, 2, 3]);
  // @ts-expect-error: len takes strings, the source gives numbers
  pipeline([1, 2], len);
  // @ts-expect-error: toStr gives strings, toStr takes numbers
  compose(toStr, toStr);
  // @ts-expect-error: the result type is string, not number
  const wrong: AsyncIterable<number> = pipeline([1], toStr);
  void wrong;
});

test('options as the last argument are not taken for a stage; the given reporter is used', async () => {
  const reporter = new Reporter({ log: null });
  const p = pipeline(
    [1, 2, 3],
    async function* (source: AsyncIterable<number>, ctx: StageContext): AsyncGenerator<number> {
      for await (const x of source) {
        if (x === 2) ctx.reporter.report('test', 'two', 'bad');
        else yield x;
      }
    },
    { reporter },
  );
  assert.equal(p.ctx.reporter, reporter);
  assert.deepEqual(await collect(p), [1, 3]);
  assert.deepEqual(reporter.summary(), { total: 1, byStage: { test: 1 } });
});

test('an early break runs every stage\'s finally and the source\'s, and aborts ctx.signal', async () => {
  const log: string[] = [];
  const seen: { signal?: AbortSignal } = {};
  const p = pipeline(countingSource(100, log), tracked<number>('a', log, seen), tracked<number>('b', log));
  const got: number[] = [];
  for await (const x of p) {
    got.push(x);
    if (x === 2) break;
  }
  assert.deepEqual(got, [0, 1, 2]);
  assert.ok(seen.signal?.aborted, 'signal aborted after break');
  assert.ok(p.ctx.signal.aborted);
  // Each stage's for-await returns its source before its own finally runs: the source finishes first.
  assert.deepEqual(log.filter((l) => l.endsWith('finally')), ['source:finally', 'a:finally', 'b:finally']);
  assert.ok(!log.includes('source:4'), 'the source stopped being pulled');
});

test('the normal end also aborts the signal (releasing listeners) and a second iteration is refused', async () => {
  const p = pipeline([1, 2]);
  assert.deepEqual(await collect(p), [1, 2]);
  assert.ok(p.ctx.signal.aborted);
  assert.throws(() => p[Symbol.asyncIterator](), /once/);
});

test('an error in a middle stage stops the source and surfaces at the consumer', async () => {
  const log: string[] = [];
  const boom: Stage<number, number> = async function* (source) {
    try {
      for await (const x of source) {
        if (x === 3) throw new Error('boom at 3');
        yield x;
      }
    } finally {
      log.push('boom:finally');
    }
  };
  const p = pipeline(countingSource(100, log), tracked<number>('a', log), boom, tracked<number>('c', log));
  const got: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const x of p) got.push(x);
    })(),
    /boom at 3/,
  );
  assert.deepEqual(got, [0, 1, 2]);
  assert.ok(p.ctx.signal.aborted);
  for (const name of ['source', 'a', 'boom', 'c']) assert.ok(log.includes(`${name}:finally`), `${name} finished`);
  assert.ok(!log.includes('source:4'));
});

test('a fatal report (onError fail) ends the run with BadInputError', async () => {
  const reporter = new Reporter({ onError: 'fail', log: null });
  const p = pipeline(
    [1, 2, 3],
    async function* (source: AsyncIterable<number>, ctx: StageContext): AsyncGenerator<number> {
      for await (const x of source) {
        if (x === 2) ctx.reporter.report('test', 'k2', 'bad');
        yield x;
      }
    },
    { reporter },
  );
  await assert.rejects(collect(p), (err: unknown) => err instanceof BadInputError && err.key === 'k2');
});

test("the caller's signal aborts the run: a waiting stage wakes, everything finishes, the consumer gets AbortError", async () => {
  const log: string[] = [];
  const outer = new AbortController();
  let waiting = false;
  // A source that waits (honouring the signal) after its second item.
  const source = async function* (ctx: StageContext) {
    try {
      yield 1;
      yield 2;
      waiting = true;
      await sleep(60_000, ctx.signal);
      yield 3;
    } finally {
      log.push('source:finally');
    }
  };
  const p = pipeline(source, tracked<number>('a', log), { signal: outer.signal });
  const got: number[] = [];
  const run = (async () => {
    for await (const x of p) got.push(x);
  })();
  const ended = settled(run);
  await until(() => waiting, 'the source waits after its second item');
  await turns();
  assert.equal(ended(), false, 'the run waits on the source');
  outer.abort();
  await until(ended, 'the abort ended the run');
  await assert.rejects(run, (err: unknown) => err instanceof AbortError);
  assert.deepEqual(got, [1, 2]);
  assert.ok(p.ctx.signal.aborted);
  assert.deepEqual(log, ['a:start', 'source:finally', 'a:finally']);
});

test('an already aborted caller signal fails the first next() and runs the stages\' finally', async () => {
  const log: string[] = [];
  const outer = new AbortController();
  outer.abort(new Error('stop now'));
  const p = pipeline(countingSource(5, log), tracked<number>('a', log), { signal: outer.signal });
  await assert.rejects(collect(p), /stop now/);
  assert.ok(!log.includes('source:0'));
});

test('p.abort() between pulls surfaces at the next pull', async () => {
  const log: string[] = [];
  const p = pipeline(countingSource(10, log), tracked<number>('a', log));
  const it = p[Symbol.asyncIterator]();
  assert.deepEqual(await it.next(), { done: false, value: 0 });
  p.abort();
  await assert.rejects(it.next(), (err: unknown) => err instanceof AbortError);
  assert.ok(log.includes('source:finally') && log.includes('a:finally'));
});

test('throwIfAborted and sleep honour the signal; sleep leaves no timer behind', async () => {
  const c = new AbortController();
  throwIfAborted(c.signal);
  const timers = activeTimers();
  const s = sleep(60_000, c.signal);
  assert.equal(activeTimers(), timers + 1);
  c.abort();
  await assert.rejects(s, (err: unknown) => err instanceof AbortError);
  assert.equal(activeTimers(), timers, "the aborted sleep's timer is cleared");
  // The signal's own reason is thrown (here the platform's DOMException named AbortError).
  assert.throws(() => throwIfAborted(c.signal), (err: unknown) => (err as Error).name === 'AbortError');
  const d = new AbortController();
  d.abort('plain reason');
  assert.throws(() => throwIfAborted(d.signal), (err: unknown) => err instanceof AbortError && /plain reason/.test(err.message));
  await sleep(1);
});
