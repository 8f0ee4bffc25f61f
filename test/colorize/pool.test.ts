import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { COLORIZE_WORKER, createColorizePool, poolSettings } from '../../src/colorize/pool.js';
import { InvalidOptionError } from '../../src/core/errors.js';

test('poolSettings: inline runs one at a time, a pool one more than its threads', async (t) => {
  assert.deepEqual(poolSettings({ pool: 'inline', threads: 3 }), { given: 'inline', threads: 3, concurrency: 1 });
  assert.equal(poolSettings({ threads: 3 }).concurrency, 4);
  const pool = createColorizePool(2, 3);
  t.after(() => pool.destroy());
  assert.equal(poolSettings({ pool }).concurrency, 3);
  assert.equal(poolSettings({ pool, concurrency: 7 }).concurrency, 7);
  assert.equal(pool.options.concurrentTasksPerWorker, 3);
  assert.equal(pool.options.filename, fileURLToPath(COLORIZE_WORKER));
  assert.match(COLORIZE_WORKER, /^file:.*\/colorize\/worker\.js$/);
});

test('pool options are validated at once', () => {
  assert.throws(() => poolSettings({ pool: 'threads' as never }), /Expected 'inline' or a Piscina pool for options.pool but received "threads"/);
  assert.throws(() => poolSettings({ threads: 0 }), /Expected positive integer for options.threads but received 0/);
  assert.throws(() => poolSettings({ concurrency: 1.5 }), /Expected positive integer for options.concurrency but received 1.5/);
  assert.throws(() => createColorizePool(2, 0), InvalidOptionError);
});
