import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loader } from '../../../src/train/loader/index.js';
import { pipeline, collect } from '../../../src/core/pipeline.js';
import { ColorpipeError, InvalidOptionError } from '../../../src/core/errors.js';
import { alive, childPids, config, linux, makeShards, quiet } from './fixtures.js';

let urls = '';
let dir = '';
let cleanup = () => undefined as void;
before(async () => ({ urls, dir, cleanup } = await makeShards()));
after(() => cleanup());

test('an early break kills every child process', { skip: !linux }, async () => {
  const before = new Set(childPids());
  let seen: number[] = [];
  let n = 0;
  for await (const _ of pipeline(loader({ urls, config, processes: 2, seed: 1, epochs: Infinity }), { reporter: quiet() })) {
    if (++n === 3) {
      seen = childPids().filter((p) => !before.has(p));
      break;
    }
  }
  assert.equal(seen.length, 2);
  for (const pid of seen) assert.equal(alive(pid), false, `child ${pid} still alive`);
});

test('a child that dies ends the run with ERR_LOADER_CHILD', { skip: !linux }, async () => {
  const before = new Set(childPids());
  let killed = false;
  const err = await (async () => {
    try {
      for await (const _ of pipeline(loader({ urls, config, processes: 2, seed: 1, epochs: Infinity }), { reporter: quiet() })) {
        const mine = childPids().filter((p) => !before.has(p));
        if (!killed && mine.length === 2) {
          killed = true;
          process.kill(mine[1]!, 'SIGKILL');
        }
      }
    } catch (e) {
      return e;
    }
    return null;
  })();
  assert.ok(err instanceof ColorpipeError, String(err));
  assert.equal(err.code, 'ERR_LOADER_CHILD');
  assert.match(err.message, /signal SIGKILL/);
  assert.deepEqual(childPids().filter((p) => !before.has(p)), []);
});

test('a resume position from another shard order is a clear error from the child, with its class', async () => {
  const bad = { epoch: 0, after: { 0: { epoch: 0, shardIndex: 0, shard: join(dir, 'nope.tar'), sample: 1 } } };
  await assert.rejects(collect(pipeline(loader({ urls, config, processes: 1, world: 2, seed: 1, resume: bad }), { reporter: quiet() })), InvalidOptionError);
});
