import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { loader, type LoaderSample } from '../../../src/train/loader/index.js';
import { pipeline, collect } from '../../../src/core/pipeline.js';
import { ColorpipeError } from '../../../src/core/errors.js';
import { makeConfig } from '../../../src/config.js';
import { config, makeShards, quiet } from './fixtures.js';
import { Reporter } from '../../../src/core/errors.js';
import { animatedGif, multiPageTiff, png, writeTar } from '../../helpers/images.js';
import { tmpDir } from '../../helpers/tar.js';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';

let urls = '';
let cleanup = () => undefined as void;
before(async () => ({ urls, cleanup } = await makeShards()));
after(() => cleanup());

test('the merge takes the ranks in turn by raw sample: (epoch, shard place, sample index, rank), drops leave their turn empty', async () => {
  for (const processes of [0, 2]) {
    const out = await collect(pipeline(loader({ urls, config, processes, world: 2, seed: 7, epochs: 2 }), { reporter: quiet() }));
    assert.equal(out.length, 46);
    for (const s of out) assert.equal(s.position.shardIndex % 2, s.rank);
    const key = (s: LoaderSample) => [s.position.epoch, Math.floor(s.position.shardIndex / 2), s.position.sample, s.rank];
    for (let i = 1; i < out.length; i++) {
      const [x, y] = [key(out[i - 1]!), key(out[i]!)];
      const cmp = x.findIndex((v, j) => v !== y[j]);
      assert.ok(cmp >= 0 && x[cmp]! < y[cmp]!, `order at ${i}: ${x} then ${y}`);
    }
    assert.deepEqual(out.slice(0, 2).map((s) => s.rank), [0, 1]);
  }
});

test('an endless run whose epoch yields nothing ends with ERR_NO_SAMPLES instead of spinning', async () => {
  const picky = makeConfig({ model: { inputSize: 16 }, filter: { minMeanChroma: 1000 } });
  const err = await collect(pipeline(loader({ urls, config: picky, processes: 0, world: 2, seed: 1, epochs: Infinity }), { reporter: quiet() })).catch((e: unknown) => e);
  assert.ok(err instanceof ColorpipeError, String(err));
  assert.equal(err.code, 'ERR_NO_SAMPLES');
});

test('a finite run whose epochs yield nothing just ends', async () => {
  const picky = makeConfig({ model: { inputSize: 16 }, filter: { minMeanChroma: 1000 } });
  const p = pipeline(loader({ urls, config: picky, processes: 0, world: 2, seed: 1, epochs: 1 }), { reporter: quiet() });
  assert.deepEqual(await collect(p), []);
});

test('a multi-frame image trains on its first frame and is noted once per file over epochs, in-process and via the hub', async (t) => {
  const dir = tmpDir(t);
  await writeTar(join(dir, 'anim-0.tar'), [
    { name: 'anim.gif', data: await animatedGif(24, 20, 5) },
    { name: 'still.png', data: await png(24, 20) },
    { name: 'pages.tif', data: await multiPageTiff(24, 20, 3) },
  ]);
  const url = join(dir, 'anim-0.tar');
  for (const processes of [0, 2]) {
    const lines: string[] = [];
    const reporter = new Reporter({ log: (l) => lines.push(l) });
    const out = await collect(pipeline(loader({ urls: url, config, processes, seed: 3, epochs: 3 }), { reporter }));
    assert.deepEqual(out.map((s) => s.key), ['anim', 'still', 'pages', 'anim', 'still', 'pages', 'anim', 'still', 'pages'], `processes ${processes}`);
    assert.equal(reporter.total, 0);
    assert.deepEqual(lines, [
      `colorpipe: note: ${url}#anim (decode): animated GIF with 5 frames: only the first is used`,
      `colorpipe: note: ${url}#pages (decode): multi-page TIFF with 3 pages: only the first is used`,
    ], `processes ${processes}`);
  }
});

test('each bad input is reported once per run over epochs and processes: a corrupt image, a 0-byte shard, labels outside the head', async (t) => {
  const dir = tmpDir(t);
  const empty = join(dir, 'empty.tar');
  writeFileSync(empty, '');
  // The fixture's labels are each sample's index in its shard (0..6): 4, 5 and 6 lie outside a 4-class head.
  const fourClasses = makeConfig({ model: { inputSize: 16, numClasses: 4 } });
  const outside = ['s0-4', 's0-5', 's0-6', 's2-4', 's2-5', 's3-4'];
  for (const processes of [0, 2]) {
    const lines: string[] = [];
    const reporter = new Reporter({ log: (l) => lines.push(l) });
    const out = await collect(pipeline(loader({ urls: [urls, empty], config: fourClasses, processes, world: 3, seed: 5, epochs: 3 }), { reporter }));
    assert.equal(out.length, 3 * 23, `processes ${processes}`);
    for (const s of out) assert.equal(s.cls, outside.includes(s.key) ? undefined : Number(s.key.split('-')[1]), `${s.key}: trained without its label`);
    const keys = reporter.records.map((r) => `${r.stage} ${r.key.slice(r.key.lastIndexOf('/') + 1)}`).sort();
    assert.deepEqual(keys, [
      'decode train-3.tar#s3-2',
      ...outside.map((k) => `labels train-${k[1]}.tar#${k}`),
      'shards empty.tar',
    ].sort(), `processes ${processes}`);
    assert.equal(lines.length, keys.length, 'one line each');
    assert.ok(lines.includes(`colorpipe: skipped ${empty} (shards): empty file (0 bytes): not a tar`), lines.join('\n'));
    assert.ok(lines.some((l) => l.endsWith("#s0-6 (labels): class label 6 outside the model's 4 classes (0..3): trained without a label")), lines.join('\n'));
  }
});
