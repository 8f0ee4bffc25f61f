import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { loader } from '../../../src/train/loader/index.js';
import { pipeline, collect } from '../../../src/core/pipeline.js';
import { Reporter, InvalidOptionError } from '../../../src/core/errors.js';
import { filteredSummary } from '../../../src/stages/filter.js';
import { decodeSettings, decodeSample } from '../../../src/stages/decode.js';
import { rgbToLab } from '../../../src/color/lab.js';
import type { Sample } from '../../../src/types.js';
import { readShard } from '../../../src/webdataset/tar.js';
import { config, keysOf, makeShards, quiet } from './fixtures.js';

let urls = '';
let cleanup = () => undefined as void;
before(async () => ({ urls, cleanup } = await makeShards()));
after(() => cleanup());

test('processes 0, 1 and 2 give the same ordered samples, byte for byte; drops are reported (once) and counted', async () => {
  const runs = [];
  for (const processes of [0, 2, 1]) {
    const p = pipeline(loader({ urls, config, processes, world: 2, seed: 7, epochs: 2 }), { reporter: quiet() });
    runs.push({ out: await collect(p), reporter: p.ctx.reporter });
  }
  const [a, b, c] = runs as [typeof runs[0], typeof runs[0], typeof runs[0]];
  // 25 raw samples an epoch, 1 grayscale and 1 corrupt dropped.
  assert.equal(a.out.length, 2 * 23);
  assert.deepEqual(keysOf(b.out), keysOf(a.out));
  assert.deepEqual(keysOf(c.out), keysOf(a.out));
  for (let i = 0; i < a.out.length; i++) {
    assert.deepEqual(b.out[i]!.L, a.out[i]!.L);
    assert.deepEqual(c.out[i]!.ab, a.out[i]!.ab);
    assert.deepEqual(b.out[i]!.position, a.out[i]!.position);
    assert.equal(b.out[i]!.rank, a.out[i]!.rank);
    assert.equal(b.out[i]!.cls, Number(a.out[i]!.key.split('-')[1]));
  }
  for (const { reporter } of runs) {
    // The corrupt image is reported once per run, not once per epoch (merge.ts OncePerRun); filtering is counted.
    assert.deepEqual(reporter.records.map((r) => [r.stage, r.key.endsWith('#s3-2')]), [['decode', true]]);
    assert.deepEqual(filteredSummary(reporter).byReason, { grayscale: 2 });
  }
  // Different epochs permute the shards and crop differently.
  assert.notDeepEqual(keysOf(a.out.slice(0, 23)).map((k) => k.split('@')[0]), keysOf(a.out.slice(23)).map((k) => k.split('@')[0]));
  const differs = a.out.slice(0, 23).filter((s0) => {
    const s1 = a.out.find((s) => s.key === s0.key && s.position.epoch === 1)!;
    return Buffer.compare(Buffer.from(s0.L.buffer), Buffer.from(s1.L.buffer)) !== 0;
  });
  assert.ok(differs.length > 15, `${differs.length} of 23 crops differ between epochs`);
});

test('the samples are the train-mode crop in Lab, quantized to one byte per value', async () => {
  const out = await collect(pipeline(loader({ urls, config, processes: 0, world: 1, seed: 1, epochs: 1 }), { reporter: quiet() }));
  const s = out[0]!;
  assert.equal(s.width, 16);
  assert.equal(s.L.length, 256);
  assert.equal(s.ab.length, 512);
  // Compare with the RGB decode of the same crop converted by src/color.ts.
  let sample: Sample | undefined;
  for await (const x of readShard(s.position.shard, { signal: new AbortController().signal, reporter: quiet() })) {
    if (x.index === s.position.sample) sample = { ...x, position: s.position };
  }
  assert.ok(sample);
  const rgb = await decodeSample(sample, decodeSettings({ mode: 'train', resize: 18, crop: 16, seed: 1 }));
  const lab = rgbToLab(rgb.rgb);
  for (let i = 0; i < 256; i++) {
    assert.ok(Math.abs(s.L[i]! * 100 - lab[3 * i]!) < 0.3, `L ${i}`);
    assert.ok(Math.abs(s.ab[2 * i]! * 255 - 128 - lab[3 * i + 1]!) < 0.6, `a ${i}`);
    assert.ok(Math.abs(s.ab[2 * i + 1]! * 255 - 128 - lab[3 * i + 2]!) < 0.6, `b ${i}`);
  }
});

test("with onError 'fail' the first bad input in a child ends the run", async () => {
  const reporter = new Reporter({ onError: 'fail', log: null });
  await assert.rejects(collect(pipeline(loader({ urls, config, processes: 2, seed: 1 }), { reporter })), /s3-2/);
});

test('options are validated when the factory is called, in the one message style', () => {
  assert.throws(() => loader({ urls, config, processes: -1 }), /^InvalidOptionError: Expected non-negative integer for options.processes but received -1$/);
  assert.throws(() => loader({ urls, config, epochs: 0 }), /Expected positive integer for options.epochs but received 0/);
  assert.throws(() => loader({ urls, config, seed: NaN }), /Expected finite number for options.seed but received NaN/);
  assert.throws(() => loader({ urls, config, concurrency: 0 }), /for options.concurrency/);
  assert.throws(() => loader({ urls, config: {} as never }), /Expected a Config \(makeConfig \/ loadConfig\) for options.config but received an object/);
  assert.throws(() => loader(null as never), /Expected object for options but received null/);
  assert.throws(() => loader({ urls, config, startEpoch: 2, resume: { epoch: 1, after: {} } }), /Expected integer in \[2, 2\] for options.resume.epoch but received 1/);
  assert.throws(() => loader({ urls, config, world: 2, resume: { epoch: 0, world: 3, after: {} } }), /Expected options.resume.world \(3\) for options.world but received 2/);
  assert.throws(() => loader({ urls, config, epochs: Infinity, world: 0 }), InvalidOptionError);
});

test('a world larger than the shard list is an error at the first next()', async () => {
  const source = loader({ urls, config, processes: 0, world: 6 });
  await assert.rejects(collect(pipeline(source, { reporter: quiet() })), /Expected at most 5 ranks \(one per shard\) for options.world but received 6/);
});
