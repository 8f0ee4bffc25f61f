import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkClassCount, labelProblem } from '../../src/train/labels.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { tmpDir } from '../helpers/tar.js';

test('checkClassCount: more classes in classes.json than the head is a usage error saying what to set', async (t) => {
  const dir = tmpDir(t, 'colorpipe-labels-');
  const classes = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`c${i}`, i]));
  writeFileSync(join(dir, 'classes.json'), JSON.stringify(classes));
  const shards = [join(dir, 'data-000000.tar')];
  await assert.rejects(checkClassCount(shards, 4), (e: unknown) => e instanceof InvalidOptionError && /names 16 classes but the model's head has 4.*set model.numClasses to 16/.test(e.message));
  await checkClassCount(shards, 16);
  await checkClassCount(shards, 0); // no head: labels unused
  await checkClassCount([join(dir, 'elsewhere', 'x.tar')], 4); // no classes.json there
});

test('labelProblem: a label outside the head says which, the range and what happens; none without a head', () => {
  for (const ok of [0, 2, 3]) assert.equal(labelProblem(ok, 4), null);
  assert.equal(labelProblem(9, 4), "class label 9 outside the model's 4 classes (0..3): trained without a label");
  assert.match(labelProblem(-5, 4)!, /^class label -5 outside/);
  assert.match(labelProblem(1.5, 4)!, /^class label 1\.5 outside/);
  // No head: labels are not used, so nothing is wrong with them.
  assert.equal(labelProblem(9, 0), null);
});
