import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkClassCount, checkLabels } from '../../src/train/labels.js';
import { collect, pipeline } from '../../src/core/pipeline.js';
import { InvalidOptionError, Reporter } from '../../src/core/errors.js';
import type { LabSample } from '../../src/types.js';

test('checkClassCount: more classes in classes.json than the head is a usage error saying what to set', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'colorpipe-labels-'));
  try {
    const classes = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`c${i}`, i]));
    writeFileSync(join(dir, 'classes.json'), JSON.stringify(classes));
    const shards = [join(dir, 'data-000000.tar')];
    await assert.rejects(checkClassCount(shards, 4), (e: unknown) => e instanceof InvalidOptionError && /names 16 classes but the model's head has 4.*set model.numClasses to 16/.test(e.message));
    await checkClassCount(shards, 16);
    await checkClassCount(shards, 0); // no head: labels unused
    await checkClassCount([join(dir, 'elsewhere', 'x.tar')], 4); // no classes.json there
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('checkLabels: a label outside the head is reported once and the sample trains without it', async () => {
  const sample = (key: string, cls?: number): LabSample => ({
    key, width: 1, height: 1, L: new Float32Array(1), ab: new Float32Array(2), ...(cls === undefined ? {} : { cls }),
    position: { epoch: 0, shardIndex: 0, shard: 's.tar', sample: 0 },
  });
  const reporter = new Reporter({ log: null });
  const out = await collect(pipeline([sample('a', 2), sample('b', 9), sample('c', -5), sample('d')], checkLabels<LabSample>(4), { reporter }));
  assert.deepEqual(out.map((s) => [s.key, s.cls]), [['a', 2], ['b', undefined], ['c', undefined], ['d', undefined]]);
  assert.deepEqual(reporter.records.map((r) => r.key), ['s.tar#b', 's.tar#c']);
  assert.match(reporter.records[0]!.reason, /class label 9 outside the model's 4 classes \(0\.\.3\)/);
  // No head: nothing to check.
  const none = new Reporter({ log: null });
  await collect(pipeline([sample('b', 9)], checkLabels<LabSample>(0), { reporter: none }));
  assert.equal(none.total, 0);
});
