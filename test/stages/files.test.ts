import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { files, listImageFiles, type FileSample } from '../../src/stages/files.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { InvalidOptionError, Reporter } from '../../src/core/errors.js';
import { FIXTURES, tmpDir } from '../helpers/tar.js';

function tree(dir: string, names: string[]): void {
  for (const n of names) {
    const p = path.join(dir, n);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, `bytes of ${n}`);
  }
}

const NAMES = ['b/x.JPG', 'a/y.png', 'a/z.txt', '.hidden/q.jpg', 'a/.h.jpg', 'c/d/e.webp', 'top.jpeg', 'B.gif', 'a/w.seg.png', 'noext'];

test('listImageFiles: recursive, hidden skipped, case-insensitive extensions, sorted by code point', async (t) => {
  const dir = tmpDir(t);
  tree(dir, NAMES);
  const list = await listImageFiles(dir);
  assert.deepEqual(
    list.map((f) => f.relPath),
    ['B.gif', 'a/w.seg.png', 'a/y.png', 'b/x.JPG', 'c/d/e.webp', 'top.jpeg'],
  );
  for (const f of list) assert.equal(f.abs, path.join(dir, f.relPath));
  assert.deepEqual((await listImageFiles(dir, ['PNG'])).map((f) => f.relPath), ['a/w.seg.png', 'a/y.png']);
  assert.deepEqual((await listImageFiles(dir, ['.txt'])).map((f) => f.relPath), ['a/z.txt']);
  // A glob: paths relative to its static part.
  assert.deepEqual((await listImageFiles(path.join(dir, 'a/*.png'))).map((f) => f.relPath), ['w.seg.png', 'y.png']);
  assert.deepEqual((await listImageFiles(path.join(dir, '**/*.{jpg,JPG,webp}'))).map((f) => f.relPath), ['b/x.JPG', 'c/d/e.webp']);
  // One file: its basename, whatever its extension.
  assert.deepEqual(await listImageFiles(path.join(dir, 'a/z.txt')), [{ abs: path.join(dir, 'a/z.txt'), relPath: 'z.txt' }]);
  await assert.rejects(listImageFiles(path.join(dir, 'nope')), InvalidOptionError);
  await assert.rejects(listImageFiles(path.join(dir, 'nope/*.jpg')), InvalidOptionError);
  await assert.rejects(listImageFiles(dir, []), InvalidOptionError);
});

test('files(): samples with key, relPath, absolute url, bytes and lower-case extension', async (t) => {
  const dir = tmpDir(t);
  tree(dir, NAMES);
  const got = await collect(pipeline(files({ input: dir }), { reporter: new Reporter({ log: null }) }));
  assert.deepEqual(
    got.map((s) => [s.key, s.relPath, s.imageExt]),
    [
      ['B', 'B.gif', 'gif'],
      ['a/w.seg', 'a/w.seg.png', 'png'],
      ['a/y', 'a/y.png', 'png'],
      ['b/x', 'b/x.JPG', 'jpg'],
      ['c/d/e', 'c/d/e.webp', 'webp'],
      ['top', 'top.jpeg', 'jpeg'],
    ],
  );
  for (const s of got) {
    assert.equal(s.url, path.join(dir, s.relPath));
    assert.equal(s.image!.toString(), `bytes of ${s.relPath}`);
    assert.deepEqual(Object.keys(s.fields), [s.imageExt]);
  }
  const single = await collect(pipeline(files({ input: path.join(dir, 'c/d/e.webp') })));
  assert.deepEqual(single.map((s) => [s.key, s.relPath]), [['e', 'e.webp']]);
});

