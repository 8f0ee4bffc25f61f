import { test } from 'node:test';
import assert from 'node:assert/strict';
import { braceExpand, expandShardSpec, splitShardList } from '../../src/webdataset/spec.js';
import path from 'node:path';
import { InvalidOptionError } from '../../src/core/errors.js';
import { tmpDir, writeTextShards } from '../helpers/tar.js';

test('brace expansion: padded and plain ranges, steps, lists, nesting, literals', () => {
  assert.deepEqual(braceExpand('data-{000000..000003}.tar'), ['data-000000.tar', 'data-000001.tar', 'data-000002.tar', 'data-000003.tar']);
  assert.deepEqual(braceExpand('{8..11}'), ['8', '9', '10', '11']);
  assert.deepEqual(braceExpand('{3..1}'), ['3', '2', '1']);
  assert.deepEqual(braceExpand('{00..10..5}'), ['00', '05', '10']);
  assert.deepEqual(braceExpand('{train,val}-{0..1}.tar'), ['train-0.tar', 'train-1.tar', 'val-0.tar', 'val-1.tar']);
  assert.deepEqual(braceExpand('{a,b{1,2}}'), ['a', 'b1', 'b2']);
  assert.deepEqual(braceExpand('lit{x}-{1..2}'), ['lit{x}-1', 'lit{x}-2']);
  assert.deepEqual(braceExpand('plain.tar'), ['plain.tar']);
  assert.throws(() => braceExpand('{0..99999999}'), InvalidOptionError);
});

test('expandShardSpec: globs sorted, entries in the given order, duplicates dropped, nothing matching is an error', async (t) => {
  const dir = tmpDir(t);
  const files = await writeTextShards(dir, 3, 1);
  const [a, b, c] = files as [string, string, string];
  assert.deepEqual(await expandShardSpec(path.join(dir, '*.tar')), files);
  assert.deepEqual(await expandShardSpec([c, path.join(dir, '*.tar')]), [c, a, b]);
  assert.deepEqual(await expandShardSpec(path.join(dir, 'shard-{0002,0000}.tar')), [c, a]);
  assert.deepEqual(await expandShardSpec(path.join(dir, 'shard-{0000..0001}.tar')), [a, b]);
  // A plain path that does not exist is kept (reported when read) as long as something exists.
  const missing = path.join(dir, 'gone.tar');
  assert.deepEqual(await expandShardSpec([a, missing]), [a, missing]);
  await assert.rejects(expandShardSpec(path.join(dir, 'none-*.tar')), InvalidOptionError);
  await assert.rejects(expandShardSpec(missing), InvalidOptionError);
  await assert.rejects(expandShardSpec([]), InvalidOptionError);
});

test('a comma list mixes brace ranges, brace lists and globs: top-level commas separate entries', { timeout: 10_000 }, async (t) => {
  assert.deepEqual(splitShardList('d-{000000..000001}.tar,b.tar'), ['d-{000000..000001}.tar', 'b.tar']);
  assert.deepEqual(splitShardList('{a,b}.tar,x/*.tar,{c,{d,e}}.tar'), ['{a,b}.tar', 'x/*.tar', '{c,{d,e}}.tar']);
  assert.deepEqual(splitShardList('a.tar'), ['a.tar']);
  const dir = tmpDir(t);
  const [a, b, c] = (await writeTextShards(dir, 3, 1)) as [string, string, string];
  const [x] = await writeTextShards(dir, 1, 1, 'extra');
  const j = (n: string) => path.join(dir, n);
  assert.deepEqual(await expandShardSpec(`${j('shard-{0000..0001}.tar')},${x}`), [a, b, x]);
  assert.deepEqual(await expandShardSpec(`${j('extra-*.tar')},${j('shard-{0002,0000}.tar')}`), [x, c, a]);
  assert.deepEqual(await expandShardSpec(`${c},${a}`), [c, a]);
  // An empty entry (a trailing comma) is refused, not read as the current directory.
  await assert.rejects(expandShardSpec(`${a},`), InvalidOptionError);
});
