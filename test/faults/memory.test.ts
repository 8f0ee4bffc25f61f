/**
 * Camera-sized photos (issue 11, items 1 and 14), end to end through the CLI: a 24-megapixel JPEG never ends
 * a colorize run, at the default resolution or at full size (the local path in 1024 x 1024 windows), and any
 * number of them colorizes within 1.5 GB (max RSS of the whole process: engine, worker threads, sharp),
 * because what is in flight is bounded by decoded bytes, not by count. So is an 8190 x 8190 PNG of a few
 * hundred KB.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { imageCost, prepareSettings } from '../../src/colorize/image.js';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import sharp from 'sharp';
import { FIXTURES, tempDir } from '../helpers/tar.js';
import { exited, lastJson, noStack, run, tempLeftovers, type CliResult } from '../helpers/cli.js';
import { photos } from '../helpers/faults.js';
import { tinyModel } from '../helpers/model.js';

const { dir: TMP, cleanup } = tempDir('colorpipe-faults-memory-');
after(cleanup);

/** The bound the issue sets on a run of 24-megapixel photos at default settings. */
const LIMIT_MB = 1500;
/** Each child prints its max RSS as it exits, from a module NODE_OPTIONS preloads into the CLI's process. */
const HOOK = join(TMP, 'max-rss.mjs');
writeFileSync(HOOK, "process.on('exit', () => process.stderr.write(`maxrss_kb ${process.resourceUsage().maxRSS}\\n`));\n");
const env = { NODE_OPTIONS: `--import=${pathToFileURL(HOOK).href}` };
const maxRssMB = (r: CliResult): number => {
  const kb = [...r.stderr.matchAll(/maxrss_kb (\d+)/g)].map((m) => Number(m[1]));
  assert.ok(kb.length > 0, r.stderr);
  return Math.max(...kb) / 1024;
};
const withoutRss = (s: string): string => s.replace(/maxrss_kb \d+\n/g, '');

interface Summary { total: number; written: number; failed: number; timings: { inFlightPeakBytes: number } }

let model: string;
let camera: string;

before(async () => {
  model = await tinyModel(join(TMP, 'model'));
  // A 24-megapixel photo, as most cameras make (from a bundled fixture, upscaled).
  camera = join(TMP, 'camera.jpg');
  await sharp(join(FIXTURES, 'images', 'others', 'cup.jpg')).resize(6000, 4000, { fit: 'fill' }).jpeg({ quality: 92 }).toFile(camera);
});

async function colorize(input: string, out: string, ...more: string[]): Promise<{ r: CliResult; s: Summary; rss: number }> {
  const r = await run(['colorize', '--in', input, '--out', out, '--model', model, '--quiet', '--json', ...more], { timeoutMs: 240_000, env });
  assert.equal(r.timedOut, false, 'no hang');
  noStack(withoutRss(r.stderr));
  exited(r, 0);
  assert.deepEqual(tempLeftovers(out), []);
  return { r, s: lastJson<Summary>(r.stdout), rss: maxRssMB(r) };
}

test('a 6000x4000 photo among small ones is colorized at default flags and at --resolution full, within 1.5 GB', { timeout: 300_000 }, async () => {
  const input = join(TMP, 'mixed');
  await photos(input, 2);
  copyFileSync(camera, join(input, 'camera.jpg'));
  for (const res of [[], ['--resolution', 'full']]) {
    const out = join(TMP, `mixed-out${res.length}`);
    const { s, rss } = await colorize(input, out, ...res);
    assert.equal(s.written, 3, `every image written (${res.join(' ') || 'default'})`);
    assert.equal(s.failed, 0);
    const meta = await sharp(join(out, 'camera.jpg')).metadata();
    assert.deepEqual([meta.width, meta.height], [6000, 4000], 'the output keeps the input\'s size');
    assert.ok(rss < LIMIT_MB, `max RSS ${rss.toFixed(0)} MB (${res.join(' ') || 'default'})`);
  }
});

test('24-megapixel photos colorize within 1.5 GB, several at a time, with 2 worker threads or 16', { timeout: 300_000 }, async () => {
  const input = join(TMP, 'many');
  mkdirSync(input, { recursive: true });
  for (let i = 0; i < 4; i++) copyFileSync(camera, join(input, `camera-${i}.jpg`));
  const one = await imageCost(readFileSync(camera), prepareSettings({}));
  // Many worker threads (a 16-core machine's default) hold memory of their own: the budget counts them too.
  for (const threads of ['2', '16']) {
    const { s, rss } = await colorize(input, join(TMP, `many-out-${threads}`), '--threads', threads);
    assert.equal(s.written, 4);
    assert.ok(rss < LIMIT_MB, `max RSS ${rss.toFixed(0)} MB with ${threads} threads`);
    if (threads === '2') assert.ok(s.timings.inFlightPeakBytes >= 2 * one, `several photos at a time: peak ${s.timings.inFlightPeakBytes} >= ${2 * one}`);
  }
});

test('an 8190x8190 PNG of a few hundred KB (67 megapixels, over the budget) runs alone and is written; the photos after it too', { timeout: 300_000 }, async () => {
  const input = join(TMP, 'huge');
  await photos(input, 1, { name: () => 'z-after.jpg' });
  copyFileSync(camera, join(input, 'y-camera.jpg'));
  await sharp({ create: { width: 8190, height: 8190, channels: 3, background: '#808080' } })
    .composite([{ input: { create: { width: 2000, height: 1500, channels: 3, background: '#aa3322' } }, left: 900, top: 700 }])
    .png({ compressionLevel: 9 }).toFile(join(input, 'huge.png'));
  const { s, rss } = await colorize(input, join(TMP, 'huge-out'));
  assert.equal(s.written, 3);
  // Not the 1.5 GB of the photos (its decoded planes alone take about 0.7 GB), but far from the 5 GB it took
  // before: the bound is what the image needs by itself.
  assert.ok(rss < 2000, `max RSS ${rss.toFixed(0)} MB`);
});
