/**
 * The browser tests' Chromium: Debian's (`bash scripts/setup-chromium.sh`), or $COLORPIPE_CHROMIUM, driven by
 * puppeteer-core (which downloads no browser). One browser per test file, headless, with the flags this
 * machine's closed network and root user need and a fresh profile.
 *
 * - Found: the tests run.
 * - None, outside CI: each test file registers one skipped test saying how to enable them.
 * - None with CI=true: a failure, so that CI cannot pass without having run them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { tempDir } from './tar.js';

export const CHROMIUM_HINT = 'bash scripts/setup-chromium.sh';

function find(): string | null {
  for (const p of [process.env.COLORPIPE_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']) {
    if (p && existsSync(p)) return p;
  }
  return null;
}

export const chromium = find();

/** Runs `register` (which declares the file's tests) when Chromium is here; else one skipped test, or a failure in CI. */
export function browserTests(name: string, register: (chromium: string) => void): void {
  if (chromium) {
    register(chromium);
    return;
  }
  const why = `no Chromium (set COLORPIPE_CHROMIUM or run ${CHROMIUM_HINT})`;
  if (/^(1|true)$/i.test(process.env.CI ?? '')) test(`${name}: CI must have Chromium`, () => assert.fail(`CI=true but ${why}`));
  else test(name, { skip: why }, () => undefined);
}

/**
 * A headless Chromium with a fresh profile (closeBrowser closes it and removes the profile: the caller does, in
 * its file's `after`). WebGPU is allowed (--enable-unsafe-webgpu: Chromium's software adapter where there is no
 * GPU); a page asks for it explicitly.
 */
export async function launch(executablePath: string): Promise<Browser> {
  const { dir: profile, cleanup } = tempDir('colorpipe-chromium-');
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--enable-unsafe-webgpu', `--user-data-dir=${profile}`,
    ],
  });
  profiles.set(browser, cleanup);
  return browser;
}

const profiles = new WeakMap<Browser, () => void>();

/** Closes a browser from `launch` (its process has exited when this resolves) and removes its profile. */
export async function closeBrowser(browser: Browser | undefined): Promise<void> {
  if (!browser) return;
  await browser.close();
  profiles.get(browser)?.();
}

/** A new page whose console errors and uncaught exceptions are collected (a test asserts there are none). */
export async function openPage(browser: Browser, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${(e as Error).message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  await page.goto(url);
  return { page, errors };
}

/** The bytes of the file a page's link points at (a blob: URL of the page), fetched in the page. */
export async function linkedBytes(page: Page, selector: string): Promise<Buffer> {
  const b64 = await page.$eval(selector, async (a) => {
    const buf = new Uint8Array(await (await fetch((a as HTMLAnchorElement).href)).arrayBuffer());
    let s = '';
    for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode(...buf.subarray(i, i + 0x8000));
    return btoa(s);
  });
  return Buffer.from(b64, 'base64');
}

/**
 * Drops files on an element as a person drags them from a file manager: a `drop` event whose DataTransfer holds
 * them (puppeteer cannot drag from outside the page).
 */
export async function dropFiles(page: Page, selector: string, files: Array<{ name: string; type: string; bytes: Buffer }>): Promise<void> {
  await page.$eval(selector, (el, list) => {
    const dt = new DataTransfer();
    for (const f of list) dt.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name, { type: f.type }));
    el.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
    el.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, files.map((f) => ({ name: f.name, type: f.type, b64: f.bytes.toString('base64') })));
}
