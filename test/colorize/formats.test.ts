import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { FORMATS, checkQuality, extFormat, formatExtension, sniffFormat } from '../../src/colorize/formats.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { colourfulRgb, jpeg, png } from '../helpers/images.js';

test('sniffFormat and extFormat name formats the way sharp does', async () => {
  assert.equal(sniffFormat(await jpeg(8, 8)), 'jpeg');
  assert.equal(sniffFormat(await png(8, 8)), 'png');
  assert.equal(sniffFormat(await sharp(colourfulRgb(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).webp().toBuffer()), 'webp');
  assert.equal(sniffFormat(await sharp(colourfulRgb(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).tiff().toBuffer()), 'tiff');
  assert.equal(sniffFormat(Buffer.from('hello world, not an image')), null);
  assert.equal(extFormat('JPG'), 'jpeg');
  assert.equal(extFormat('.tif'), 'tiff');
  assert.equal(extFormat('txt'), null);
});

test('sniffFormat: GIF and AVIF signatures, short and empty buffers', async () => {
  assert.equal(sniffFormat(await sharp(colourfulRgb(8, 8), { raw: { width: 8, height: 8, channels: 3 } }).gif().toBuffer()), 'gif');
  assert.equal(sniffFormat(Buffer.from('\x00\x00\x00\x1cftypavif', 'latin1')), 'avif');
  assert.equal(sniffFormat(Uint8Array.of(0xff, 0xd8)), null);
  assert.equal(sniffFormat(new Uint8Array(0)), null);
});

test('formatExtension, FORMATS and checkQuality', () => {
  assert.deepEqual((['jpeg', 'png', 'webp', 'tiff', 'gif', 'avif'] as const).map(formatExtension), ['jpg', 'png', 'webp', 'tif', 'gif', 'avif']);
  for (const f of FORMATS) if (f !== 'same') assert.ok(extFormat(f), f);
  assert.equal(checkQuality(1, 'q'), 1);
  assert.equal(checkQuality(100, 'q'), 100);
  assert.throws(() => checkQuality(0, 'options.quality'), /Expected integer in \[1, 100\] for options.quality but received 0/);
  assert.throws(() => checkQuality(50.5, 'q'), InvalidOptionError);
});
