import { test } from 'node:test';
import assert from 'node:assert/strict';
import { shuffle, type ShuffleState } from '../../src/stages/shuffle.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { InvalidOptionError, Reporter } from '../../src/core/errors.js';
import { Rng } from '../../src/core/rng.js';
import type { ShardPosition } from '../../src/types.js';

interface Item {
  id: string;
  rank: number;
  position: ShardPosition;
}

/** n items per rank, arriving round-robin across ranks (as a merged multi-reader loader would deliver them). */
function makeItems(n: number, ranks = 1): Item[] {
  const out: Item[] = [];
  for (let i = 0; i < n; i++) {
    for (let r = 0; r < ranks; r++) {
      out.push({ id: `r${r}-${i}`, rank: r, position: { epoch: 0, shardIndex: r + ranks * Math.floor(i / 7), shard: `r${r}`, sample: i } });
    }
  }
  return out;
}

const idOf = (p: ShardPosition) => `${p.shard}-${p.sample}`;

/** What a resumed run's source delivers: the pending and buffered items by position, then each rank's rest. */
function resumeSource(all: Item[], state: ShuffleState): Item[] {
  const byId = new Map(all.map((x) => [x.id, x]));
  const replay = [...state.pending, ...state.buffer].map((p) => byId.get(idOf(p))!);
  const rest = all.filter((x) => {
    const last = state.received[x.rank];
    return last === undefined || x.position.sample > last.sample;
  });
  return [...replay, ...rest];
}

/**
 * Runs the shuffle on `source`, takes `take` items (all when Infinity), acknowledges the first `ack` of them,
 * snapshots, stops. Returns the acknowledged (consumed) items and the state.
 */
async function segment(source: Item[], size: number, seed: number, restore: ShuffleState | null, take: number, ack: number) {
  const sh = shuffle<Item>({ size, seed, restore: restore === null ? null : JSON.parse(JSON.stringify(restore)) });
  const out: Item[] = [];
  let state: ShuffleState | null = null;
  const p = pipeline(source, sh, { reporter: new Reporter({ log: null }) });
  for await (const x of p) {
    out.push(x);
    if (out.length === take) {
      sh.ack(ack);
      state = sh.state();
      break;
    }
  }
  if (state === null) {
    // The stream ended before `take`: everything was consumed.
    sh.ack(out.length);
    return { consumed: out, all: out, state: sh.state(), finished: true };
  }
  return { consumed: out.slice(0, ack), all: out, state, finished: false };
}

test('output is a seeded permutation; size 1 keeps the order', async () => {
  const items = makeItems(50);
  const run = async (size: number, seed: number) => (await collect(pipeline(items, shuffle<Item>({ size, seed })))).map((x) => x.id);
  const a = await run(10, 1);
  assert.deepEqual([...a].sort(), items.map((x) => x.id).sort());
  assert.deepEqual(await run(10, 1), a);
  assert.notDeepEqual(await run(10, 2), a);
  assert.notDeepEqual(a, items.map((x) => x.id));
  assert.deepEqual(await run(1, 1), items.map((x) => x.id));
  // Fewer items than slots: all come out, shuffled, at the end.
  const few = (await collect(pipeline(items.slice(0, 5), shuffle<Item>({ size: 100, seed: 3 })))).map((x) => x.id);
  assert.deepEqual([...few].sort(), items.slice(0, 5).map((x) => x.id).sort());
});

test('the buffer holds `size` items: the first output comes after size + 1 inputs', async () => {
  let pulled = 0;
  const source = (async function* () {
    for (const x of makeItems(30)) {
      pulled++;
      yield x;
    }
  })();
  const it = pipeline(source, shuffle<Item>({ size: 8, seed: 0 }))[Symbol.asyncIterator]();
  await it.next();
  assert.equal(pulled, 9);
  await it.return?.();
});

test('exact resume: stop after k items (acking a <= k), snapshot, resume with pending ++ buffer ++ rest: same stream', async () => {
  const rng = new Rng('shuffle-resume');
  let cases = 0;
  for (const [n, size, ranks] of [
    [40, 8, 1],
    [30, 5, 2],
    [12, 16, 1],
    [25, 1, 3],
    [60, 13, 2],
  ] as const) {
    const all = makeItems(n, ranks);
    for (const seed of [0, 7]) {
      const expected = (await collect(pipeline(all, shuffle<Item>({ size, seed })))).map((x) => x.id);
      for (let k = 1; k <= all.length; k += 1 + rng.int(4)) {
        const a = rng.int(k + 1);
        const first = await segment(all, size, seed, null, k, a);
        assert.equal(first.state.pending.length, k - a);
        const second = await segment(resumeSource(all, first.state), size, seed, first.state, Infinity, Infinity);
        assert.deepEqual([...first.consumed, ...second.all].map((x) => x.id), expected, `n ${n} size ${size} ranks ${ranks} seed ${seed} k ${k} a ${a}`);
        cases++;
      }
    }
  }
  assert.ok(cases > 50, `${cases} cases`);
});

