import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync, mkdirSync, writeFileSync, readlinkSync, symlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { tempDir, tmpDir } from '../helpers/tar.js';
import { writeFileAtomic, writeDirAtomic, symlinkAtomic, cleanTemps, cleanTempsTree, checkWritableDir, makeDir, tempPathFor, tempWriterPid } from '../../src/core/atomic.js';
import { mountTmpfs } from '../helpers/faults.js';

test('writeFileAtomic replaces a file whole and leaves no temp file', async (t) => {
  const dir = tmpDir(t);
  const p = join(dir, 'a', 'out.txt');
  await writeFileAtomic(p, 'one');
  await writeFileAtomic(p, 'two');
  assert.equal(readFileSync(p, 'utf8'), 'two');
  assert.deepEqual(readdirSync(join(dir, 'a')), ['out.txt']);
});

test('writeDirAtomic: a failing fill leaves the old directory untouched and no temp dir', async (t) => {
  const dir = tmpDir(t);
  const target = join(dir, 'ck');
  await writeDirAtomic(target, async (tmp) => writeFileSync(join(tmp, 'f'), 'v1'));
  await assert.rejects(writeDirAtomic(target, async (tmp) => { writeFileSync(join(tmp, 'f'), 'v2'); throw new Error('killed'); }), /killed/);
  assert.equal(readFileSync(join(target, 'f'), 'utf8'), 'v1');
  assert.deepEqual(readdirSync(dir), ['ck']);
  await writeDirAtomic(target, async (tmp) => writeFileSync(join(tmp, 'f'), 'v3'));
  assert.equal(readFileSync(join(target, 'f'), 'utf8'), 'v3');
});

test('symlinkAtomic swaps a link; cleanTemps removes what a killed writer left', async (t) => {
  const dir = tmpDir(t);
  mkdirSync(join(dir, 'x'));
  mkdirSync(join(dir, 'y'));
  await symlinkAtomic('x', join(dir, 'cur'));
  await symlinkAtomic('y', join(dir, 'cur'));
  assert.equal(readlinkSync(join(dir, 'cur')), 'y');
  writeFileSync(join(dir, '.tmp-cur-123-0'), 'junk');
  await cleanTemps(dir);
  assert.ok(!existsSync(join(dir, '.tmp-cur-123-0')));
});

test('temp names are short and carry the PID; cleanTempsTree removes only dead writers\' temps, at any depth', { timeout: 10_000 }, async (t) => {
  const dir = tmpDir(t);
  const long = 'n'.repeat(255);
  await writeFileAtomic(join(dir, long), 'ok');
  assert.equal(readFileSync(join(dir, long), 'utf8'), 'ok');
  const name = basename(tempPathFor(join(dir, long)));
  assert.match(name, /^\.tmp-\d+-\d+-[0-9a-f]{8}$/);
  assert.equal(tempWriterPid(name), process.pid);
  assert.equal(tempWriterPid('.tmp-photo.jpg-42-7'), 42, 'older names are recognised');
  assert.equal(tempWriterPid('data-000003.tar.tmp-43'), 43, 'and the shard writer\'s older NAME.tmp-PID');
  assert.equal(tempWriterPid('classes.json.tmp-44'), 44);
  assert.equal(tempWriterPid('notes.tmp-45'), null, 'not any NAME.tmp-N');
  assert.equal(tempWriterPid('.tmpfile'), null);
  mkdirSync(join(dir, 'a', 'b'), { recursive: true });
  const dead = 999_999_999;
  writeFileSync(join(dir, 'a', 'b', `.tmp-${dead}-0-ab`), 'junk');
  mkdirSync(join(dir, 'a', `.tmp-x.tar-${dead}-3`));
  writeFileSync(join(dir, 'a', `.tmp-${process.ppid}-0-cd`), 'a live writer\'s');
  writeFileSync(join(dir, 'a', 'keep.png'), 'mine');
  symlinkSync('..', join(dir, 'a', 'loop'));
  assert.equal(await cleanTempsTree(dir), 2);
  assert.deepEqual(readdirSync(join(dir, 'a')).sort(), [`.tmp-${process.ppid}-0-cd`, 'b', 'keep.png', 'loop']);
  assert.deepEqual(readdirSync(join(dir, 'a', 'b')), []);
});

test('writeFileAtomic names the target in a write error; checkWritableDir fails on a file in the way', { timeout: 10_000 }, async (t) => {
  const dir = tmpDir(t);
  writeFileSync(join(dir, 'f'), 'x');
  await assert.rejects(writeFileAtomic(join(dir, 'f', 'x.png'), 'y'), (e: NodeJS.ErrnoException) => e.code === 'EEXIST' && e.path === join(dir, 'f'));
  await assert.rejects(checkWritableDir(join(dir, 'f')), (e: NodeJS.ErrnoException) => e.code === 'EEXIST' && e.path === join(dir, 'f'));
  await checkWritableDir(join(dir, 'new', 'deep'));
  assert.deepEqual(readdirSync(join(dir, 'new', 'deep')), [], 'the probe is gone');
});

test('writeDirAtomic and symlinkAtomic: a failure names the target (not the temp name) and leaves no temp', { timeout: 10_000 }, async (t) => {
  const dir = tmpDir(t);
  const target = join(dir, 'ck');
  // A write error with no path (what ENOSPC from a write looks like) gets the directory; one on a file inside
  // the temp directory names the same file inside the target.
  const noPath = Object.assign(new Error('no space left on device'), { code: 'ENOSPC', syscall: 'write' });
  await assert.rejects(writeDirAtomic(target, async () => { throw noPath; }), (e: NodeJS.ErrnoException) => e === noPath && e.path === target);
  await assert.rejects(
    writeDirAtomic(target, async (tmp) => { mkdirSync(join(tmp, 'sub')); mkdirSync(join(tmp, 'sub')); }),
    (e: NodeJS.ErrnoException) => e.code === 'EEXIST' && e.path === join(target, 'sub'),
  );
  // A file in the way of the link's rename: EISDIR naming the link, the temp link removed.
  mkdirSync(join(dir, 'link'));
  await assert.rejects(symlinkAtomic('x', join(dir, 'link')), (e: NodeJS.ErrnoException) => e.path === join(dir, 'link'));
  assert.deepEqual(readdirSync(dir).sort(), ['link']);
});

test('makeDir / checkWritableDir on a read-only file system: EROFS naming the first directory it could not make, not ENOENT', { timeout: 10_000 }, async (t) => {
  const { dir, cleanup } = tempDir();
  const mnt = join(dir, 'ro');
  const unmount = mountTmpfs(mnt, 'size=64k,ro');
  // One hook, in this order: the folder can be removed only once the tmpfs inside it is unmounted.
  t.after(() => {
    if (typeof unmount !== 'string') unmount();
    cleanup();
  });
  if (typeof unmount === 'string') return t.skip(unmount);
  for (const f of [makeDir, checkWritableDir]) {
    await assert.rejects(f(join(mnt, 'new', 'deeper', 'run')), (e: NodeJS.ErrnoException) => e.code === 'EROFS' && e.path === join(mnt, 'new'));
  }
  await checkWritableDir(join(dir, 'rw', 'new'));
});
