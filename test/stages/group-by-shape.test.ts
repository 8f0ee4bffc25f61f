import { test } from 'node:test';
import assert from 'node:assert/strict';
import { settled, until, turns } from '../helpers/wait.js';
import { groupByShape } from '../../src/stages/group-by-shape.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { InvalidOptionError } from '../../src/core/errors.js';

interface Item { id: number; shape: string }
const items = (shapes: string): Item[] => [...shapes].map((shape, id) => ({ id, shape }));
const shapeOf = (x: Item) => x.shape;
const render = (groups: Item[][]) => groups.map((g) => g.map((x) => `${x.shape}${x.id}`).join(' '));

test('groups items of one shape up to size; partial groups flush at the end, oldest first', async () => {
  const out = await collect(pipeline(items('aabab'), groupByShape({ size: 2, shapeOf })));
  assert.deepEqual(render(out), ['a0 a1', 'b2 b4', 'a3']);
});

test('every item comes out exactly once, whatever the mix', async () => {
  const src = items('abcabcaabbccabcaaaab');
  const out = await collect(pipeline(src, groupByShape({ size: 3, shapeOf, maxPending: 4, maxWait: 5 })));
  const ids = out.flat().map((x) => x.id).sort((a, b) => a - b);
  assert.deepEqual(ids, src.map((x) => x.id));
  for (const g of out) {
    assert.ok(g.length >= 1 && g.length <= 3);
    assert.ok(g.every((x) => x.shape === g[0]!.shape));
  }
});

test('maxPending bounds what is held: the oldest group is flushed short', async () => {
  // size 4, at most 3 held: a, b, c open; the 4th item (d) makes 4 held, so 'a' (oldest) goes out alone.
  const out = await collect(pipeline(items('abcd'), groupByShape({ size: 4, shapeOf, maxPending: 3, maxWait: 100 })));
  assert.deepEqual(render(out), ['a0', 'b1', 'c2', 'd3']);
  let held = 0;
  let maxHeld = 0;
  const counting = async function* () {
    for (const x of items('abcdabcdabcdabcd')) {
      held++;
      maxHeld = Math.max(maxHeld, held);
      yield x;
    }
  };
  const p = pipeline(counting(), groupByShape({ size: 4, shapeOf, maxPending: 5, maxWait: 100 }));
  for await (const g of p) held -= g.length;
  assert.ok(maxHeld <= 6, `held ${maxHeld}`);
});

test('maxWait flushes a rare shape that waited too long', async () => {
  const out = await collect(pipeline(items('baaaaaaa'), groupByShape({ size: 4, shapeOf, maxPending: 100, maxWait: 3 })));
  // b0 is flushed once more than 3 items arrived after it (at a3), before the a group fills.
  assert.deepEqual(render(out), ['b0', 'a1 a2 a3 a4', 'a5 a6 a7']);
  // Without the bound it would have waited for the end of the stream.
  const late = await collect(pipeline(items('baaaaaaa'), groupByShape({ size: 4, shapeOf, maxPending: 100, maxWait: 100 })));
  assert.deepEqual(render(late), ['a1 a2 a3 a4', 'b0', 'a5 a6 a7']);
});

test('sizeOf caps a shape\'s group (pixel budget)', async () => {
  const out = await collect(
    pipeline(items('bbbbsss'), groupByShape({ size: 3, shapeOf, sizeOf: (x) => (x.shape === 'b' ? 1.5 : 10) })),
  );
  assert.deepEqual(render(out), ['b0', 'b1', 'b2', 'b3', 's4 s5 s6']);
});

test('bad options throw at once', () => {
  assert.throws(() => groupByShape({ size: 0, shapeOf }), InvalidOptionError);
  assert.throws(() => groupByShape({ size: 2, shapeOf: 'x' as unknown as (x: Item) => string }), InvalidOptionError);
  assert.throws(() => groupByShape({ size: 2, shapeOf, maxPending: -1 }), InvalidOptionError);
});

test('an early break returns the source', async () => {
  let closed = false;
  const src = async function* () {
    try {
      for (let i = 0; ; i++) yield { id: i, shape: 'a' };
    } finally {
      closed = true;
    }
  };
  for await (const g of pipeline(src(), groupByShape({ size: 2, shapeOf }))) {
    assert.equal(g.length, 2);
    break;
  }
  assert.ok(closed);
});

