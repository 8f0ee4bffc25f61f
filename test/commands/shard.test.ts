/** `pipe shard` then a read-back of those shards with the shards stage returns every image with its class. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, tmpDir } from '../helpers/tar.js';
import { shards } from '../../src/stages/shards.js';
import { listImageFiles } from '../../src/stages/files.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { interruptWhen, noStack, pipe, tempLeftovers } from '../helpers/cli.js';

test('pipe shard writes shards that read back with every image and its class', async (t) => {
  const dir = tmpDir(t);
  const r = pipe(['shard', '--in', join(FIXTURES, 'images'), '--out', dir, '--maxcount', '10', '--quiet']);
  assert.equal(r.status, 0, r.stderr);
  const classes = JSON.parse(readFileSync(join(dir, 'classes.json'), 'utf8')) as Record<string, number>;
  const inputs = await listImageFiles(join(FIXTURES, 'images'));
  const got = await collect(pipeline(shards({ urls: join(dir, 'data-*.tar') })));
  assert.equal(got.length, inputs.length);
  for (const s of got) {
    const meta = s.meta as { path: string };
    const cls = meta.path.split('/')[0]!;
    assert.equal(s.cls, classes[cls], `${s.key} has the class of its folder`);
    const src = inputs.find((f) => f.relPath === meta.path)!;
    assert.ok(readFileSync(src.abs).equals(s.image!), 'original bytes');
  }
  const bad = pipe(['shard', '--in', join(FIXTURES, 'bad'), '--out', join(dir, 'bad'), '--labels', 'none']);
  assert.equal(bad.status, 0);
  assert.match(bad.stderr, /skipped .*corrupt/);
});

test('Ctrl-C: pipe shard stops, keeps only whole shards, leaves no temp file and exits 130', { timeout: 120_000 }, async (t) => {
  const dir = tmpDir(t);
  const input = join(dir, 'in');
  mkdirSync(input);
  // The bad file comes first: its skip line says the run is under way. The 2000 tiny photos after it take
  // seconds, so the SIGINT arrives while shards are being written.
  copyFileSync(join(FIXTURES, 'bad', 'corrupt.jpg'), join(input, '0000-bad.jpg'));
  const photo = readFileSync(join(FIXTURES, 'images', 'others', 'cup.jpg'));
  for (let i = 0; i < 2000; i++) writeFileSync(join(input, `img-${String(i).padStart(4, '0')}.jpg`), photo);
  const out = join(dir, 'out');
  const r = await interruptWhen(['shard', '--in', input, '--out', out, '--maxcount', '20', '--labels', 'none'], (_o, err) => err.includes('skipped 0000-bad.jpg'));
  assert.equal(r.interrupted, 1);
  assert.equal(r.status, 130, r.stderr);
  assert.match(r.stderr, /\ncolorpipe: interrupted: .*\(Ctrl-C again to quit now\)\n$/);
  noStack(r.stderr);
  assert.deepEqual(tempLeftovers(out), [], 'no temp file left');
  // Stopped part-way: fewer than the 100 shards of a whole run, and each one there is whole.
  const tars = readdirSync(out).filter((f) => f.endsWith('.tar'));
  assert.ok(tars.length < 100, `${tars.length} shards`);
  if (tars.length > 0) assert.equal((await collect(pipeline(shards({ urls: join(out, '*.tar') })))).length, 20 * tars.length);
});
