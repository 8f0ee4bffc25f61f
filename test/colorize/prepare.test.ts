import { test } from 'node:test';
import assert from 'node:assert/strict';
import { prepare } from '../../src/colorize/prepare.js';
import { prepareImage, prepareSettings, type PreparedImage } from '../../src/colorize/image.js';
import { createColorizePool } from '../../src/colorize/pool.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { InvalidOptionError, Reporter } from '../../src/core/errors.js';
import type { Sample } from '../../src/types.js';
import { animatedGif, badInputs, jpeg, multiPageTiff, png } from '../helpers/images.js';

const sample = (key: string, image: Buffer, ext = 'jpg'): Sample => ({ key, url: `/in/${key}.${ext}`, relPath: `${key}.${ext}`, image, imageExt: ext, fields: {} });

test('options are validated at once', () => {
  assert.throws(() => prepare({ resolution: 0 }), InvalidOptionError);
  assert.throws(() => prepare({ resolution: 'big' as never }), InvalidOptionError);
  assert.throws(() => prepare({ globalSize: 12 }), InvalidOptionError);
  assert.throws(() => prepare({ pool: 'threads' as never }), InvalidOptionError);
  assert.throws(() => prepare({ concurrency: 0 }), InvalidOptionError);
});

async function mixed(): Promise<Sample[]> {
  const bad = await badInputs();
  return [
    sample('good1', await jpeg(24, 16, 1)),
    sample('empty', bad.empty!),
    sample('good2', await png(16, 16, 2), 'png'),
    sample('text', bad.text!),
    sample('truncated', bad.truncated!),
    sample('good3', await jpeg(16, 24, 3)),
  ];
}

for (const mode of ['inline', 'pool'] as const) {
  test(`prepare stage (${mode}): bad inputs reported with path and reason, the rest in order`, async (t) => {
    const lines: string[] = [];
    const reporter = new Reporter({ log: (l) => lines.push(l) });
    const pool = mode === 'pool' ? createColorizePool(2) : 'inline';
    if (pool !== 'inline') t.after(() => pool.destroy());
    const out = await collect(pipeline(await mixed(), prepare({ globalSize: 16, pool }), { reporter }));
    assert.deepEqual(out.map((p) => p.key), ['good1', 'good2', 'good3']);
    assert.equal(reporter.total, 3);
    assert.deepEqual(reporter.records.map((r) => r.key), ['/in/empty.jpg', '/in/text.jpg', '/in/truncated.jpg']);
    assert.ok(lines.every((l) => l.includes('(decode)')));
    // Planes come back whole across the thread boundary.
    const direct = await prepareImage((await mixed())[0]!, prepareSettings({ globalSize: 16 }));
    assert.deepEqual(out[0]!.L, direct.L);
    assert.deepEqual(out[0]!.global, direct.global);
    assert.deepEqual(out[0]!.local, direct.local);
  });
}

test('prepare stage: an early break stops the source and destroys its own pool', async () => {
  let pulled = 0;
  let closed = false;
  const img = await jpeg(16, 16);
  const src = async function* () {
    try {
      for (let i = 0; i < 1000; i++) {
        pulled++;
        yield sample(`k${i}`, img);
      }
    } finally {
      closed = true;
    }
  };
  const got: PreparedImage[] = [];
  for await (const p of pipeline(src(), prepare({ globalSize: 8, threads: 1, concurrency: 2 }))) {
    got.push(p);
    if (got.length === 2) break;
  }
  assert.ok(closed);
  assert.ok(pulled <= 5, `pulled ${pulled}`);
});

test('onError fail: the first bad input ends the stream', async () => {
  const reporter = new Reporter({ onError: 'fail', log: null });
  await assert.rejects(collect(pipeline(await mixed(), prepare({ globalSize: 16, pool: 'inline' }), { reporter })), /empty\.jpg: empty image file/);
});

test('an animated GIF or multi-page TIFF is prepared from its first frame, with one notice naming its path (through the pool too)', async (t) => {
  const lines: string[] = [];
  const reporter = new Reporter({ log: (l) => lines.push(l) });
  const pool = createColorizePool(2);
  t.after(() => pool.destroy());
  const samples = [sample('anim', await animatedGif(24, 20, 5), 'gif'), sample('pages', await multiPageTiff(24, 20, 3), 'tif'), sample('still', await png(16, 16, 2), 'png')];
  const out = await collect(pipeline(samples, prepare({ globalSize: 16, pool }), { reporter }));
  assert.deepEqual(out.map((p) => [p.key, p.width, p.height]), [['anim', 24, 20], ['pages', 24, 20], ['still', 16, 16]]);
  assert.equal(reporter.total, 0, 'not failures');
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /\/in\/anim\.gif.*animated GIF with 5 frames: only the first is used/);
  assert.match(lines[1]!, /\/in\/pages\.tif.*3 pages: only the first is used/);
});
