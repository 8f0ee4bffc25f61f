/**
 * The runs view in a real browser (headless Chromium) while `pipe train` writes the run: its step count rises
 * on the page as metrics.jsonl grows (server-sent events), its curves and the sample grid of its first checkpoint
 * appear, and it links to colorize with the run's model.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'puppeteer-core';
import { webAssets } from '../../src/serve/assets.js';
import { serve, type Served } from '../../src/serve/server.js';
import { browserTests, closeBrowser, launch, openPage } from '../helpers/browser.js';
import { finish, start } from '../helpers/cli.js';
import { FIXTURES, ROOT, tempDir } from '../helpers/tar.js';

browserTests('the runs view in Chromium', (chromium) => {
  const { dir, cleanup } = tempDir('colorpipe-runs-view-');
  let browser: Browser | undefined;
  let served: Served | undefined;
  after(async () => {
    await closeBrowser(browser);
    await served?.close();
    cleanup();
  });

  test('a run still training shows its step rising, its curves and its first checkpoint, with a link to colorize with it', async (t) => {
    const runs = join(dir, 'runs');
    // The tiny config: a line of metrics every 5 steps, a checkpoint (and its sample grid) every 20. Far more
    // steps than the test waits for: it stops the run (Ctrl-C) once it has seen what it looks for.
    // The engine pinned: the facts below name it.
    const train = start(['train', '--shards', join(FIXTURES, 'shards', 'data-*.tar'), '--out', join(runs, 'live'), '--config', join(ROOT, 'configs', 'tiny.json'), '--steps', '2000', '--engine', 'onnx', '--quiet']);
    const trained = finish(train, 180_000);
    // A failed assertion leaves the run training: it ends before the folder is removed.
    t.after(async () => {
      if (train.exitCode === null && train.signalCode === null) train.kill('SIGKILL');
      await trained;
    });
    served = await serve({ runs, assets: webAssets(), port: 0, limits: { pollMs: 200 } });
    browser = await launch(chromium);
    const { page, errors } = await openPage(browser, `${served.url}runs`);
    const step = async () => Number(await page.$eval('.step[data-run="live"]', (e) => (e as HTMLElement).dataset['step']));
    await page.waitForSelector('.step[data-run="live"][data-step]', { timeout: 120_000 });
    await page.waitForFunction(() => Number(document.querySelector<HTMLElement>('.step[data-run="live"]')?.dataset['step'] ?? 0) >= 5, { timeout: 120_000 });
    const seen = await step();
    await page.waitForFunction((s) => Number(document.querySelector<HTMLElement>('.step[data-run="live"]')?.dataset['step'] ?? 0) > s, { timeout: 120_000 }, seen);
    assert.ok((await step()) > seen, 'the step count rose while the run trained');
    // The first checkpoint's sample grid, the loss curve drawn, the facts of the run.
    await page.waitForSelector('article[data-run="live"] .samples img[data-file="step-00000020.png"]', { timeout: 120_000 });
    assert.ok((await page.$$('article[data-run="live"] svg.chart polyline')).length >= 1);
    const facts = await page.$eval('article[data-run="live"] .facts', (e) => e.textContent ?? '');
    assert.match(facts, /engineonnx \/ cpu/);
    assert.match(facts, /model32 px, width 0\.125, 4 classes/);
    assert.equal(await page.$eval('article[data-run="live"] a.use', (a) => a.getAttribute('href')), './?run=live');
    if (process.env.COLORPIPE_SCREENSHOTS) writeFileSync(join(process.env.COLORPIPE_SCREENSHOTS, 'runs-live.png'), await page.screenshot({ fullPage: true }));
    assert.match(await page.$eval('.step[data-run="live"]', (e) => e.textContent ?? ''), /^step \d+ of 2000$/);
    train.kill('SIGINT');
    assert.equal((await trained).status, 130);
    assert.deepEqual(errors, []);
  });
});
