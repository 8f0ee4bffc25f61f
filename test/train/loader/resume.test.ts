/**
 * Resume through the real path: the shuffle stage's saved state -> loaderResumeFrom -> loader({ resume }) and
 * shuffle({ restore }), as trainGraph does at --resume; the continuation must equal the uninterrupted run.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { loader, type LoaderSample } from '../../../src/train/loader/index.js';
import { loaderResumeFrom, checkResume, resumeAfter } from '../../../src/train/loader/resume.js';
import { shuffle, type ShuffleState } from '../../../src/stages/shuffle.js';
import { pipeline, collect } from '../../../src/core/pipeline.js';
import { InvalidOptionError } from '../../../src/core/errors.js';
import { config, makeShards, quiet } from './fixtures.js';

let urls = '';
let cleanup = () => undefined as void;
before(async () => ({ urls, cleanup } = await makeShards()));
after(() => cleanup());

const p = (epoch: number, shardIndex: number, sample: number) => ({ epoch, shardIndex, shard: `t${shardIndex}.tar`, sample });

test('loaderResumeFrom: the newest epoch received, the ranks that reached it, pending then buffer as replay', () => {
  const state: ShuffleState = {
    rng: [1, 2, 3, 4],
    buffer: [p(1, 0, 0), p(0, 1, 4)],
    pending: [p(0, 0, 9)],
    received: { 0: p(1, 0, 0), 1: p(0, 1, 4) },
  };
  assert.deepEqual(loaderResumeFrom(state), { epoch: 1, after: { 0: p(1, 0, 0) }, replay: [p(0, 0, 9), p(1, 0, 0), p(0, 1, 4)] });
  assert.deepEqual(loaderResumeFrom({ rng: [1, 2, 3, 4], buffer: [], pending: [], received: {} }), { epoch: 0, after: {}, replay: [] });
});

test('shuffle state -> loaderResumeFrom continues exactly where the uninterrupted run would (0 and 2 processes)', async () => {
  const run = (processes: number, restore: ShuffleState | null = null) => {
    const sh = shuffle<LoaderSample>({ size: 4, seed: 3, restore });
    const resume = restore ? loaderResumeFrom(restore) : null;
    return { sh, p: pipeline(loader({ urls, config, processes, world: 2, seed: 5, epochs: 2, resume }), sh, { reporter: quiet() }) };
  };
  const full = await collect(run(0).p);
  assert.equal(full.length, 46);
  // Stop after k emitted samples, the last `unacked` of them not yet trained on (a batch in flight): inside
  // epoch 0, at the epoch's end, in epoch 1 where the buffer mixes both.
  for (const [k, unacked, processes] of [[1, 1, 0], [9, 2, 2], [21, 0, 0], [30, 3, 2]] as const) {
    const first = run(0);
    const taken: LoaderSample[] = [];
    let state: ShuffleState | null = null;
    for await (const s of first.p) {
      taken.push(s);
      if (taken.length === k) {
        first.sh.ack(k - unacked);
        state = JSON.parse(JSON.stringify(first.sh.state())) as ShuffleState;
        break;
      }
    }
    const rest = await collect(run(processes, state).p);
    assert.deepEqual(rest.slice(0, unacked).map((s) => s.key), taken.slice(k - unacked).map((s) => s.key), `the batch in flight at ${k} comes again`);
    assert.ok(rest.slice(0, unacked).every((s) => s.replayed === true));
    const got = [...taken.slice(0, k - unacked), ...rest];
    assert.deepEqual(got.map((s) => `${s.key}@${s.position.epoch}`), full.map((s) => `${s.key}@${s.position.epoch}`), `continuation at ${k} with ${processes} processes`);
    for (let i = 0; i < full.length; i++) assert.deepEqual(got[i]!.ab, full[i]!.ab, `same crop at ${i}`);
  }
});

test('resume states are checked: epoch range, after ranks and epochs, replay type', () => {
  assert.throws(() => checkResume({ epoch: 3, after: {} }, 0, 2), /Expected integer in \[0, 1\] for options.resume.epoch but received 3/);
  assert.throws(() => checkResume({ epoch: 0, after: null as never }, 0, 1), /Expected object for options.resume.after but received null/);
  assert.throws(() => checkResume({ epoch: 0, after: {}, replay: 'x' as never }, 0, 1), /Expected array for options.resume.replay/);
  assert.doesNotThrow(() => checkResume({ epoch: 5, after: {} }, 0, Infinity));
  assert.throws(() => resumeAfter({ epoch: 0, after: { 2: p(0, 0, 0) } }, 2), /Expected ranks in \[0, 1\] for options.resume.after but received "2"/);
  assert.throws(() => resumeAfter({ epoch: 1, after: { 0: p(0, 0, 0) } }, 2), InvalidOptionError);
  assert.deepEqual(resumeAfter({ epoch: 0, after: { 1: p(0, 1, 2), 0: null } }, 2), { 0: null, 1: p(0, 1, 2) });
  assert.deepEqual(resumeAfter(null, 2), {});
});
