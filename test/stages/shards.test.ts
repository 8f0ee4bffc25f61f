import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, unlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import {
  shards,
  readSamplesAt,
  type ShardSample,
} from '../../src/stages/shards.js';
import { pipeline, collect, type StageContext } from '../../src/core/pipeline.js';
import { AbortError, BadInputError, InvalidOptionError, Reporter } from '../../src/core/errors.js';
import { Rng, shuffleInPlace } from '../../src/core/rng.js';
import type { ShardPosition } from '../../src/types.js';
import { FIXTURES, tmpDir, writeTar, writeTextShards, openFds, settle } from '../helpers/tar.js';

const quiet = () => new Reporter({ log: null });
const read = async (opts: Parameters<typeof shards>[0], reporter = quiet()) => {
  const p = pipeline(shards(opts), { reporter });
  return { samples: await collect(p), reporter };
};
const text = (s: ShardSample) => s.image!.toString();

test('factory validation throws at once', () => {
  assert.throws(() => shards({ urls: 'x.tar', rank: 2, world: 2 }), /options.rank/);
  assert.throws(() => shards({ urls: 'x.tar', world: 0 }), /options.world/);
  assert.throws(() => shards({ urls: 'x.tar', epochs: 0 }), /options.epochs/);
  assert.throws(() => shards({ urls: 'x.tar', seed: NaN }), /options.seed/);
  assert.throws(() => shards({ urls: 'x.tar', epoch: -1 }), /options.epoch/);
  const pos = { epoch: 3, shardIndex: 0, shard: 'x.tar', sample: 0 };
  assert.throws(() => shards({ urls: 'x.tar', resumeAfter: pos }), /resumeAfter.epoch/);
  assert.throws(() => shards({ urls: 'x.tar', world: 2, rank: 0, resumeAfter: { ...pos, epoch: 0, shardIndex: 1 } }), /rank 0 of 2/);
  assert.doesNotThrow(() => shards({ urls: 'x.tar', epochs: Infinity }));
});

test('the fixture shards written by writeShards read back: 24 images, classes from their folders', async () => {
  const classes = JSON.parse(readFileSync(path.join(FIXTURES, 'shards/classes.json'), 'utf8')) as Record<string, number>;
  const { samples, reporter } = await read({ urls: path.join(FIXTURES, 'shards/data-{000000..000001}.tar') });
  assert.equal(reporter.total, 0);
  assert.equal(samples.length, 24);
  for (const s of samples) {
    const meta = s.meta as { path: string; width: number; height: number; format: string };
    const cls = meta.path.slice(0, meta.path.indexOf('/'));
    assert.equal(s.cls, classes[cls], s.key);
    assert.equal(s.imageExt, 'jpg');
    assert.deepEqual(s.image, readFileSync(path.join(FIXTURES, 'images', meta.path)));
    assert.equal(s.key, meta.path.replace(/\.jpg$/, ''));
    assert.equal(s.rank, 0);
    assert.deepEqual(Object.keys(s.fields).sort(), ['cls', 'jpg', 'json']);
    assert.equal(Math.min(meta.width, meta.height), 64);
  }
  // No seed: shards in the given order, samples in tar order, positions counting from 0 in each shard.
  assert.deepEqual(
    samples.map((s) => [s.position.shardIndex, s.position.sample]),
    samples.map((_, i) => [Math.floor(i / 12), i % 12]),
  );
});

