import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rankFrames, mergeBefore, replay, frameOf, type LoaderJob } from '../../../src/train/loader/rank-stream.js';
import type { DropFrame, Frame } from '../../../src/train/loader/frames.js';
import { readSamplesAt } from '../../../src/stages/shards.js';
import { expandShardSpec } from '../../../src/webdataset/spec.js';
import { decodeSettings } from '../../../src/stages/decode.js';
import { colourFilter } from '../../../src/stages/filter.js';
import type { StageContext } from '../../../src/core/pipeline.js';
import { config, makeShards, quiet } from './fixtures.js';
import { animatedGif } from '../../helpers/images.js';

let urls = '';
let cleanup = () => undefined as void;
before(async () => ({ urls, cleanup } = await makeShards()));
after(() => cleanup());

const ctx = (): StageContext => ({ signal: new AbortController().signal, reporter: quiet() });

async function job(over: Partial<LoaderJob> = {}): Promise<LoaderJob> {
  const { concurrency: _c, ...decode } = decodeSettings({
    mode: 'train', resize: config.augment.resize, crop: config.augment.crop, flip: true, seed: 7, minSide: config.filter.minSide,
  });
  return {
    urls: await expandShardSpec(urls), world: 2, ranks: [0, 1], seed: 7, startEpoch: 0, epochs: 1, after: {},
    decode, filter: colourFilter(config.filter), concurrency: 3, ...over,
  };
}

const pos = (shardIndex: number, sample: number) => ({ epoch: 0, shardIndex, shard: 's', sample });

test('mergeBefore orders by (shard place in the rank list, sample index, rank)', () => {
  const w = 2;
  assert.equal(mergeBefore({ rank: 1, position: pos(1, 5) }, { rank: 0, position: pos(2, 0) }, w), true, 'place 0 before place 1');
  assert.equal(mergeBefore({ rank: 0, position: pos(2, 0) }, { rank: 1, position: pos(1, 5) }, w), false);
  assert.equal(mergeBefore({ rank: 1, position: pos(1, 2) }, { rank: 0, position: pos(0, 3) }, w), true, 'same place: lower sample first');
  assert.equal(mergeBefore({ rank: 0, position: pos(0, 3) }, { rank: 1, position: pos(1, 3) }, w), true, 'same place and sample: lower rank');
  assert.equal(mergeBefore({ rank: 1, position: pos(1, 3) }, { rank: 0, position: pos(0, 3) }, w), false);
});

test('rankFrames: every raw sample becomes one sample or drop frame, in merge order, with end and done frames', async () => {
  const frames: Frame[] = [];
  for await (const f of rankFrames(await job(), ctx())) frames.push(f);
  assert.deepEqual(frames.at(-1), { t: 'done' });
  const ends = frames.filter((f) => f.t === 'end');
  assert.deepEqual(ends.map((f) => f.t === 'end' && f.rank).sort(), [0, 1]);
  const raw = frames.filter((f): f is Frame & { t: 'sample' | 'drop' } => f.t === 'sample' || f.t === 'drop');
  assert.equal(raw.length, 25, 'one frame per raw sample');
  const drops = raw.filter((f): f is DropFrame => f.t === 'drop');
  assert.deepEqual(drops.map((d) => [d.stage, d.key.split('#').at(-1), d.stage === 'filter' ? d.reason : '']).sort(), [['decode', 's3-2', ''], ['filter', 's2-1', 'grayscale']]);
  for (let i = 1; i < raw.length; i++) assert.ok(mergeBefore(raw[i - 1]!, raw[i]!, 2), `merge order at ${i}`);
  for (const f of raw) assert.equal(f.position.shardIndex % 2, f.rank);
});

test('one rank alone gives the same frames as in the two-rank stream (what a child hosting it sends)', async () => {
  const both: Frame[] = [];
  for await (const f of rankFrames(await job(), ctx())) if ((f.t === 'sample' || f.t === 'drop') && f.rank === 1) both.push(f);
  const alone: Frame[] = [];
  for await (const f of rankFrames(await job({ ranks: [1] }), ctx())) if (f.t === 'sample' || f.t === 'drop') alone.push(f);
  assert.deepEqual(alone, both);
});

test('replay yields the positions in the given order, same bytes as frameOf, marked replayed; drops are reported', async () => {
  const j = await job();
  const all: Frame[] = [];
  for await (const f of rankFrames(j, ctx())) all.push(f);
  const kept = all.filter((f): f is Frame & { t: 'sample' } => f.t === 'sample');
  const dropped = all.find((f): f is DropFrame => f.t === 'drop')!;
  const picks = [kept[5]!, dropped, kept[0]!, kept[9]!];
  const drops: DropFrame[] = [];
  const seen: string[] = [];
  const got = [];
  for await (const s of replay(picks.map((f) => f.position), j, ctx(), (d) => drops.push(d), (f) => seen.push(f.key))) got.push(s);
  assert.deepEqual(got.map((s) => s.key), [kept[5]!.key, kept[0]!.key, kept[9]!.key]);
  assert.deepEqual(seen, got.map((s) => s.key), 'each kept frame goes to onSample (for its note)');
  assert.ok(got.every((s) => s.replayed === true));
  assert.deepEqual(drops.map((d) => d.key), [dropped.key]);
  // The crop is a function of the position: the replayed sample is the one the stream produced.
  const [again] = await (async () => {
    const out: Frame[] = [];
    for await (const s of readSamplesAt([kept[5]!.position], ctx(), { world: 2 })) out.push(await frameOf(s, s.rank, j.decode, j.filter));
    return out;
  })();
  assert.deepEqual(again, kept[5]);
});

test('frameOf carries the note of a multi-frame image, named as reports name it; a single frame has none', async () => {
  const j = await job();
  const base = { url: 'x.tar', fields: {}, position: pos(0, 0), rank: 0 };
  const f = await frameOf({ ...base, key: 'anim', image: await animatedGif(24, 20, 4) }, 0, j.decode, j.filter);
  assert.equal(f.t, 'sample');
  assert.deepEqual(f.t === 'sample' && f.note, { key: 'x.tar#anim', reason: 'animated GIF with 4 frames: only the first is used' });
  const g = await frameOf({ ...base, key: 'still', image: await animatedGif(24, 20, 1) }, 0, j.decode, j.filter);
  assert.equal(g.t === 'sample' && g.note, undefined);
});
