import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { makeFixtures, defaultPhotosDir, decompressionBombPng, tarMemberOffsets } from '../../scripts/make-fixtures.js';
import { shards } from '../../src/stages/shards.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { Reporter } from '../../src/core/errors.js';
import { FIXTURES, tmpDir } from '../helpers/tar.js';

function listFiles(root: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(root, rel)).sort()) {
    const p = path.join(rel, name);
    if (statSync(path.join(root, p)).isDirectory()) out.push(...listFiles(root, p));
    else out.push(p.split(path.sep).join('/'));
  }
  return out;
}

test('the committed fixtures are small: under 2 MB in all, the bomb under 200 KB', () => {
  const files = listFiles(FIXTURES);
  const total = files.reduce((s, f) => s + statSync(path.join(FIXTURES, f)).size, 0);
  assert.ok(total < 2 * 1024 * 1024, `${total} bytes`);
  assert.ok(statSync(path.join(FIXTURES, 'bad/bomb.png')).size < 200 * 1024);
  assert.equal(files.filter((f) => f.startsWith('images/') && f.endsWith('.jpg')).length, 24);
});

test('the script regenerates the committed fixtures byte for byte from the source photos', async (t) => {
  const photos = defaultPhotosDir();
  if (!existsSync(path.join(photos, 'MANIFEST.tsv'))) {
    t.skip(`no photos at ${photos}: the committed fixtures come from them`);
    return;
  }
  const dir = tmpDir(t);
  const res = await makeFixtures({ out: dir, photos });
  assert.equal(res.mode, 'photos');
  const committed = listFiles(FIXTURES);
  assert.deepEqual(listFiles(dir), committed);
  assert.deepEqual(res.files, committed);
  for (const f of committed) assert.deepEqual(readFileSync(path.join(dir, f)), readFileSync(path.join(FIXTURES, f)), f);
});

test('without photos the synthetic fixtures are deterministic and usable', async (t) => {
  const a = tmpDir(t);
  const b = tmpDir(t);
  const ra = await makeFixtures({ out: a, photos: null });
  const rb = await makeFixtures({ out: b, photos: path.join(b, 'no-such-folder') });
  assert.equal(ra.mode, 'synthetic');
  assert.equal(rb.mode, 'synthetic');
  assert.deepEqual(ra.files, rb.files);
  for (const f of ra.files) assert.deepEqual(readFileSync(path.join(a, f)), readFileSync(path.join(b, f)), f);
  // Same layout as the committed fixtures (other image names).
  const layout = (files: string[]) => files.map((f) => (f.endsWith('.jpg') && f.startsWith('images/') ? path.dirname(f) : f));
  assert.deepEqual(layout(ra.files), layout(listFiles(FIXTURES)));
  const samples = await collect(
    pipeline(shards({ urls: path.join(a, 'shards/data-*.tar') }), { reporter: new Reporter({ log: null }) }),
  );
  assert.equal(samples.length, 24);
  assert.deepEqual([...new Set(samples.map((s) => s.cls))].sort(), [0, 1, 2]);
  for (const s of samples) {
    const m = await sharp(s.image!).metadata();
    assert.equal(m.format, 'jpeg');
    assert.equal(Math.min(m.width, m.height), 64);
  }
});

test('the bad fixtures are what their names say', async () => {
  const bad = (f: string) => readFileSync(path.join(FIXTURES, 'bad', f));
  assert.equal(bad('empty.jpg').length, 0);
  assert.deepEqual([...bad('corrupt.jpg').subarray(0, 2)], [0xff, 0xd8]);
  await assert.rejects(sharp(bad('corrupt.jpg')).raw().toBuffer());
  await assert.rejects(sharp(bad('truncated.jpg'), { failOn: 'truncated' }).raw().toBuffer());
  await assert.rejects(sharp(bad('notimage.jpg')).metadata(), /unsupported image format/);
  const meta = async (f: string) => sharp(bad(f), { limitInputPixels: false }).metadata();
  assert.deepEqual([(await meta('tiny.png')).width, (await meta('tiny.png')).height], [1, 1]);
  const bomb = await meta('bomb.png');
  assert.deepEqual([bomb.width, bomb.height], [20000, 20000]);
  await assert.rejects(sharp(bad('bomb.png')).raw().toBuffer(), /pixel limit/);
  assert.deepEqual(decompressionBombPng(), bad('bomb.png'));
  assert.equal((await meta('gray.jpg')).channels, 1);
  assert.equal((await meta('cmyk.jpg')).space, 'cmyk');
  assert.equal((await meta('rgba.png')).hasAlpha, true);
  assert.equal((await meta('rot6.jpg')).orientation, 6);
  assert.equal((await meta('deep16.png')).depth, 'ushort');
  // truncated.tar ends inside a member's data, after 4 whole samples of data-000000.tar.
  const whole = readFileSync(path.join(FIXTURES, 'shards/data-000000.tar'));
  const cut = readFileSync(path.join(FIXTURES, 'shards/truncated.tar'));
  assert.deepEqual(cut, whole.subarray(0, cut.length));
  const m = tarMemberOffsets(whole)[12]!;
  assert.ok(cut.length > m.data && cut.length < m.data + m.size);
});
