import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { loader } from '../../../src/train/loader/index.js';
import { pipeline } from '../../../src/core/pipeline.js';
import { AbortError } from '../../../src/core/errors.js';
import { alive, childPids, config, linux, makeShards, quiet } from './fixtures.js';

let urls = '';
let cleanup = () => undefined as void;
before(async () => ({ urls, cleanup } = await makeShards()));
after(() => cleanup());

test('an abort from outside stops the hub and its children and surfaces the signal reason', { skip: !linux }, async () => {
  const reason = new Error('stopped by the test');
  const controller = new AbortController();
  const before = new Set(childPids());
  let seen: number[] = [];
  const p = pipeline(loader({ urls, config, processes: 2, seed: 1, epochs: Infinity }), { reporter: quiet(), signal: controller.signal });
  const err = await (async () => {
    try {
      for await (const _ of p) {
        if (seen.length === 0) {
          seen = childPids().filter((x) => !before.has(x));
          controller.abort(reason);
        }
      }
    } catch (e) {
      return e;
    }
    return null;
  })();
  assert.equal(err, reason);
  assert.equal(seen.length, 2);
  for (const pid of seen) assert.equal(alive(pid), false);
});

test('an abort without a reason surfaces as colorpipe AbortError', async () => {
  const controller = new AbortController();
  const p = pipeline(loader({ urls, config, processes: 1, seed: 1, epochs: Infinity }), { reporter: quiet(), signal: controller.signal });
  let n = 0;
  await assert.rejects(async () => {
    for await (const _ of p) if (++n === 2) controller.abort();
  }, AbortError);
  assert.equal(n, 2, 'no sample after the abort');
});
