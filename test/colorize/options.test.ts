import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_BATCH, emptyTimings, validateCommon } from '../../src/colorize/options.js';

test('validateCommon: one wording for every shared option', () => {
  const model = 'runs/x';
  validateCommon({ model });
  validateCommon({ model, batch: DEFAULT_BATCH, format: 'jpg', quality: 100, resolution: 8, threads: 1 });
  assert.throws(() => validateCommon(null as never), /Expected object for options but received null/);
  assert.throws(() => validateCommon({ model: '' }), /for options.model but received ""/);
  assert.throws(() => validateCommon({ model, batch: 0 }), /Expected positive integer for options.batch but received 0/);
  assert.throws(() => validateCommon({ model, batchPixels: -1 }), /options.batchPixels but received -1/);
  assert.throws(() => validateCommon({ model, threads: 2.5 }), /options.threads but received 2.5/);
  assert.throws(() => validateCommon({ model, resolution: 4 }), /options.resolution but received 4/);
  assert.throws(() => validateCommon({ model, format: 'bmp' as never }), /Expected one of .* for options.format but received "bmp"/);
  assert.throws(() => validateCommon({ model, quality: 101 }), /Expected integer in \[1, 100\] for options.quality but received 101/);
});

test('emptyTimings: every counter at 0, a fresh object each time', () => {
  const t = emptyTimings();
  assert.ok(Object.values(t).every((v) => v === 0));
  t.batches++;
  assert.equal(emptyTimings().batches, 0);
});