test('per-epoch seeded shard permutation, rank/world splitting, positions', async (t) => {
  const dir = tmpDir(t);
  const files = await writeTextShards(dir, 7, 3);
  const urls = path.join(dir, '*.tar');
  const { samples } = await read({ urls, seed: 11, epochs: 3 });
  assert.equal(samples.length, 7 * 3 * 3);
  for (let e = 0; e < 3; e++) {
    const order = shuffleInPlace(files.slice(), new Rng(11).fork('shards', e));
    const got = samples.filter((s) => s.position.epoch === e);
    assert.deepEqual(
      got.map((s) => [s.position.shardIndex, s.position.shard, s.position.sample]),
      order.flatMap((f, i) => [0, 1, 2].map((j) => [i, f, j])),
    );
    for (const s of got) assert.equal(s.url, s.position.shard);
  }
  const epochOrders = [0, 1, 2].map((e) => samples.filter((s) => s.position.epoch === e).map(text).join());
  assert.equal(new Set(epochOrders).size, 3, 'each epoch has its own order');
  // Same seed, same order; another seed, another order.
  assert.deepEqual((await read({ urls, seed: 11, epochs: 3 })).samples.map(text), samples.map(text));
  assert.notDeepEqual((await read({ urls, seed: 12 })).samples.map(text), samples.slice(0, 21).map(text));
  // `epoch` starts the permutations there.
  assert.deepEqual((await read({ urls, seed: 11, epoch: 2 })).samples.map(text), samples.slice(42).map(text));

  // Ranks read disjoint shards that together make the epoch: permuted index i goes to rank i % world.
  const world = 3;
  const parts = await Promise.all([0, 1, 2].map((rank) => read({ urls, seed: 11, epochs: 2, rank, world })));
  for (let rank = 0; rank < world; rank++) {
    for (const s of parts[rank]!.samples) {
      assert.equal(s.rank, rank);
      assert.equal(s.position.shardIndex % world, rank);
    }
  }
  const union = parts.flatMap((p) => p.samples.map((s) => `${s.position.epoch}|${text(s)}`)).sort();
  assert.deepEqual(union, samples.filter((s) => s.position.epoch < 2).map((s) => `${s.position.epoch}|${text(s)}`).sort());
  // More ranks than shards is a configuration error, surfacing at the first next().
  await assert.rejects(read({ urls, rank: 7, world: 8 }), InvalidOptionError);
});

test('resumeAfter continues right after any position, across shards and epochs', async (t) => {
  const dir = tmpDir(t);
  await writeTextShards(dir, 4, 3);
  const urls = path.join(dir, '*.tar');
  for (const [rank, world] of [
    [0, 1],
    [1, 2],
  ] as const) {
    const all = (await read({ urls, seed: 3, epochs: 2, rank, world })).samples;
    for (let k = 0; k < all.length; k++) {
      const { samples, reporter } = await read({ urls, seed: 3, epochs: 2, rank, world, resumeAfter: all[k]!.position });
      assert.deepEqual(samples.map((s) => s.position), all.slice(k + 1).map((s) => s.position), `rank ${rank} after ${k}`);
      assert.deepEqual(samples.map(text), all.slice(k + 1).map(text));
      assert.equal(reporter.total, 0);
    }
  }
});

test('resume skips earlier shards unopened and earlier samples undecoded', async (t) => {
  const dir = tmpDir(t);
  // Shard a: samples 0..2 have an unparseable .json, which decoding would report.
  const a = await writeTar(path.join(dir, 'a.tar'), [
    ['k0.jpg', 'a0'],
    ['k0.json', '{bad'],
    ['k1.jpg', 'a1'],
    ['k1.json', '{bad'],
    ['k2.jpg', 'a2'],
    ['k2.json', '{"ok":1}'],
    ['k3.jpg', 'a3'],
  ]);
  const b = await writeTar(path.join(dir, 'b.tar'), [['k0.jpg', 'b0'], ['k0.cls', 'NaN'], ['k1.jpg', 'b1']]);
  const c = await writeTar(path.join(dir, 'c.tar'), [['k0.jpg', 'c0']]);
  const { samples, reporter } = await read({ urls: [b, a, c], resumeAfter: { epoch: 0, shardIndex: 1, shard: a, sample: 1 } });
  assert.deepEqual(samples.map(text), ['a2', 'a3', 'c0']);
  assert.deepEqual(samples[0]!.meta, { ok: 1 });
  // Nothing reported: b (with its bad .cls) was not opened, k0 and k1 of a were not parsed.
  assert.deepEqual(reporter.records, []);
  // Shard b deleted: still nothing reported, it is never opened.
  unlinkSync(b);
  const again = await read({ urls: [b, a, c], resumeAfter: { epoch: 0, shardIndex: 1, shard: a, sample: 2 } });
  assert.deepEqual(again.samples.map(text), ['a3', 'c0']);
  assert.equal(again.reporter.total, 0);
  // A position that does not fit the list (another order) fails at the first next().
  await assert.rejects(read({ urls: [a, c], resumeAfter: { epoch: 0, shardIndex: 1, shard: a, sample: 0 } }), /shard list or the seed changed/);
});

