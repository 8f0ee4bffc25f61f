import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir, writeFile, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { write, writeOutput } from '../../src/colorize/write.js';
import { createColorizePool } from '../../src/colorize/pool.js';
import type { PredictedImage } from '../../src/colorize/predict.js';
import { lightness } from '../../src/color/lightness.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { InvalidOptionError, Reporter } from '../../src/core/errors.js';
import { colourfulRgb } from '../helpers/images.js';
import { tmpDir } from '../helpers/tar.js';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('writeOutput: atomic, never clobbers without overwrite, leaves no temp file', async (t) => {
  const dir = tmpDir(t, 'cp-write-');
  const target = path.join(dir, 'sub', 'a.png');
  assert.equal(await writeOutput(target, Buffer.from('one'), false), 'written');
  assert.equal(await writeOutput(target, Buffer.from('two'), false), 'exists');
  assert.equal(await readFile(target, 'utf8'), 'one');
  assert.equal(await writeOutput(target, Buffer.from('three'), true), 'written');
  assert.equal(await readFile(target, 'utf8'), 'three');
  assert.deepEqual(await readdir(path.join(dir, 'sub')), ['a.png']);
});

function predicted(key: string, w: number, h: number, seed: number, extra: Partial<PredictedImage> = {}): PredictedImage {
  const rgb = colourfulRgb(w, h, seed);
  const L = lightness(rgb);
  const abW = Math.ceil(w / 2), abH = Math.ceil(h / 2);
  const ab = new Float32Array(abW * abH * 2).map((_, i) => (128 + ((i * 7) % 40) - 20) / 255);
  return {
    key, relPath: `${key}.jpg`, width: w, height: h, L, localWidth: abW * 2, localHeight: abH * 2, local: new Float32Array(0),
    globalSize: 8, global: new Float32Array(0), format: 'jpeg', ab, abWidth: abW, abHeight: abH, ...extra,
  };
}

for (const mode of ['inline', 'pool'] as const) {
  test(`write stage (${mode}): files under out at the relative path, L kept, existing ones skipped`, async (t) => {
    const dir = tmpDir(t, 'cp-writes-');
    const pool = mode === 'pool' ? createColorizePool(2) : 'inline';
    if (pool !== 'inline') t.after(() => pool.destroy());
    const out = path.join(dir, 'out');
    await mkdir(out, { recursive: true });
    await writeFile(path.join(out, 'c.png'), 'existing');
    const items = [
      predicted('a', 20, 12, 1, { relPath: 'sub/a.jpg' }),
      predicted('b', 9, 7, 2, { relPath: 'b.jpg' }),
      predicted('c', 8, 8, 3, { relPath: 'c.jpg' }),
    ];
    const wantL = items.map((p) => Float32Array.from(p.L));
    const res = await collect(pipeline(items, write({ out, format: 'png', pool })));
    assert.deepEqual(res.map((r) => [r.relPath, r.status]), [['sub/a.png', 'written'], ['b.png', 'written'], ['c.png', 'skipped']]);
    assert.equal(await readFile(path.join(out, 'c.png'), 'utf8'), 'existing');
    for (const [i, rel] of [[0, 'sub/a.png'], [1, 'b.png']] as const) {
      const { data, info } = await sharp(path.join(out, rel)).raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual([info.width, info.height], [items[i]!.width, items[i]!.height]);
      const dL = maxAbsDiff(lightness(data).map((v) => v * 100), wantL[i]!.map((v) => v * 100));
      assert.ok(dL <= 1, `max |dL| ${dL}`);
    }
    assert.deepEqual((await readdir(out)).sort(), ['b.png', 'c.png', 'sub']);
  });
}

test('write stage: a target inside the input is refused and reported; out null returns bytes', async (t) => {
  const dir = tmpDir(t, 'cp-writein-');
  const input = path.join(dir, 'in');
  await mkdir(input);
  const reporter = new Reporter({ log: null });
  // out contains in: 'in/x.jpg' relative to out lands inside the input.
  const res = await collect(pipeline([predicted('x', 8, 8, 1, { relPath: 'in/x.jpg' }), predicted('y', 8, 8, 2, { relPath: 'y.jpg' })],
    write({ out: dir, input, pool: 'inline', format: 'same' }), { reporter }));
  assert.deepEqual(res.map((r) => r.relPath), ['y.jpg']);
  assert.equal(reporter.total, 1);
  assert.match(reporter.records[0]!.reason, /inside the input/);
  assert.deepEqual(await readdir(input), []);
  const mem = await collect(pipeline([predicted('z', 8, 6, 3)], write({ out: null, format: 'webp', pool: 'inline' })));
  assert.equal(mem[0]!.status, 'encoded');
  assert.equal((await sharp(mem[0]!.data!).metadata()).format, 'webp');
  assert.equal(mem[0]!.relPath, 'z.webp');
  await assert.rejects(stat(path.join(dir, 'z.webp')));
});

test('options are validated at once', () => {
  assert.throws(() => write({ out: '' }), InvalidOptionError);
  assert.throws(() => write({ out: 'x', format: 'bmp' as never }), InvalidOptionError);
  assert.throws(() => write({ out: 'x', quality: 0 }), InvalidOptionError);
  assert.throws(() => write({ out: 'x', quality: 101 }), InvalidOptionError);
  assert.throws(() => write({ out: 'x', overwrite: 'yes' as never }), InvalidOptionError);
});
