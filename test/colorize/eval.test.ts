import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { evaluateFolder, formatEvalTable } from '../../src/colorize/eval.js';
import { psnr, colourfulness, PSNR_CAP } from '../../src/color/metrics.js';
import { setupTfjs } from '../../src/tfjs/backend.js';
import { buildColorizer } from '../../src/tfjs/network.js';
import { lightness } from '../../src/color/lightness.js';
import { composeRgb } from '../../src/color/compose.js';
import { jpeg } from '../helpers/images.js';
import { tmpDir } from '../helpers/tar.js';

const close = (a: number, b: number, eps = 1e-3) => assert.ok(Math.abs(a - b) < eps, `${a} vs ${b}`);

test('psnr against hand-computed values', () => {
  // se = 3^2 + 4^2 = 25 over 3 values: RMSE = sqrt(25 / 3) = 2.886751; 20 log10(255 / 2.886751) = 38.9226.
  close(psnr(Uint8Array.of(10, 20, 30), Uint8Array.of(13, 16, 30)), 38.9226);
  close(psnr(Uint8Array.of(0, 0, 0), Uint8Array.of(255, 255, 255)), 0);
  // RMSE 1: 20 log10(255) = 48.1308.
  close(psnr(Uint8Array.of(1, 2, 3, 4), Uint8Array.of(2, 1, 4, 3)), 48.1308);
  assert.equal(psnr(Uint8Array.of(5, 6), Uint8Array.of(5, 6)), PSNR_CAP);
  assert.throws(() => psnr(Uint8Array.of(1), Uint8Array.of(1, 2)), RangeError);
});

test('colourfulness (Hasler and Suesstrunk 2003) against hand-computed values', () => {
  // Gray: rg = yb = 0 everywhere.
  assert.equal(colourfulness(Uint8Array.of(10, 10, 10, 200, 200, 200)), 0);
  // All pure red: rg = 255, yb = 127.5, no spread: 0.3 * sqrt(255^2 + 127.5^2) = 85.5297.
  close(colourfulness(Uint8Array.of(255, 0, 0, 255, 0, 0)), 85.5297);
  // Red and blue: rg = 255, 0 and yb = 127.5, -255: means 127.5, -63.75; stds 127.5, 191.25:
  // sqrt(127.5^2 + 191.25^2) + 0.3 sqrt(127.5^2 + 63.75^2) = 229.8539 + 42.7648 = 272.6187.
  close(colourfulness(Uint8Array.of(255, 0, 0, 0, 0, 255)), 272.6187);
  assert.throws(() => colourfulness(new Uint8Array(4)), RangeError);
});

test('evaluateFolder: model, grayscale and mean-ab figures; grayscale has no colour', async (t) => {
  const dir = tmpDir(t, 'cp-eval-');
  const engine = await setupTfjs({ backend: 'cpu' });
  const net = buildColorizer({ inputSize: 32, width: 0.125, numClasses: 0 }, { seed: 2 });
  const input = path.join(dir, 'in');
  await mkdir(path.join(input, 'sub'), { recursive: true });
  const images = [await jpeg(40, 32, 1), await jpeg(24, 24, 2), await jpeg(33, 17, 3)];
  await writeFile(path.join(input, 'a.jpg'), images[0]!);
  await writeFile(path.join(input, 'sub', 'b.jpg'), images[1]!);
  await writeFile(path.join(input, 'c.jpg'), images[2]!);
  await writeFile(path.join(input, 'bad.jpg'), 'not an image');
  const per: { name: string; psnrGray: number }[] = [];
  const s = await evaluateFolder({ input, model: net, tfjsBackend: engine, log: null, onImage: (r) => per.push(r) });
  assert.equal(s.images, 3);
  assert.equal(s.failed, 1);
  for (const v of [s.model.psnr, s.model.colourfulness, s.grayscale.psnr, s.meanAb.psnr, s.meanAb.colourfulness, s.original.colourfulness]) {
    assert.ok(Number.isFinite(v));
  }
  assert.ok(s.grayscale.colourfulness < 1, `gray colourfulness ${s.grayscale.colourfulness}`);
  assert.ok(s.original.colourfulness > 20);
  // The grayscale figure is the PSNR of the L image against the decoded original.
  let sum = 0;
  for (const b of [images[0]!, images[2]!, images[1]!]) {
    const { data } = await sharp(b).raw().toBuffer({ resolveWithObject: true });
    const meta = await sharp(b).metadata();
    const gray = composeRgb(lightness(data), meta.width!, meta.height!, Float32Array.of(128 / 255, 128 / 255), 1, 1);
    sum += psnr(gray, data);
  }
  close(s.grayscale.psnr, sum / 3, 1e-6);
  assert.deepEqual(per.map((p) => p.name).sort(), ['a.jpg', 'c.jpg', 'sub/b.jpg']);
  // Mean ab is the mean over the originals' pixels, so the constant image is coloured like them.
  assert.ok(s.meanAb.colourfulness > 0.5);
  assert.match(formatEvalTable(s), /grayscale \(ab = 0\)/);
});
