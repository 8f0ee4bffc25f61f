/**
 * `pipe export --web DIR`: the colorize page and the model as static files. Served by a plain static file server
 * (no special headers: no cross-origin isolation, so one WebAssembly thread), the page colorizes a photo as
 * `pipe colorize` does and keeps the model in the browser's cache for the next visit.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import sharp from 'sharp';
import type { Browser } from 'puppeteer-core';
import { psnr } from '../../src/color/metrics.js';
import type { ModelList } from '../../src/web/api.js';
import { browserTests, closeBrowser, launch, linkedBytes, openPage } from '../helpers/browser.js';
import { exited, pipe } from '../helpers/cli.js';
import { tinyModel } from '../helpers/model.js';
import { FIXTURES, tempDir } from '../helpers/tar.js';

const { dir, cleanup } = tempDir('colorpipe-export-web-');
const run = join(dir, 'runs', 'tiny');
const site = join(dir, 'site');

before(async () => {
  await tinyModel(join(run, 'model'), { trainingScale: { shortSide: 96, crop: 64 } });
});
after(cleanup);

test('pipe export --web writes the page, its assets and the model; it refuses --out beside it and a folder of other files', () => {
  const r = pipe(['export', '--model', run, '--web', site]);
  exited(r, 0);
  assert.match(r.stderr, /^colorpipe: wrote .*index\.html and its model \([\d.]+ MB in all\)/m);
  assert.deepEqual(readdirSync(site).sort(), ['assets', 'index.html', 'model.onnx', 'models.json']);
  assert.ok(readdirSync(join(site, 'assets')).includes('ort-wasm-simd-threaded.jsep.wasm'));
  const list = JSON.parse(readFileSync(join(site, 'models.json'), 'utf8')) as ModelList;
  assert.deepEqual(list.models.map((m) => [m.name, m.url, m.inputSize, m.trainingScale]), [['tiny', 'model.onnx', 32, { shortSide: 96, crop: 64 }]]);
  assert.equal(list.mode, 'static');
  // Again into the same folder: an earlier export is replaced.
  exited(pipe(['export', '--model', run, '--web', site, '--quiet']), 0);
  const both = pipe(['export', '--model', run, '--web', site, '--out', join(dir, 'x.onnx')]);
  exited(both, 2);
  assert.match(both.stderr, /--out names the \.onnx file and --web a folder: give one/);
  const other = join(dir, 'other');
  mkdirSync(other);
  writeFileSync(join(other, 'notes.txt'), 'mine');
  const refused = pipe(['export', '--model', run, '--web', other]);
  exited(refused, 1);
  assert.match(refused.stderr, /other is not empty and holds no earlier web export/);
  assert.equal(readFileSync(join(other, 'notes.txt'), 'utf8'), 'mine');
});

/** A plain static file server: files by path with a content type, nothing else (no isolation, no policy). */
function staticServer(root: string): Promise<Server> {
  const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.wasm': 'application/wasm', '.svg': 'image/svg+xml' };
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    let file = join(root, path);
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file)) return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': types[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

browserTests('a pipe export --web folder in Chromium', (chromium) => {
  let browser: Browser | undefined;
  let server: Server | undefined;
  after(async () => {
    await closeBrowser(browser);
    server?.close();
    server?.closeAllConnections();
  });

  test('from a plain static server, the exported page colorizes as pipe colorize does and keeps the model in the browser', async () => {
    if (!existsSync(join(site, 'index.html'))) exited(pipe(['export', '--model', run, '--web', site, '--quiet']), 0);
    const photo = join(dir, 'dam.png');
    await sharp(join(FIXTURES, 'images', 'renewable', 'dam2.jpg')).resize(320, 240, { fit: 'fill' }).png().toFile(photo);
    exited(pipe(['colorize', '--in', photo, '--out', join(dir, 'cli'), '--model', run, '--engine', 'onnx', '--format', 'png']), 0);
    server = await staticServer(site);
    browser = await launch(chromium);
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/?ep=wasm`;
    const { page, errors } = await openPage(browser, url);
    await page.waitForFunction(() => document.body.dataset['model'] === 'ready', { timeout: 60_000 });
    assert.match(await page.$eval('#status', (e) => e.textContent ?? ''), /^tiny on WebAssembly \(1 thread\): loaded in [\d.]+ s$/);
    assert.equal(await page.$eval('#runs-link', (a) => (a as HTMLElement).hidden), true, 'no runs view in a static folder');
    await (await page.$('input#files'))!.uploadFile(photo);
    await page.waitForSelector('li.result[data-state="done"]', { timeout: 120_000 });
    const got = await sharp(await linkedBytes(page, 'li.result .download')).removeAlpha().raw().toBuffer();
    const want = await sharp(join(dir, 'cli', 'dam.png')).removeAlpha().raw().toBuffer();
    const db = psnr(new Uint8Array(got), new Uint8Array(want));
    assert.ok(db >= 40, `${db.toFixed(1)} dB against pipe colorize`);
    // The next visit takes the model from the browser's cache.
    await page.reload();
    await page.waitForFunction(() => document.body.dataset['model'] === 'ready', { timeout: 60_000 });
    assert.match(await page.$eval('#status', (e) => e.textContent ?? ''), /\(from the browser’s cache\)$/);
    assert.deepEqual(errors, []);
  });
});
