import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { checkPaths, isInside, outputFor, planFiles, realPathOf } from '../../src/colorize/plan.js';
import { BadInputError, InvalidOptionError, Reporter } from '../../src/core/errors.js';
import { tmpDir } from '../helpers/tar.js';

test('outputFor: same keeps the format by extension, a conversion changes the extension', () => {
  assert.deepEqual(outputFor('a/b.JPG', 'same', null), { relPath: 'a/b.JPG', format: 'jpeg' });
  assert.deepEqual(outputFor('a/b.jpeg', 'jpg', 'jpeg'), { relPath: 'a/b.jpeg', format: 'jpeg' });
  assert.deepEqual(outputFor('a/b.jpg', 'png', null), { relPath: 'a/b.png', format: 'png' });
  assert.deepEqual(outputFor('b.tiff', 'webp', null), { relPath: 'b.webp', format: 'webp' });
  assert.deepEqual(outputFor('noext', 'same', 'jpeg'), { relPath: 'noext.jpg', format: 'jpeg' });
  assert.deepEqual(outputFor('x.dat', 'same', null), { relPath: 'x.png', format: 'png' });
  assert.deepEqual(outputFor('v1.2/photo', 'png', null), { relPath: 'v1.2/photo.png', format: 'png' });
});

test('isInside and realPathOf resolve symlinks and missing tails', async (t) => {
  const dir = await realPathOf(tmpDir(t, 'cp-real-'));
  assert.ok(isInside(path.join(dir, 'a', 'b'), dir));
  assert.ok(isInside(dir, dir));
  assert.ok(!isInside(dir + '-other', dir));
  assert.ok(!isInside(path.dirname(dir), dir));
  assert.equal(await realPathOf(path.join(dir, 'x', 'y')), path.join(dir, 'x', 'y'));
});

test('planFiles: rank/world part, collisions reported (never overwritten), existing outputs skipped', async (t) => {
  const dir = await realPathOf(tmpDir(t, 'cp-plan-'));
  const input = path.join(dir, 'in');
  const out = path.join(dir, 'out');
  await mkdir(path.join(input, 'sub'), { recursive: true });
  await mkdir(out);
  for (const n of ['a.jpg', 'a.png', 'b.jpg', 'sub/c.webp']) await writeFile(path.join(input, n), 'x');
  await writeFile(path.join(out, 'b.png'), 'existing');
  const reporter = new Reporter({ log: null });
  const plan = await planFiles({ input, out, format: 'png', overwrite: false, reporter });
  // Sorted: a.jpg a.png b.jpg sub/c.webp. a.png's output is a.jpg's: reported; b.png exists: skipped.
  assert.deepEqual(plan.todo.map((f) => [f.relPath, f.index]), [['a.jpg', 0], ['sub/c.webp', 3]]);
  assert.deepEqual([plan.total, plan.skipped, plan.error], [4, 1, undefined]);
  assert.equal(reporter.records.length, 1);
  assert.equal(reporter.records[0]!.key, path.join(input, 'a.png'));
  assert.match(reporter.records[0]!.reason, /is also the output of .*a\.jpg/);
  // overwrite: the existing output is planned again; rank 1 of 2 takes indices 1 and 3 (no collision there).
  const again = await planFiles({ input, out, format: 'png', overwrite: true, reporter: new Reporter({ log: null }), rank: 1, world: 2 });
  assert.deepEqual([again.total, again.skipped, again.todo.map((f) => f.relPath)], [2, 0, ['a.png', 'sub/c.webp']]);
  // With onError 'fail' the collision stops the plan: handed back, with what was planned before it.
  const failing = await planFiles({ input, out, format: 'png', overwrite: false, reporter: new Reporter({ onError: 'fail', log: null }) });
  assert.ok(failing.error instanceof BadInputError);
  assert.deepEqual(failing.todo.map((f) => f.relPath), ['a.jpg']);
  await assert.rejects(planFiles({ input, out, format: 'png', overwrite: false, reporter, rank: 2, world: 2 }), InvalidOptionError);
});

test('checkPaths: --out may not be --in, inside it, or a file', async (t) => {
  const dir = await realPathOf(tmpDir(t, 'cp-paths-'));
  const input = path.join(dir, 'in');
  await mkdir(input);
  await writeFile(path.join(dir, 'file.png'), 'x');
  assert.deepEqual(await checkPaths(input, path.join(dir, 'out')), { inputReal: input, inputIsFile: false, outReal: path.join(dir, 'out') });
  await assert.rejects(checkPaths(input, input), /is --in/);
  await assert.rejects(checkPaths(input, path.join(input, 'x')), /is inside --in/);
  await assert.rejects(checkPaths(input, path.join(dir, 'file.png')), /is a file/);
  await assert.rejects(checkPaths(path.join(dir, 'missing'), path.join(dir, 'out')), /does not exist/);
});
