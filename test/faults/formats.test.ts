/**
 * Formats (issue 11, item 13), end to end through the CLI: an animated GIF or a multi-page TIFF is colorized
 * from its first frame with one note saying so (not silently, not a failure); `pipe shard` names each stored
 * image by its bytes' format, so an SVG saved as .png goes in rasterized as a real PNG and a PNG saved as .jpg
 * as .png, and the shards train.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { ROOT, tempDir } from '../helpers/tar.js';
import { exited, lastJson, linesMatching, noStack, run } from '../helpers/cli.js';
import { photos } from '../helpers/faults.js';
import { tinyModel } from '../helpers/model.js';
import { animatedGif, multiPageTiff, png } from '../helpers/images.js';
import { readShard } from '../../src/webdataset/tar.js';
import { Reporter } from '../../src/core/errors.js';

const { dir: TMP, cleanup } = tempDir('colorpipe-faults-formats-');
after(cleanup);

test('an animated GIF and a multi-page TIFF are colorized from their first frame, each with one note naming it', { timeout: 60_000 }, async () => {
  const input = join(TMP, 'frames');
  await photos(input, 1);
  writeFileSync(join(input, 'anim.gif'), await animatedGif(48, 40, 6));
  writeFileSync(join(input, 'pages.tif'), await multiPageTiff(48, 40, 3));
  const out = join(TMP, 'frames-out');
  const r = await run(['colorize', '--in', input, '--out', out, '--model', await tinyModel(join(TMP, 'model')), '--quiet', '--json']);
  exited(r, 0);
  noStack(r.stderr);
  assert.equal(lastJson<{ written: number; failed: number }>(r.stdout).written, 3);
  assert.equal(linesMatching(r.stderr, new RegExp(`^colorpipe: note: ${join(input, 'anim.gif')} \\(decode\\): animated GIF with 6 frames: only the first is used$`)).length, 1, r.stderr);
  assert.equal(linesMatching(r.stderr, new RegExp(`^colorpipe: note: ${join(input, 'pages.tif')} \\(decode\\): .*3 pages: only the first is used$`)).length, 1, r.stderr);
  const meta = await sharp(join(out, 'anim.gif')).metadata();
  assert.deepEqual([meta.width, meta.height, meta.pages ?? 1], [48, 40, 1], 'one frame out, at the frame\'s size');
});

test('pipe shard names each image by its bytes: an SVG saved as .png is stored as a real PNG, a PNG saved as .jpg as .png; the shard trains', { timeout: 90_000 }, async () => {
  const input = join(TMP, 'shard-in', 'things');
  mkdirSync(input, { recursive: true });
  await photos(input, 2);
  writeFileSync(join(input, 'drawing.png'), '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><rect width="40" height="30" fill="#c03020"/><circle cx="20" cy="15" r="9" fill="#2040c0"/></svg>');
  writeFileSync(join(input, 'really-a-png.jpg'), await png(40, 30, 3));
  const shards = join(TMP, 'shards');
  const s = await run(['shard', '--in', join(TMP, 'shard-in'), '--out', shards, '--labels', 'none']);
  exited(s, 0);
  noStack(s.stderr);
  const members: Record<string, { ext: string; format: string | undefined }> = {};
  const ctx = { signal: new AbortController().signal, reporter: new Reporter({ log: null }) };
  for await (const sample of readShard(join(shards, 'data-000000.tar'), ctx)) {
    members[sample.key.split('/').pop()!] = { ext: sample.imageExt ?? '', format: (await sharp(sample.image!).metadata()).format };
  }
  assert.deepEqual(members.drawing, { ext: 'png', format: 'png' }, 'the SVG rasterized');
  assert.deepEqual(members['really-a-png'], { ext: 'png', format: 'png' });
  for (const k of ['p000', 'p001']) assert.deepEqual(members[k], { ext: 'jpg', format: 'jpeg' });
  const t = await run(['train', '--shards', join(shards, '*.tar'), '--config', join(ROOT, 'configs', 'tiny.json'), '--steps', '2', '--backend', 'wasm', '--processes', '0', '--out', join(TMP, 'run'), '--quiet']);
  exited(t, 0);
  assert.doesNotMatch(t.stderr, /skipped/, 'every stored image decodes');
  assert.ok(readFileSync(join(TMP, 'run', 'state.json')).length > 0);
});