test('sample assembly: image choice, skipped members, cls and json decoding, duplicates', async (t) => {
  const dir = tmpDir(t);
  const f = await writeTar(path.join(dir, 'm.tar'), [
    { name: 'd/', type: 'directory' },
    ['__meta__.txt', 'ignored'],
    ['d/.hidden.jpg', 'ignored'],
    ['d/x.seg.png', 'segmentation'],
    ['d/x.JPG', 'photo'],
    ['d/x.cls', ' 7\n'],
    ['d/x.json', '{"a":[1,2]}'],
    ['d/x.txt', 'caption'],
    ['y.seg.png', 'only-seg'],
    ['y.jpg.bak', 'not-image'],
    ['z.webp', 'first'],
    ['z.webp', 'second'],
    ['noext', 'ignored'],
  ]);
  const { samples, reporter } = await read({ urls: f });
  assert.deepEqual(
    samples.map((s) => [s.key, s.imageExt, text(s)]),
    [
      ['d/x', 'jpg', 'photo'],
      ['y', 'seg.png', 'only-seg'],
      ['z', 'webp', 'first'],
    ],
  );
  const x = samples[0]!;
  assert.equal(x.cls, 7);
  assert.deepEqual(x.meta, { a: [1, 2] });
  assert.deepEqual(Object.keys(x.fields).sort(), ['cls', 'jpg', 'json', 'seg.png', 'txt']);
  assert.equal(x.fields['txt']!.toString(), 'caption');
  assert.equal(samples[1]!.cls, undefined);
  assert.deepEqual(samples.map((s) => s.position.sample), [0, 1, 2]);
  assert.deepEqual(reporter.records.map((r) => r.reason), ['duplicate member z.webp ignored']);
});

test('bad shards never stop the stream: truncated tar, missing shard, corrupt header, mixed bad members', async (t) => {
  const dir = tmpDir(t);
  const garbage = path.join(dir, 'garbage.tar');
  writeFileSync(garbage, Buffer.alloc(4096, 0x41));
  const urls = [
    path.join(FIXTURES, 'shards/truncated.tar'),
    path.join(dir, 'missing.tar'),
    garbage,
    path.join(FIXTURES, 'shards/mixed.tar'),
    path.join(FIXTURES, 'shards/data-000001.tar'),
  ];
  const lines: string[] = [];
  const reporter = new Reporter({ log: (l) => lines.push(l) });
  const { samples } = await read({ urls }, reporter);
  const byShard = (name: string) => samples.filter((s) => s.url.endsWith(name));
  // truncated.tar is data-000000.tar cut inside its 5th sample: the 4 whole samples come out.
  assert.equal(byShard('truncated.tar').length, 4);
  const fromMixed = byShard('mixed.tar').map((s) => s.key);
  assert.deepEqual(fromMixed, ['good0', 'bomb', 'cmyk', 'corrupt', 'deep16', 'empty', 'gray', 'notimage', 'rgba', 'rot6', 'tiny', 'truncated', 'good1']);
  // Bad image bytes are decode's business: the shards stage passes them on, including a 0-byte member.
  assert.equal(byShard('mixed.tar').find((s) => s.key === 'empty')!.image!.length, 0);
  const good1 = byShard('mixed.tar').at(-1)!;
  assert.equal(good1.cls, 2);
  assert.deepEqual(good1.meta, { path: 'good1.jpg' });
  assert.equal(byShard('data-000001.tar').length, 12, 'the stream went on after the bad shards');
  const reasons = reporter.records.map((r) => `${path.basename(r.key)}: ${r.reason.split(':')[0]}`);
  assert.deepEqual(reasons, [
    'truncated.tar: truncated tar after 4 samples',
    'missing.tar: cannot read shard',
    'garbage.tar: truncated tar after 0 samples',
    'mixed.tar#noimage: no image member',
    'mixed.tar#badcls: unreadable .cls',
    'mixed.tar#badjson: unreadable .json',
  ]);
  assert.equal(lines.length, 6);
  assert.match(lines[0]!, /^colorpipe: skipped .*truncated\.tar \(shards\): truncated tar after 4 samples: /);
  assert.deepEqual(reporter.summary(), { total: 6, byStage: { shards: 6 } });
});

test("onError 'fail' makes the first bad input fatal", async () => {
  await assert.rejects(
    read({ urls: path.join(FIXTURES, 'shards/mixed.tar') }, new Reporter({ onError: 'fail', log: null })),
    (err: unknown) => err instanceof BadInputError && /noimage/.test(err.key) && err.reason === 'no image member',
  );
});

