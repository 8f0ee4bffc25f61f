import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeConfig } from '../../src/config.js';
import { dataShare, dataState } from '../../src/train/ranks.js';
import type { ShuffleState } from '../../src/stages/shuffle.js';

const config = makeConfig({ name: 't', model: { inputSize: 32, width: 0.125, numClasses: 0 } });
const urls = Array.from({ length: 6 }, (_, i) => `s${i}.tar`);
const state = (tag: number): ShuffleState => ({ rng: [tag, 0, 0, 0], buffer: [], pending: [], received: {} } as unknown as ShuffleState);

test('one rank: the loader as it always was (all streams, the config\'s seed)', () => {
  const s = dataShare({ urls, processes: 4, rank: 0, ranks: 1, config, data: null, runDir: 'r' });
  assert.deepEqual([s.world, s.streams, s.seed, s.restore], [4, undefined, config.train.seed, null]);
});

test('several ranks: disjoint streams of one world, a seed each; the streams per rank are capped by the shards', () => {
  const shares = [0, 1, 2].map((rank) => dataShare({ urls, processes: 4, rank, ranks: 3, config, data: null, runDir: 'r' }));
  assert.deepEqual(shares.map((s) => s.world), [6, 6, 6]);
  assert.deepEqual(shares.map((s) => s.streams), [[0, 3], [1, 4], [2, 5]]);
  assert.deepEqual(new Set(shares.map((s) => s.seed)).size, 3);
  assert.throws(() => dataShare({ urls: urls.slice(0, 2), processes: 1, rank: 0, ranks: 3, config, data: null, runDir: 'r' }), /3 ranks need at least 3 shards/);
});

test('a checkpoint holds every rank\'s state and gives each its own back; another number of ranks is refused', () => {
  const saved = JSON.parse(JSON.stringify(dataState(6, [state(1), state(2)]))) as unknown;
  const s1 = dataShare({ urls, processes: 9, rank: 1, ranks: 2, config, data: saved, runDir: 'runs/x' });
  assert.equal(s1.world, 6, 'the world of the first run, whatever the processes now');
  assert.deepEqual(s1.restore, state(2));
  assert.throws(() => dataShare({ urls, processes: 1, rank: 0, ranks: 3, config, data: saved, runDir: 'runs/x' }), /runs\/x was trained on 2 ranks, this run has 3/);
  const single = JSON.parse(JSON.stringify(dataState(4, [state(7)]))) as unknown;
  assert.deepEqual(single, { world: 4, shuffle: state(7) }, 'one rank\'s state is the format checkpoints always had');
  assert.throws(() => dataShare({ urls, processes: 1, rank: 0, ranks: 2, config, data: single, runDir: 'runs/y' }), /trained on 1 rank, this run has 2/);
});
