/**
 * The colorize page in a real browser (headless Chromium): photos dropped or picked are colorized in the page by
 * onnxruntime-web as `pipe colorize` colorizes them (the same export, the same L at full size, ab from the same
 * sizes; the page resamples with resizeRgb where colorize uses sharp), the before/after slider answers the
 * keyboard and the mouse, and a style reference changes the result as `pipe colorize --style` does.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Browser, Page } from 'puppeteer-core';
import { psnr } from '../../src/color/metrics.js';
import { webAssets } from '../../src/serve/assets.js';
import { serve, type Served } from '../../src/serve/server.js';
import { browserTests, closeBrowser, dropFiles, launch, linkedBytes, openPage } from '../helpers/browser.js';
import { pipe, exited } from '../helpers/cli.js';
import { tinyModel } from '../helpers/model.js';
import { FIXTURES, tempDir } from '../helpers/tar.js';

/** Raw sRGB of an encoded image. */
async function pixels(bytes: Buffer): Promise<{ rgb: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(bytes).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { rgb: new Uint8Array(data), width: info.width, height: info.height };
}

browserTests('the colorize page in Chromium', (chromium) => {
  const { dir, cleanup } = tempDir('colorpipe-web-');
  const runs = join(dir, 'runs');
  const photos = join(dir, 'photos');
  const cli = join(dir, 'cli');
  let browser: Browser;
  let served: Served;

  before(async () => {
    // A model that records a training scale, so the page resamples both paths as colorize does (400 x 300 ->
    // local 128 x 96, global 32 x 32: rescales of 3x and more, sharp's lanczos3 in colorize).
    await tinyModel(join(runs, 'tiny', 'model'), { trainingScale: { shortSide: 96, crop: 64 } });
    mkdirSync(photos);
    for (const [name, src] of [['dam.png', 'renewable/dam1.jpg'], ['solar.png', 'renewable/solar1.jpg']]) {
      await sharp(join(FIXTURES, 'images', src!)).resize(400, 300, { fit: 'fill' }).png().toFile(join(photos, name!));
    }
    exited(pipe(['colorize', '--in', join(photos, 'dam.png'), '--out', join(cli, 'plain'), '--model', join(runs, 'tiny'), '--engine', 'onnx', '--format', 'png']), 0);
    exited(pipe(['colorize', '--in', join(photos, 'dam.png'), '--out', join(cli, 'styled'), '--model', join(runs, 'tiny'), '--engine', 'onnx', '--format', 'png', '--style', join(photos, 'solar.png')]), 0);
    served = await serve({ runs, assets: webAssets(), port: 0 });
    browser = await launch(chromium);
  });
  after(async () => {
    await closeBrowser(browser);
    await served?.close();
    cleanup();
  });

  /** The colorize page, its model loaded (on `ep`). */
  async function colorizePage(ep = 'wasm'): Promise<{ page: Page; errors: string[] }> {
    const o = await openPage(browser, `${served.url}?ep=${ep}`);
    await o.page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset['model'] ?? ''), { timeout: 60_000 });
    return o;
  }

  const done = (page: Page, n: number) =>
    page.waitForFunction((k) => document.querySelectorAll('li.result[data-state="done"]').length >= k, { timeout: 120_000 }, n);

  async function expectLikeCli(page: Page, selector: string, cliFile: string, what: string): Promise<Uint8Array> {
    const bytes = await linkedBytes(page, selector);
    const [got, want] = await Promise.all([pixels(bytes), pixels(readFileSync(cliFile))]);
    assert.deepEqual([got.width, got.height], [400, 300], `${what}: the full size`);
    const db = psnr(got.rgb, want.rgb);
    assert.ok(db >= 40, `${what}: ${db.toFixed(1)} dB against pipe colorize`);
    return got.rgb;
  }

  test('a picked photo is colorized in the page on WebAssembly as pipe colorize colorizes it (PSNR >= 40 dB), at full size', async () => {
    const { page, errors } = await colorizePage();
    assert.match(await page.$eval('#status', (e) => e.textContent ?? ''), /tiny on WebAssembly \(\d+ threads?\): loaded in/);
    const input = await page.$('input#files');
    await input!.uploadFile(join(photos, 'dam.png'));
    await done(page, 1);
    const li = 'li.result[data-state="done"]';
    assert.match(await page.$eval(`${li} .meta`, (e) => e.textContent ?? ''), /^dam\.png: 400 × 300, WebAssembly \(\d+ threads?\), [\d.]+ s/);
    assert.equal(await page.$eval(`${li} .download`, (a) => a.getAttribute('download')), 'dam-colorized.png');
    await expectLikeCli(page, `${li} .download`, join(cli, 'plain', 'dam.png'), 'WebAssembly');
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('photos dropped together are each colorized, and the slider follows the keyboard and the mouse', async () => {
    const { page, errors } = await colorizePage();
    const file = (name: string) => ({ name, type: 'image/png', bytes: readFileSync(join(photos, name)) });
    await dropFiles(page, '#drop', [file('dam.png'), file('solar.png')]);
    await done(page, 2);
    assert.deepEqual(await page.$$eval('li.result h2', (hs) => hs.map((x) => x.textContent).sort()), ['dam.png', 'solar.png']);
    const handle = 'li.result[data-state="done"] .handle';
    const state = () => page.$eval(handle, (h) => [h.getAttribute('aria-valuenow'), (h.parentElement!.querySelector('.after') as HTMLElement).style.clipPath]);
    assert.deepEqual(await state(), ['50', 'inset(0px 0px 0px 50%)']);
    await page.focus(handle);
    for (const key of ['ArrowLeft', 'ArrowLeft', 'ArrowDown'] as const) await page.keyboard.press(key);
    assert.deepEqual(await state(), ['47', 'inset(0px 0px 0px 47%)']);
    await page.keyboard.down('Shift');
    await page.keyboard.press('ArrowRight');
    await page.keyboard.up('Shift');
    assert.equal((await state())[0], '57');
    await page.keyboard.press('End');
    assert.equal((await state())[0], '100');
    await page.keyboard.press('PageDown');
    assert.equal((await state())[0], '90');
    await page.keyboard.press('Home');
    assert.deepEqual(await state(), ['0', 'inset(0px 0px 0px 0%)']);
    // The mouse: a click a quarter of the way across moves the divider there.
    const box = (await (await page.$('li.result[data-state="done"] .compare'))!.boundingBox())!;
    await page.mouse.click(box.x + box.width / 4, box.y + box.height / 2);
    assert.equal(Math.round(Number((await state())[0])), 25);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('a style reference colorizes the photos again from its global features, as pipe colorize --style does', async () => {
    const { page, errors } = await colorizePage();
    await (await page.$('input#files'))!.uploadFile(join(photos, 'dam.png'));
    await done(page, 1);
    const plain = await pixels(await linkedBytes(page, 'li.result .download'));
    // Read before the upload: the tiny model may colorize again before an $eval after it would run.
    const before = await page.$eval('li.result .download', (a) => a.getAttribute('href'));
    await (await page.$('input#style'))!.uploadFile(join(photos, 'solar.png'));
    await page.waitForFunction((old) => {
      const a = document.querySelector('li.result[data-state="done"] .download');
      return a !== null && a.getAttribute('href') !== old;
    }, { timeout: 60_000 }, before);
    const styled = await expectLikeCli(page, 'li.result .download', join(cli, 'styled', 'dam.png'), 'with a style');
    // The tiny model's global path moves the colours a little (about 68 dB here): the page's styled result is
    // pipe colorize --style's, clearly closer to it than to the result without the style.
    assert.notDeepEqual(styled, plain.rgb);
    const cliPlain = await pixels(readFileSync(join(cli, 'plain', 'dam.png')));
    const cliStyled = await pixels(readFileSync(join(cli, 'styled', 'dam.png')));
    assert.ok(psnr(styled, cliStyled.rgb) > psnr(styled, cliPlain.rgb) + 3, `${psnr(styled, cliStyled.rgb)} vs ${psnr(styled, cliPlain.rgb)} dB`);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test('on WebGPU where Chromium has an adapter (a software one here), the page colorizes as pipe colorize does', async (t) => {
    const { page, errors } = await colorizePage('webgpu');
    if ((await page.evaluate(() => document.body.dataset['model'])) !== 'ready') {
      t.skip(`no WebGPU in this Chromium: ${await page.$eval('#status', (e) => e.textContent)}`);
      return;
    }
    assert.equal(await page.evaluate(() => document.body.dataset['backend']), 'WebGPU');
    await (await page.$('input#files'))!.uploadFile(join(photos, 'dam.png'));
    await done(page, 1);
    assert.equal(await page.$eval('li.result', (li) => (li as HTMLElement).dataset['backend']), 'WebGPU');
    await expectLikeCli(page, 'li.result .download', join(cli, 'plain', 'dam.png'), 'WebGPU');
    assert.deepEqual(errors.filter((e) => !/powerPreference|WebGPU/i.test(e)), []);
    if (process.env.COLORPIPE_SCREENSHOTS) writeFileSync(join(process.env.COLORPIPE_SCREENSHOTS, 'webgpu.png'), await page.screenshot());
    await page.close();
  });
});
