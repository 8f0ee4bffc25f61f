/**
 * The browser page's benchmark (BENCHMARKS.md, "pipe serve"), in headless Chromium on this machine: a run's model
 * colorizing a 1024-pixel and a 6000 x 4000 JPEG in the page (WebAssembly; WebGPU, on whatever adapter Chromium
 * finds, as a correctness run against pipe colorize) against `pipe colorize` on the same images and run; the
 * model's load time cold (a fresh browser profile) and cached (the next visit); the longest main-thread task
 * while the page colorizes the 24-megapixel photo. With --screenshots DIR it also takes the README's pictures
 * of both pages. Prints one JSON object.
 *
 * Usage: node dist/scripts/bench-web.js --run runs/demo [--photo demo/photos/heldout/X.jpg] [--rounds 3]
 *        [--screenshots docs/] [--chromium /usr/bin/chromium]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import type { Page } from 'puppeteer-core';
import { psnr } from '../src/color/metrics.js';
import { webAssets } from '../src/serve/assets.js';
import { serve } from '../src/serve/server.js';
import type { Timings } from '../src/web/api.js';
import { closeBrowser, launch, linkedBytes, openPage } from '../test/helpers/browser.js';
import { median } from '../bench/args.js';

const { values: a } = parseArgs({
  options: {
    run: { type: 'string' },
    photo: { type: 'string' },
    rounds: { type: 'string', default: '3' },
    screenshots: { type: 'string' },
    chromium: { type: 'string', default: process.env.COLORPIPE_CHROMIUM ?? '/usr/bin/chromium' },
  },
});
if (!a.run) throw new Error('--run runs/NAME is required');
const run = path.resolve(a.run);
const rounds = Number(a.rounds);
const cli = path.resolve('dist/src/cli.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'colorpipe-bench-web-'));

/**
 * The test photos: one photo scaled to 1024 on its long side and to 6000 x 4000, as JPEG (quality 90), and the
 * 1024 one as PNG for the WebGPU correctness run (lossless outputs to compare).
 */
async function photos(): Promise<{ jpeg: Record<string, string>; png: string }> {
  const src = a.photo ?? path.join('demo/photos/heldout', readdirSync('demo/photos/heldout').find((f) => /windmill|dam/.test(f))!);
  const jpeg: Record<string, string> = {};
  for (const [name, w, h] of [['1024px', 1024, 683], ['6000x4000', 6000, 4000]] as const) {
    jpeg[name] = path.join(tmp, `${name}.jpg`);
    await sharp(src).resize(w, h, { fit: 'fill', kernel: 'lanczos3' }).jpeg({ quality: 90 }).toFile(jpeg[name]);
  }
  const png = path.join(tmp, 'webgpu.png');
  await sharp(jpeg['1024px']!).png().toFile(png);
  return { jpeg, png };
}

/** pipe colorize on one photo (output in its format, as the page's): the process's wall time and the time it reports. */
function cliColorize(photo: string, out: string): { wallMs: number; reportedMs: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [cli, 'colorize', '--in', photo, '--out', out, '--model', run, '--overwrite'], { encoding: 'utf8' });
  const wallMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(r.stderr);
  const reported = /of 1 in ([\d.]+) s/.exec(r.stderr);
  return { wallMs, reportedMs: reported ? Number(reported[1]) * 1000 : NaN };
}

async function waitModel(page: Page): Promise<{ status: string }> {
  await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset['model'] ?? ''), { timeout: 300_000 });
  return { status: await page.$eval('#status', (e) => e.textContent ?? '') };
}

/** Colorizes `photo` in the page; the worker's timings and the longest main-thread task meanwhile. */
async function pageColorize(page: Page, photo: string, n: number): Promise<{ timings: Timings; longestTaskMs: number }> {
  await page.evaluate(() => {
    const w = window as unknown as { longest: number };
    w.longest = 0;
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) w.longest = Math.max(w.longest, e.duration);
    }).observe({ type: 'longtask' });
  });
  await (await page.$('input#files'))!.uploadFile(photo);
  await page.waitForFunction((k) => document.querySelectorAll('li.result[data-state="done"]').length >= k || document.querySelector('li.result[data-state="error"]'), { timeout: 600_000 }, n);
  const err = await page.$('li.result[data-state="error"]');
  if (err) throw new Error(await err.$eval('.meta', (e) => e.textContent ?? ''));
  const timings = JSON.parse(await page.$eval('li.result', (li) => (li as HTMLElement).dataset['timings'] ?? '{}')) as Timings;
  return { timings, longestTaskMs: await page.evaluate(() => (window as unknown as { longest: number }).longest) };
}

