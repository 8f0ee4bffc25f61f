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

/**
 * Pulls `p` (an endless loader: epochs Infinity) until it throws, calling `onSample` with each sample's count;
 * fails after `limit` samples instead of spinning on where an abort was ignored.
 */
async function untilThrown(p: AsyncIterable<unknown>, onSample: (n: number) => void, limit = 100): Promise<{ n: number; err: unknown }> {
  let n = 0;
  try {
    for await (const _ of p) {
      onSample(++n);
      if (n === limit) break;
    }
  } catch (err) {
    return { n, err };
  }
  assert.fail(n === limit ? `${limit} samples and still running: the abort was ignored` : `the endless loader ended after ${n} samples without an error`);
}

test('an abort from outside stops the hub and its children and surfaces the signal reason', { skip: !linux }, async () => {
  const reason = new Error('stopped by the test');
  const controller = new AbortController();
  const before = new Set(childPids());
  let seen: number[] = [];
  const p = pipeline(loader({ urls, config, processes: 2, seed: 1, epochs: Infinity }), { reporter: quiet(), signal: controller.signal });
  const { n, err } = await untilThrown(p, (i) => {
    if (i === 1) {
      seen = childPids().filter((x) => !before.has(x));
      controller.abort(reason);
    }
  });
  assert.equal(err, reason);
  assert.equal(n, 1, 'no sample after the abort');
  assert.equal(seen.length, 2);
  for (const pid of seen) assert.equal(alive(pid), false);
});

test('an abort without a reason surfaces as colorpipe AbortError', async () => {
  const controller = new AbortController();
  const p = pipeline(loader({ urls, config, processes: 1, seed: 1, epochs: Infinity }), { reporter: quiet(), signal: controller.signal });
  const { n, err } = await untilThrown(p, (i) => i === 2 && controller.abort());
  assert.ok(err instanceof AbortError, String(err));
  assert.equal(n, 2, 'no sample after the abort');
});
