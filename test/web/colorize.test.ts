/**
 * The page's colorize steps (src/web/colorize.ts) without a browser: on ONNX Runtime (the same export and
 * contract onnxruntime-web gets in the page) they give colorize's pixels, with and without a style reference.
 * The page's own run in Chromium is test/web/page.test.ts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import sharp from 'sharp';
import { colorizeBuffers } from '../../src/colorize/graph.js';
import { psnr } from '../../src/color/metrics.js';
import type { Runner } from '../../src/network/runner.js';
import { readModelFiles } from '../../src/network/model-files.js';
import { exportOnnx } from '../../src/onnx/export.js';
import { loadOnnxRunner } from '../../src/onnx/runner.js';
import { colorizeRgb, globalInput, type RgbImage } from '../../src/web/colorize.js';
import { tinyModel } from '../helpers/model.js';
import { FIXTURES, tempDir } from '../helpers/tar.js';

const { dir, cleanup } = tempDir('colorpipe-web-colorize-');
let runner: Runner;
const photo = (name: string) => sharp(join(FIXTURES, 'images', 'renewable', name)).resize(400, 300, { fit: 'fill' }).png().toBuffer();
const rgbOf = async (png: Buffer): Promise<RgbImage> => {
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { rgb: new Uint8Array(data), width: info.width, height: info.height };
};

before(async () => {
  // A training scale, so that both paths are rescaled by 3x or more (resizeRgb here, sharp in colorize).
  const model = await tinyModel(join(dir, 'model'), { trainingScale: { shortSide: 96, crop: 64 } });
  const m = await readModelFiles(model);
  runner = await loadOnnxRunner(exportOnnx({ config: m.config, weights: m.weights }, { trainingScale: m.trainingScale! }), { device: 'cpu' });
});
after(async () => {
  await runner?.release();
  cleanup();
});

async function cli(png: Buffer, style?: Buffer): Promise<Uint8Array> {
  for await (const r of colorizeBuffers([{ name: 'x.png', data: png }], { model: runner, ...(style ? { style } : {}) })) return (await rgbOf(r.data)).rgb;
  throw new Error('no output');
}

test("the page's colorize gives colorize's pixels at the input's size (PSNR >= 40 dB), with and without a style", async () => {
  const [dam, solar] = await Promise.all([photo('dam1.jpg'), photo('solar1.jpg')]);
  const img = await rgbOf(dam);
  const stages: string[] = [];
  const plain = await colorizeRgb(img, runner, { onStage: (s) => stages.push(s) });
  assert.deepEqual(stages, ['prepare', 'network', 'compose']);
  assert.equal(plain.length, 400 * 300 * 3);
  const want = await cli(dam);
  assert.ok(psnr(plain, want) >= 40, `${psnr(plain, want).toFixed(1)} dB`);
  const style = await globalInput(await rgbOf(solar), runner.globalSize);
  const styled = await colorizeRgb(img, runner, { style });
  const wantStyled = await cli(dam, solar);
  assert.ok(psnr(styled, wantStyled) > psnr(styled, want) + 3, `${psnr(styled, wantStyled).toFixed(1)} vs ${psnr(styled, want).toFixed(1)} dB`);
  // A style input made for another S is refused.
  await assert.rejects(colorizeRgb(img, runner, { style: new Float32Array(7) }), RangeError);
});
