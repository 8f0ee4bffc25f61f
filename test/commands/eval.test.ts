/** `pipe eval` from the command line: Ctrl-C stops it like every command (130, one line, nothing left behind). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, tmpDir } from '../helpers/tar.js';
import { jpeg } from '../helpers/images.js';
import { interruptWhen, noStack, tempLeftovers } from '../helpers/cli.js';
import { tinyModel } from '../helpers/model.js';

test('Ctrl-C: pipe eval stops, exits 130 with one line and no stack, and leaves no temp file', { timeout: 120_000 }, async (t) => {
  const dir = tmpDir(t);
  const model = await tinyModel(join(dir, 'model'));
  const input = join(dir, 'in');
  mkdirSync(input);
  // The bad file comes first: its skip line says the run is under way (the model loaded, images flowing).
  // The 1500 small photos after it take many seconds, so the SIGINT arrives mid-run.
  copyFileSync(join(FIXTURES, 'bad', 'corrupt.jpg'), join(input, '0000-bad.jpg'));
  const photo = await jpeg(48, 32, 3);
  for (let i = 0; i < 1500; i++) writeFileSync(join(input, `img-${String(i).padStart(4, '0')}.jpg`), photo);
  const r = await interruptWhen(['eval', '--in', input, '--model', model, '--json'], (_o, err) => /skipped .*0000-bad\.jpg/.test(err));
  assert.equal(r.interrupted, 1);
  assert.equal(r.status, 130, r.stderr);
  assert.match(r.stderr, /\ncolorpipe: interrupted: .*\(Ctrl-C again to quit now\)\n$/);
  noStack(r.stderr);
  assert.equal(r.stdout, '', 'no figures for a run that did not finish');
  // The ONNX export colorize caches beside model.json is whole or absent; nothing else is written.
  assert.deepEqual(tempLeftovers(dir), []);
});
