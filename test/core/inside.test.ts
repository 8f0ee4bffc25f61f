import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidOptionError } from '../../src/core/errors.js';
import { insideFolder, leadsOut, RUN_RULE } from '../../src/core/inside.js';
import { tmpDir } from '../helpers/tar.js';

test('leadsOut: names and links inside the folder pass; absolute paths, .. and links out (or to the folder itself) do not', async (t) => {
  const root = tmpDir(t);
  const dir = join(root, 'in');
  mkdirSync(join(dir, 'sub'), { recursive: true });
  writeFileSync(join(dir, 'sub', 'a.bin'), 'a');
  writeFileSync(join(root, 'out.bin'), 'o');
  symlinkSync(join('sub', 'a.bin'), join(dir, 'inner'));
  symlinkSync(join(root, 'out.bin'), join(dir, 'outer'));
  symlinkSync('.', join(dir, 'self'));
  assert.equal(await leadsOut(dir, 'sub/a.bin'), null);
  assert.equal(await leadsOut(dir, 'inner'), null);
  assert.equal(await leadsOut(dir, join(root, 'out.bin')), 'is an absolute path');
  assert.equal(await leadsOut(dir, 'C:\\x.bin'), 'is an absolute path');
  assert.equal(await leadsOut(dir, 'sub/../../out.bin'), 'leads out of the folder (..)');
  assert.equal(await leadsOut(dir, 'sub\\..\\x'), 'leads out of the folder (..)');
  assert.equal(await leadsOut(dir, 'outer'), 'is a link that leads out of the folder');
  assert.equal(await leadsOut(dir, 'self'), 'is a link that leads out of the folder');
  await assert.rejects(leadsOut(dir, 'missing'), { code: 'ENOENT' });
});

test('insideFolder: one line naming the file, the field and the rule; a missing file is one line too', async (t) => {
  const dir = tmpDir(t);
  writeFileSync(join(dir, 'ok'), '');
  assert.equal(await insideFolder(dir, 'ok', 'state.json', 'checkpoint', RUN_RULE), join(dir, 'ok'));
  await assert.rejects(insideFolder(dir, '/etc/passwd', 'state.json', 'checkpoint', RUN_RULE), (e: unknown) =>
    e instanceof InvalidOptionError && e.message === 'state.json: checkpoint "/etc/passwd" is an absolute path; a run reads only files in its own directory');
  await assert.rejects(insideFolder(dir, 7, 'model.json', 'paths[0]'), (e: unknown) =>
    e instanceof InvalidOptionError && e.message === 'model.json: paths[0] 7 is not a file name; a model reads only files in its own folder');
  await assert.rejects(insideFolder(dir, 'gone', 'model.json', 'paths[0]'), /^InvalidOptionError: model\.json: cannot read paths\[0\] "gone": ENOENT/);
});