test('files(): rank/world gives disjoint, stable parts', async () => {
  const list = await listImageFiles(path.join(FIXTURES, 'images'));
  assert.equal(list.length, 24);
  const parts = await Promise.all([0, 1, 2].map((rank) => collect(pipeline(files({ input: path.join(FIXTURES, 'images'), rank, world: 3 })))));
  assert.deepEqual(parts.map((p) => p.length), [8, 8, 8]);
  assert.deepEqual(parts[1]!.map((s) => s.relPath), list.filter((_, i) => i % 3 === 1).map((f) => f.relPath));
  assert.deepEqual(parts.flat().map((s) => s.relPath).sort(), list.map((f) => f.relPath).sort());
});

test('files(): a file that cannot be read is reported and the stream goes on; options are validated at once', async (t) => {
  const dir = tmpDir(t);
  tree(dir, ['1.jpg', '2.jpg', '3.jpg']);
  const reporter = new Reporter({ log: null });
  const got: FileSample[] = [];
  for await (const s of pipeline(files({ input: dir }), { reporter })) {
    got.push(s);
    // Files are read lazily: one removed after listing is reported when its turn comes.
    if (s.relPath === '1.jpg') unlinkSync(path.join(dir, '2.jpg'));
  }
  assert.deepEqual(got.map((s) => s.relPath), ['1.jpg', '3.jpg']);
  assert.equal(reporter.records.length, 1);
  assert.equal(reporter.records[0]!.key, '2.jpg');
  assert.match(reporter.records[0]!.reason, /^cannot read file: ENOENT/);
  assert.throws(() => files({ input: '' }), InvalidOptionError);
  assert.throws(() => files({ input: dir, rank: 1, world: 1 }), /options.rank/);
  assert.throws(() => files({ input: dir, extensions: [] }), /options.extensions/);
  await assert.rejects(collect(pipeline(files({ input: path.join(dir, 'missing') }))), InvalidOptionError);
});

test('symbolic link loops neither hang the walk nor list a file twice; each is reported once', { timeout: 20_000 }, async (t) => {
  const dir = tmpDir(t);
  const { symlinkSync } = await import('node:fs');
  mkdirSync(path.join(dir, 'd'), { recursive: true });
  writeFileSync(path.join(dir, 'd', 'x.jpg'), 'x');
  writeFileSync(path.join(dir, 'top.png'), 'x');
  // Links back to ancestors (what made `pipe colorize` and `pipe shard` walk forever), an alias of a walked
  // directory, a chain of links that loops, and a dangling link.
  symlinkSync('..', path.join(dir, 'd', 'p1'));
  symlinkSync('..', path.join(dir, 'd', 'p2'));
  symlinkSync('d', path.join(dir, 'alias'));
  symlinkSync('b', path.join(dir, 'a'));
  symlinkSync('a', path.join(dir, 'b'));
  symlinkSync('gone', path.join(dir, 'dangling.jpg'));
  const skipped: [string, string][] = [];
  const list = await listImageFiles(dir, undefined, (p, reason) => skipped.push([path.relative(dir, p), reason]));
  const rels = list.map((f) => f.relPath);
  // Each real directory once: d/x.jpg is listed under d (or its alias, whichever came first), never twice.
  assert.deepEqual(rels, ['alias/x.jpg', 'top.png']);
  const by = Object.fromEntries(skipped);
  assert.match(by['alias/p1']!, /already listed/);
  assert.match(by['alias/p2']!, /already listed/);
  assert.match(by['d']!, /already listed/);
  assert.match(by['a']!, /loop/);
  assert.match(by['b']!, /loop/);
  assert.match(by['dangling.jpg']!, /dangling/);
  assert.equal(skipped.length, new Set(skipped.map(([p]) => p)).size, 'each reported once');
  // Through the stage: the same, reported to the run's reporter.
  const reporter = new Reporter({ log: null });
  const got = await collect(pipeline(files({ input: dir }), { reporter }));
  assert.deepEqual(got.map((s) => s.relPath), ['alias/x.jpg', 'top.png']);
  assert.equal(reporter.notices.length, skipped.length, 'notices, not bad inputs');
  assert.equal(reporter.total, 0);
});