async function main(): Promise<void> {
  const files = await photos();
  const served = await serve({ runs: path.dirname(run), assets: webAssets(), port: 0 });
  const url = `${served.url}?run=${encodeURIComponent(path.basename(run))}`;
  const result: Record<string, unknown> = { chromium: spawnSync(a.chromium!, ['--version'], { encoding: 'utf8' }).stdout.trim(), cores: os.availableParallelism(), run: a.run };
  try {
    // Cold: a fresh profile (no cached model, no compiled WebAssembly); cached: the same browser, the page again.
    let browser = await launch(a.chromium!);
    const { page } = await openPage(browser, `${url}&ep=wasm`);
    const cold = await waitModel(page);
    await page.reload();
    const cached = await waitModel(page);
    const ms = (s: string) => Number(/loaded in ([\d.]+) s/.exec(s)?.[1]) * 1000;
    result['modelLoad'] = { coldMs: ms(cold.status), cachedMs: ms(cached.status), status: cached.status };
    const sizes: Record<string, unknown> = {};
    let n = 0;
    for (const [name, photo] of Object.entries(files.jpeg)) {
      const inPage: Array<{ timings: Timings; longestTaskMs: number }> = [];
      for (let i = 0; i < rounds; i++) inPage.push(await pageColorize(page, photo, ++n));
      const cliRuns = Array.from({ length: rounds }, () => cliColorize(photo, path.join(tmp, `cli-${name}`)));
      sizes[name] = {
        pageWasmMs: median(inPage.map((p) => p.timings.total)),
        pageStagesMs: inPage.at(-1)!.timings,
        pageLongestMainThreadTaskMs: Math.max(...inPage.map((p) => p.longestTaskMs)),
        cliWallMs: median(cliRuns.map((c) => c.wallMs)),
        cliReportedMs: median(cliRuns.map((c) => c.reportedMs)),
      };
    }
    result['colorize'] = sizes;
    await page.close();
    await closeBrowser(browser);
    // WebGPU: a correctness run on the 1024-pixel photo against pipe colorize (software adapters are not timed).
    browser = await launch(a.chromium!);
    const g = await openPage(browser, `${url}&ep=webgpu`);
    const gs = await waitModel(g.page);
    if (gs.status.includes('WebGPU')) {
      const r = await pageColorize(g.page, files.png, 1);
      cliColorize(files.png, path.join(tmp, 'cli-png'));
      const got = new Uint8Array(await sharp(await linkedBytes(g.page, 'li.result .download')).removeAlpha().raw().toBuffer());
      const want = new Uint8Array(await sharp(path.join(tmp, 'cli-png', 'webgpu.png')).removeAlpha().raw().toBuffer());
      result['webgpu'] = { psnrVsCliDb: Number(psnr(got, want).toFixed(2)), totalMs: r.timings.total, status: gs.status };
    } else {
      result['webgpu'] = { unavailable: gs.status };
    }
    await closeBrowser(browser);
    if (a.screenshots) await screenshots(a.chromium!, served.url, path.resolve(a.screenshots));
  } finally {
    await served.close();
    rmSync(tmp, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(result, null, 1) + '\n');
}

/** The README's pictures: the colorize view with three held-apart photos, and the runs view of the run. */
async function screenshots(chromium: string, base: string, dir: string): Promise<void> {
  const browser = await launch(chromium);
  try {
    const { page } = await openPage(browser, `${base}?run=${encodeURIComponent(path.basename(run))}&ep=wasm`);
    await page.setViewport({ width: 1100, height: 900 });
    await waitModel(page);
    // A held-apart photo as a user would bring one: in black and white.
    const held = readdirSync('demo/photos/heldout').find((f) => /dam2/.test(f))!;
    const gray = path.join(tmp, held.replace(/^.*__categorization-/, ''));
    await sharp(path.resolve('demo/photos/heldout', held)).grayscale().jpeg({ quality: 92 }).toFile(gray);
    await (await page.$('input#files'))!.uploadFile(gray);
    await page.waitForSelector('li.result[data-state="done"]', { timeout: 120_000 });
    // The before/after images decode after the result is in the page: the picture waits for them.
    await page.waitForFunction(() => {
      const imgs = [...document.querySelectorAll<HTMLImageElement>('li.result[data-state="done"] img')];
      return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
    }, { timeout: 30_000 });
    writeFileSync(path.join(dir, 'serve-colorize.jpg'), await page.screenshot({ type: 'jpeg', quality: 85 }));
    await page.goto(`${base}runs`);
    await page.waitForSelector(`article[data-run="${path.basename(run)}"] svg.chart polyline`, { timeout: 60_000 });
    writeFileSync(path.join(dir, 'serve-runs.jpg'), await page.screenshot({ type: 'jpeg', quality: 85 }));
  } finally {
    await closeBrowser(browser);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-web: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
