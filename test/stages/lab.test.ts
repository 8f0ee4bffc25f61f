import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { lab } from '../../src/stages/lab.js';
import { filteredSummary } from '../../src/stages/filter.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import type { DecodedImage } from '../../src/types.js';
import { colourfulRgb } from '../helpers/images.js';
import { waitFor } from '../helpers/wait.js';
import { splitLab } from '../../src/color/lab.js';

const image = (key: string, w: number, h: number, seed: number): DecodedImage => ({
  key, width: w, height: h, rgb: new Uint8Array(colourfulRgb(w, h, seed)), position: { epoch: 0, shardIndex: 0, shard: 's', sample: seed },
});
const grey = (key: string, w: number, h: number): DecodedImage => ({ key, width: w, height: h, rgb: new Uint8Array(w * h * 3).fill(120) });

/** OS threads of this process (Linux), to see a pool's threads come and go. */
const threadCount = (): number => readdirSync('/proc/self/task').length;
const linux = process.platform === 'linux';

test('lab in the piscina pool equals lab inline, in order; buffers are transferred, not copied', async () => {
  const make = () => Array.from({ length: 10 }, (_, i) => image(`i${i}`, 16 + i, 12, i));
  const inline = await collect(pipeline(make(), lab({ pool: 'inline' })));
  const inputs = make();
  const pooled = await collect(pipeline(inputs, lab({ pool: 'piscina', threads: 2 })));
  assert.deepEqual(pooled.map((s) => s.key), inline.map((s) => s.key));
  for (let i = 0; i < inline.length; i++) {
    assert.deepEqual(pooled[i]!.L, inline[i]!.L);
    assert.deepEqual(pooled[i]!.ab, inline[i]!.ab);
    assert.deepEqual(pooled[i]!.position, inputs[i]!.position);
    assert.equal(pooled[i]!.width, 16 + i);
  }
  // The input RGB went to the worker by transfer: its buffer is detached here.
  assert.equal(inputs[0]!.rgb.byteLength, 0);
  // And the values are the network's normalization of the input.
  const ref = splitLab(new Uint8Array(colourfulRgb(16, 12, 0)));
  assert.deepEqual(inline[0]!.L, ref.L);
});

test('the filter drops a grayscale image and keeps a colourful one; drops are counted, not reported', async () => {
  const inputs = [image('colour', 16, 16, 1), grey('grey', 16, 16), image('colour2', 16, 16, 2)];
  for (const pool of ['inline', 'piscina'] as const) {
    const p = pipeline(inputs.map((x) => ({ ...x, rgb: x.rgb.slice() })), lab({ pool, threads: 1, filter: { minMeanChroma: 2, minAbStd: 2 } }));
    const out = await collect(p);
    assert.deepEqual(out.map((s) => s.key), ['colour', 'colour2']);
    assert.equal(p.ctx.reporter.total, 0);
    const f = filteredSummary(p.ctx.reporter);
    assert.equal(f.total, 1);
    assert.deepEqual(f.byReason, { grayscale: 1 });
    assert.deepEqual(f.examples, [{ key: 'grey', reason: 'grayscale' }]);
  }
  // filter: false keeps everything.
  const all = await collect(pipeline([grey('g', 8, 8)], lab({ pool: 'inline', filter: false })));
  assert.equal(all.length, 1);
});

test('at most threads * 2 images in flight; an early break stops the work and ends the pool threads', { timeout: 20_000 }, async () => {
  const threads = 2;
  const bound = threads * 2;
  let pulled = 0;
  let consumed = 0;
  // The most images pulled but not yet consumed, seen at each pull: the stage's in-flight work plus the one
  // the consumer holds (and at most one more being pulled).
  let maxAhead = 0;
  let returned = false;
  async function* source() {
    try {
      for (let i = 0; i < 200; i++) {
        pulled++;
        maxAhead = Math.max(maxAhead, pulled - consumed);
        yield image(`i${i}`, 64, 64, i);
      }
    } finally {
      returned = true;
    }
  }
  const before = linux ? threadCount() : 0;
  let during = 0;
  for await (const _ of pipeline(source(), lab({ threads }))) {
    consumed++;
    if (consumed === 1) {
      // Holding the first result, the stage fills its window and then must stop pulling: wait for the
      // window to fill (the pool threads convert meanwhile, hence a wait on time), then go on.
      assert.ok(await waitFor(() => pulled >= 1 + bound, 15_000), `the stage works ahead while the consumer holds a result: pulled ${pulled}`);
      if (linux) during = threadCount();
    }
    if (consumed === 3) break;
  }
  assert.ok(maxAhead >= bound, `the stage worked ahead: at most ${maxAhead} images at once`);
  assert.ok(maxAhead <= bound + 2, `at most ${maxAhead} pulled ahead of the consumer, bound ${bound} + 2`);
  assert.ok(pulled < 200, `pulled ${pulled}`);
  assert.ok(returned);
  if (linux) {
    assert.ok(during >= before + threads, `threads before ${before}, during ${during}`);
    assert.ok(threadCount() <= before, `threads before ${before}, after ${threadCount()}`);
  }
});

test('options are validated when the factory is called', () => {
  assert.throws(() => lab({ pool: 'gpu' as 'inline' }), InvalidOptionError);
  assert.throws(() => lab({ threads: 0 }), /Expected positive integer for options.threads but received 0/);
  assert.throws(() => lab({ filter: { minMeanChroma: -1 } }), InvalidOptionError);
});
