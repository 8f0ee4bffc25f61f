import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { tmpDir } from '../helpers/tar.js';
import { writeReport, readMetrics, makeGrid, svgChart } from '../../src/train/report.js';

test('readMetrics skips a partial last line; writeReport draws curves and links grids', async (t) => {
  const dir = tmpDir(t);
  writeFileSync(join(dir, 'metrics.jsonl'), [
    JSON.stringify({ step: 10, loss: 0.5, mse: 0.4, ce: 1, img_per_s: 10, data_stall: 0.1, backend: 'wasm' }),
    JSON.stringify({ type: 'val', step: 10, loss: 0.4, psnr: 22, psnr_gray: 21 }),
    JSON.stringify({ step: 20, loss: 0.3, mse: 0.2, ce: 1, img_per_s: 12, data_stall: 0.05, backend: 'wasm' }),
    '{"step": 30, "lo',
  ].join('\n'));
  const m = await readMetrics(dir);
  assert.deepEqual(m.steps.map((s) => s.step), [10, 20]);
  assert.equal(m.val.length, 1);
  mkdirSync(join(dir, 'samples'));
  writeFileSync(join(dir, 'samples', 'step-00000020.png'), await makeGrid([[{ width: 2, height: 2, rgb: new Uint8Array(12).fill(200) }]], 8));
  const path = await writeReport({ runDir: dir, title: 'T <x>' });
  const html = readFileSync(path, 'utf8');
  assert.match(html, /T &lt;x&gt;/);
  assert.equal((html.match(/<svg/g) ?? []).length, 4);
  assert.match(html, /src="samples\/step-00000020\.png"/);
  assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/, 'self-contained: no scripts, no network');
});

test('makeGrid lays rows and columns out in one PNG', async () => {
  const cell = { width: 4, height: 4, rgb: new Uint8Array(48).fill(10) };
  const png = await makeGrid([[cell, cell, cell], [cell, cell, cell]], 16, 2);
  const meta = await sharp(png).metadata();
  assert.equal(meta.width, 3 * 16 + 4 * 2);
  assert.equal(meta.height, 2 * 16 + 3 * 2);
});

test('svgChart with no data says so', () => {
  assert.match(svgChart('x', [{ name: 'a', color: '#000', points: [] }]), /no data yet/);
});