test('eager: an asking consumer gets the oldest group at once instead of waiting for it to fill', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const src = async function* () {
    yield { id: 0, shape: 'a' };
    yield { id: 1, shape: 'b' };
    await gate;
    for (let i = 2; i < 8; i++) yield { id: i, shape: 'a' };
  };
  const it = pipeline(src(), groupByShape({ size: 3, shapeOf, eager: true }))[Symbol.asyncIterator]();
  // The source waits at the gate: each group comes while it is still open, or never.
  const nextGroup = async (): Promise<IteratorResult<Item[]>> => {
    const r = it.next();
    await until(settled(r), 'a group handed over while the source waits');
    return r;
  };
  const first = await nextGroup();
  assert.deepEqual(render([first.value!]), ['a0']);
  const second = await nextGroup();
  assert.deepEqual(render([second.value!]), ['b1']);
  release();
  const rest: Item[][] = [];
  for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value);
  assert.deepEqual(rest.flat().map((x) => x.id), [2, 3, 4, 5, 6, 7]);
  assert.ok(rest.every((g) => g.length <= 3));
});

test('eager: pulls ahead at most maxPending items; full groups go first', async () => {
  let pulled = 0;
  const src = async function* () {
    for (const x of items('abaabbbaaaab')) {
      pulled++;
      yield x;
    }
  };
  const it = pipeline(src(), groupByShape({ size: 2, shapeOf, eager: true, maxPending: 5 }))[Symbol.asyncIterator]();
  await turns();
  assert.equal(pulled, 0, 'nothing runs before the first next()');
  const first = await it.next();
  // The pump refills what the consumer took, up to maxPending (5) held, and then stops: exactly 5 + taken.
  const expected = 5 + first.value!.length;
  await until(() => pulled >= expected, `${expected} pulled`);
  await turns();
  assert.equal(pulled, expected);
  const all = [first.value!];
  for (let r = await it.next(); !r.done; r = await it.next()) all.push(r.value);
  assert.deepEqual(all.flat().map((x) => x.id).sort((a, b) => a - b), items('abaabbbaaaab').map((x) => x.id));
  // Once ahead, the consumer is handed full pairs.
  assert.ok(all.slice(1, -2).every((g) => g.length === 2), render(all).join(' | '));
});

test('eager: an early break stops the pump and returns the source', async () => {
  let closed = false;
  const src = async function* () {
    try {
      for (let i = 0; ; i++) yield { id: i, shape: i % 2 ? 'a' : 'b' };
    } finally {
      closed = true;
    }
  };
  for await (const g of pipeline(src(), groupByShape({ size: 2, shapeOf, eager: true }))) {
    assert.ok(g.length >= 1);
    break;
  }
  assert.ok(closed);
});

test('eager: with nothing full, the largest group goes first; weights bound what is held', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let pulled = 0;
  const src = async function* () {
    pulled++;
    yield { id: 0, shape: 'z' };
    await gate;
    for (const [i, shape] of [...'abbcccab'].entries()) {
      pulled++;
      yield { id: i + 1, shape };
    }
  };
  const it = pipeline(src(), groupByShape({ size: 4, shapeOf, eager: true, maxPending: 100 }))[Symbol.asyncIterator]();
  assert.deepEqual(render([(await it.next()).value!]), ['z0']);
  release();
  await until(() => pulled === 9, 'the pump pulls everything; no group reaches 4');
  const rest: Item[][] = [];
  for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value);
  // b and c hold 3 each (b is older), a holds 2.
  assert.deepEqual(render(rest), ['b2 b3 b8', 'c4 c5 c6', 'a1 a7']);
  // A heavy item counts as much as many light ones: at most maxPending weight is pulled ahead.
  let heavyPulled = 0;
  const heavy = async function* () {
    for (let i = 0; i < 10; i++) {
      heavyPulled++;
      yield { id: i, shape: `s${i}` };
    }
  };
  const it2 = pipeline(heavy(), groupByShape({ size: 2, shapeOf, eager: true, maxPending: 30, weightOf: () => 10 }))[Symbol.asyncIterator]();
  await it2.next();
  // 3 items of weight 10 fill maxPending 30; the consumer took one, so the pump pulled one more, then stopped.
  await until(() => heavyPulled >= 4, '4 heavy items pulled');
  await turns();
  assert.equal(heavyPulled, 4);
  await it2.return!();
});