test('an early break and an abort close the tar extractor and the file: no descriptor left open', async (t) => {
  const dir = tmpDir(t);
  const urls = await writeTextShards(dir, 2, 50);
  await settle();
  const before = openFds();
  let n = 0;
  for await (const _ of pipeline(shards({ urls }), { reporter: quiet() })) if (++n === 3) break;
  await settle();
  assert.equal(openFds(), before, 'after break');

  const p = pipeline(shards({ urls }), { reporter: quiet() });
  const got: ShardSample[] = [];
  await assert.rejects(
    (async () => {
      for await (const s of p) {
        got.push(s);
        if (got.length === 60) p.abort();
      }
    })(),
    (err: unknown) => err instanceof AbortError,
  );
  assert.equal(got.length, 60);
  await settle();
  assert.equal(openFds(), before, 'after abort');

  // The source alone, driven by hand: an abort while it waits inside a shard rejects with AbortError.
  const controller = new AbortController();
  const ctx: StageContext = { signal: controller.signal, reporter: quiet() };
  const it = shards({ urls })(ctx)[Symbol.asyncIterator]();
  await it.next();
  controller.abort();
  await assert.rejects(it.next(), (err: unknown) => (err as Error).name === 'AbortError');
  await settle();
  assert.equal(openFds(), before, 'after abort of the bare source');
});

test('epochs: Infinity runs until stopped, and a rank whose shards are all unreadable fails instead of spinning', async (t) => {
  const dir = tmpDir(t);
  const urls = await writeTextShards(dir, 2, 2);
  let n = 0;
  for await (const s of pipeline(shards({ urls, seed: 1, epochs: Infinity }), { reporter: quiet() })) {
    if (++n === 25) {
      assert.equal(s.position.epoch, 6);
      break;
    }
  }
  const bad = path.join(dir, 'bad.tar');
  copyFileSync(urls[0]!, bad);
  writeFileSync(bad, Buffer.alloc(1024, 0x41));
  await assert.rejects(read({ urls: bad, epochs: Infinity }), /No readable sample/);
});

test('readSamplesAt yields exactly the requested samples in the requested order, reading each shard once', async (t) => {
  const dir = tmpDir(t);
  await writeTextShards(dir, 4, 5);
  const urls = path.join(dir, '*.tar');
  const all = (await read({ urls, seed: 9, epochs: 2, world: 2, rank: 1 })).samples;
  const rng = new Rng('pick');
  const picked = shuffleInPlace(all.slice(), rng).slice(0, 15);
  const reporter = quiet();
  const ctx: StageContext = { signal: new AbortController().signal, reporter };
  const positions: ShardPosition[] = picked.map((s) => s.position);
  const got = await collect(readSamplesAt(positions, ctx, { world: 2 }));
  assert.deepEqual(got.map((s) => s.position), positions);
  assert.deepEqual(got.map(text), picked.map(text));
  assert.deepEqual(got.map((s) => s.cls), picked.map((s) => s.cls));
  for (const s of got) assert.equal(s.rank, 1);
  assert.equal(reporter.total, 0);

  // Unrequested samples are not decoded (a bad .json there is never parsed); a missing one is reported.
  const tarFile = await writeTar(path.join(dir, 't.tar'), [['a.jpg', 'A'], ['a.json', '{bad'], ['b.jpg', 'B'], ['c.jpg', 'C']]);
  const pos = (sample: number): ShardPosition => ({ epoch: 0, shardIndex: 0, shard: tarFile, sample });
  const r2 = quiet();
  const got2 = await collect(readSamplesAt([pos(2), pos(1), pos(9), pos(2)], { signal: new AbortController().signal, reporter: r2 }));
  assert.deepEqual(got2.map(text), ['C', 'B', 'C']);
  assert.deepEqual(r2.records.map((r) => r.reason), ['sample to resume from not found in shard']);
});

test('a 0-byte shard is reported as bad (not read as an empty archive); the others are read', { timeout: 10_000 }, async (t) => {
  const dir = tmpDir(t);
  const files = await writeTextShards(dir, 1, 2);
  const empty = path.join(dir, 'empty.tar');
  writeFileSync(empty, '');
  const { samples, reporter } = await read({ urls: [empty, ...files] });
  assert.equal(samples.length, 2);
  assert.deepEqual(reporter.records.map((r) => [r.key, r.reason]), [[empty, 'empty file (0 bytes): not a tar']]);
});
