import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, existsSync, mkdirSync, writeFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tar.js';
import { writeFileAtomic, writeDirAtomic, symlinkAtomic, cleanTemps } from '../../src/core/atomic.js';

test('writeFileAtomic replaces a file whole and leaves no temp file', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'a', 'out.txt');
    await writeFileAtomic(p, 'one');
    await writeFileAtomic(p, 'two');
    assert.equal(readFileSync(p, 'utf8'), 'two');
    assert.deepEqual(readdirSync(join(dir, 'a')), ['out.txt']);
  } finally {
    cleanup();
  }
});

test('writeDirAtomic: a failing fill leaves the old directory untouched and no temp dir', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const target = join(dir, 'ck');
    await writeDirAtomic(target, async (tmp) => writeFileSync(join(tmp, 'f'), 'v1'));
    await assert.rejects(writeDirAtomic(target, async (tmp) => { writeFileSync(join(tmp, 'f'), 'v2'); throw new Error('killed'); }), /killed/);
    assert.equal(readFileSync(join(target, 'f'), 'utf8'), 'v1');
    assert.deepEqual(readdirSync(dir), ['ck']);
    await writeDirAtomic(target, async (tmp) => writeFileSync(join(tmp, 'f'), 'v3'));
    assert.equal(readFileSync(join(target, 'f'), 'utf8'), 'v3');
  } finally {
    cleanup();
  }
});

test('symlinkAtomic swaps a link; cleanTemps removes what a killed writer left', async () => {
  const { dir, cleanup } = tempDir();
  try {
    mkdirSync(join(dir, 'x'));
    mkdirSync(join(dir, 'y'));
    await symlinkAtomic('x', join(dir, 'cur'));
    await symlinkAtomic('y', join(dir, 'cur'));
    assert.equal(readlinkSync(join(dir, 'cur')), 'y');
    writeFileSync(join(dir, '.tmp-cur-123-0'), 'junk');
    await cleanTemps(dir);
    assert.ok(!existsSync(join(dir, '.tmp-cur-123-0')));
  } finally {
    cleanup();
  }
});