test('exact resume through a chain of interruptions, including snapshots taken while replaying', async () => {
  const rng = new Rng('chain');
  for (let trial = 0; trial < 25; trial++) {
    const ranks = 1 + rng.int(3);
    const all = makeItems(10 + rng.int(30), ranks);
    const size = 1 + rng.int(12);
    const seed = rng.int(1000);
    const expected = (await collect(pipeline(all, shuffle<Item>({ size, seed })))).map((x) => x.id);
    const trained: string[] = [];
    let state: ShuffleState | null = null;
    for (let round = 0; round < 50; round++) {
      const source = state === null ? all : resumeSource(all, state);
      // Short takes make snapshots land inside the replay of pending items.
      const take = 1 + rng.int(Math.max(1, Math.floor(all.length / 3)));
      const ack = rng.int(take + 1);
      const seg = await segment(source, size, seed, state, take, ack);
      trained.push(...seg.consumed.map((x) => x.id));
      state = seg.state;
      if (seg.finished) break;
    }
    // Whatever is still pending at the end is emitted by one last resume.
    const last = await segment(resumeSource(all, state!), size, seed, state, Infinity, Infinity);
    trained.push(...last.all.map((x) => x.id));
    assert.deepEqual(trained, expected, `trial ${trial}`);
  }
});

test('state() is JSON data; state(consumed) does not mutate; ack validates', async () => {
  const all = makeItems(20, 2);
  const sh = shuffle<Item>({ size: 4, seed: 1 });
  const it = pipeline(all, sh)[Symbol.asyncIterator]();
  for (let i = 0; i < 6; i++) await it.next();
  assert.equal(sh.pendingCount, 6);
  const s = sh.state(2);
  assert.equal(s.pending.length, 4);
  assert.equal(sh.pendingCount, 6);
  assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
  assert.equal(s.buffer.length, 4);
  assert.deepEqual(Object.keys(s.received).sort(), ['0', '1']);
  // 4 buffered + 6 emitted = 10 received, alternating ranks: rank 0 got samples 0..4, rank 1 got 0..4.
  assert.equal(s.received[0]!.sample, 4);
  assert.equal(s.received[1]!.sample, 4);
  assert.throws(() => sh.ack(7), InvalidOptionError);
  assert.throws(() => sh.state(7), InvalidOptionError);
  sh.ack(2);
  // ackThrough drops the log up to a position, whatever was dropped downstream in between.
  const third = sh.state().pending[2]!;
  assert.equal(sh.ackThrough({ ...third }), 3);
  assert.equal(sh.pendingCount, 1);
  assert.equal(sh.ackThrough({ ...third }), 0, 'no longer pending');
  sh.ack(1);
  assert.equal(sh.pendingCount, 0);
  await it.return?.();
  assert.throws(() => shuffle({ size: 0, seed: 1 }), /Expected positive integer for options.size but received 0/);
  assert.throws(() => shuffle({ size: 2, seed: NaN }), /options.seed/);
  assert.throws(() => shuffle({ size: 2, seed: 1, restore: { ...s, rng: [1] } }), InvalidOptionError);
  assert.throws(() => shuffle({ size: 2, seed: 1, restore: s }), /Expected at most 2 positions for options.restore.buffer/);
});

test('a replayed item that never comes is skipped: nothing lost, nothing doubled', async () => {
  const all = makeItems(40);
  const size = 6;
  const first = await segment(all, size, 5, null, 10, 7);
  assert.equal(first.state.pending.length, 3);
  // Drop one pending and one buffered item from the replay (their samples went bad since).
  const lostPending = idOf(first.state.pending[1]!);
  const lostBuffered = idOf(first.state.buffer[2]!);
  const source = resumeSource(all, first.state).filter((x) => x.id !== lostPending && x.id !== lostBuffered);
  const second = await segment(source, size, 5, first.state, Infinity, Infinity);
  const ids = [...first.consumed, ...second.all].map((x) => x.id);
  assert.equal(new Set(ids).size, ids.length, 'no duplicates');
  assert.deepEqual(
    [...ids].sort(),
    all.map((x) => x.id).filter((id) => id !== lostPending && id !== lostBuffered).sort(),
  );
  // The pending items that did come are emitted first, in order.
  const pendingIds = first.state.pending.map(idOf).filter((id) => id !== lostPending);
  assert.deepEqual(second.all.slice(0, pendingIds.length).map((x) => x.id), pendingIds);
});

test('without a type argument the item type flows through pipeline() (checked when the tests compile)', async () => {
  const sh = shuffle({ size: 4, seed: 1 });
  // `x` is an Item, not unknown or Positioned: `x.id` would not compile if the shuffle lost the type.
  const ids = (await collect(pipeline(makeItems(6), sh))).map((x) => x.id);
  assert.deepEqual([...ids].sort(), makeItems(6).map((x) => x.id).sort());
  sh.ack(ids.length);
  assert.equal(sh.pendingCount, 0, 'the generic stage keeps its controls');
});
