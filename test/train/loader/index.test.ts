import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loader, LoaderCursor, trackCursor, FrameParser, encodeFrame, type LoaderSample, type Frame } from '../../../src/train/loader/index.js';
import { pipeline, collect } from '../../../src/core/pipeline.js';
import { Reporter, InvalidOptionError, ColorpipeError } from '../../../src/core/errors.js';
import { makeConfig } from '../../../src/config.js';
import { filteredSummary } from '../../../src/stages/filter.js';
import { decodeSettings, decodeSample } from '../../../src/stages/decode.js';
import { rgbToLab } from '../../../src/color/lab.js';
import type { Sample, ShardPosition } from '../../../src/types.js';
import { readShard } from '../../../src/webdataset/tar.js';
import { jpeg, png, writeTar, type ShardMember } from '../../helpers/images.js';
import sharp from 'sharp';

// 16x16 crops of 18-pixel short sides: tiny, so each test runs in well under a second of decode work.
const config = makeConfig({ model: { inputSize: 16 } });
let dir = '';
let urls = '';
const quiet = () => new Reporter({ log: null });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'colorpipe-loader-'));
  const greyJpeg = await sharp({ create: { width: 30, height: 24, channels: 3, background: { r: 128, g: 128, b: 128 } } }).jpeg().toBuffer();
  // 5 shards of uneven length, one grayscale image and one corrupt one, classes in .cls.
  const lengths = [7, 3, 6, 5, 4];
  for (let s = 0; s < lengths.length; s++) {
    const members: ShardMember[] = [];
    for (let i = 0; i < lengths[s]!; i++) {
      const key = `s${s}-${i}`;
      let image = i % 2 ? await jpeg(30 + i, 24, s * 10 + i) : await png(24, 28 + i, s * 10 + i);
      if (s === 2 && i === 1) image = greyJpeg;
      if (s === 3 && i === 2) image = Buffer.from('not an image at all');
      members.push({ name: `${key}.${i % 2 ? 'jpg' : 'png'}`, data: image }, { name: `${key}.cls`, data: String(i) });
    }
    await writeTar(join(dir, `train-${s}.tar`), members);
  }
  urls = join(dir, 'train-{0..4}.tar');
});

after(() => rmSync(dir, { recursive: true, force: true }));

const keysOf = (xs: LoaderSample[]) => xs.map((s) => `${s.key}@${s.position.epoch}`);

/** Pids of this process's children (Linux /proc). */
function childPids(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
const linux = process.platform === 'linux';

test('processes 0, 1 and 2 give the same ordered samples, byte for byte; drops are reported and counted', async () => {
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
    assert.deepEqual(reporter.records.map((r) => [r.stage, r.key.endsWith('#s3-2')]), [['decode', true], ['decode', true]]);
    assert.deepEqual(filteredSummary(reporter).byReason, { grayscale: 2 });
  }
  // Rank r reads shard indices i with i % 2 === r; within an epoch the samples come in the order of
  // (shard's place in its rank's list, index in shard, rank): ranks take turns by raw sample.
  for (const s of a.out) assert.equal(s.position.shardIndex % 2, s.rank);
  const key = (s: LoaderSample) => [s.position.epoch, Math.floor(s.position.shardIndex / 2), s.position.sample, s.rank];
  for (let i = 1; i < a.out.length; i++) {
    const [x, y] = [key(a.out[i - 1]!), key(a.out[i]!)];
    const cmp = x.findIndex((v, j) => v !== y[j]);
    assert.ok(cmp >= 0 && x[cmp]! < y[cmp]!, `order at ${i}: ${x} then ${y}`);
  }
  assert.deepEqual(a.out.slice(0, 2).map((s) => s.rank), [0, 1]);
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

test('resume (after + next + replay) continues exactly where an uninterrupted run would', async () => {
  const full = await collect(pipeline(loader({ urls, config, processes: 0, world: 2, seed: 5, epochs: 2 }), { reporter: quiet() }));
  assert.equal(full.length, 46);
  // Stop after k samples (inside epoch 0, around the drops, at the epoch's end, in epoch 1); replay the last 3
  // as a shuffle buffer would.
  for (const [k, processes] of [[1, 0], [9, 2], [14, 0], [17, 0], [30, 2], [23, 0]] as const) {
    const cursor = new LoaderCursor(2);
    const taken: LoaderSample[] = [];
    for await (const s of pipeline(loader({ urls, config, processes: 0, world: 2, seed: 5, epochs: 2 }), trackCursor(cursor), { reporter: quiet() })) {
      taken.push(s);
      if (taken.length === k) break;
    }
    const replay: ShardPosition[] = taken.slice(-3).map((s) => s.position);
    if (k === 1) assert.deepEqual(Object.keys(cursor.resume().after), ['0'], 'rank 1 has delivered nothing yet');
    const state = JSON.parse(JSON.stringify(cursor.resume(replay)));
    const rest = await collect(pipeline(loader({ urls, config, processes, seed: 5, epochs: 2, resume: state }), { reporter: quiet() }));
    const r = replay.length;
    assert.deepEqual(rest.slice(0, r).map((s) => s.key), taken.slice(-r).map((s) => s.key), `replay at ${k}`);
    assert.ok(rest.slice(0, r).every((s) => s.replayed === true));
    for (let i = 0; i < r; i++) assert.deepEqual(rest[i]!.L, full[k - r + i]!.L, 'replayed with the same crop');
    assert.deepEqual(keysOf(rest.slice(r)), keysOf(full.slice(k)), `continuation at ${k} with ${processes} processes`);
    assert.deepEqual(rest[rest.length - 1]!.ab, full[full.length - 1]!.ab);
  }
});

test('an early break kills every child process', { skip: !linux }, async () => {
  const before = new Set(childPids());
  let seen: number[] = [];
  let n = 0;
  for await (const _ of pipeline(loader({ urls, config, processes: 2, seed: 1, epochs: Infinity }), { reporter: quiet() })) {
    if (++n === 3) {
      seen = childPids().filter((p) => !before.has(p));
      break;
    }
  }
  assert.equal(seen.length, 2);
  for (const pid of seen) assert.equal(alive(pid), false, `child ${pid} still alive`);
});

test('an abort from outside stops the loader and its children', { skip: !linux }, async () => {
  const controller = new AbortController();
  const before = new Set(childPids());
  let seen: number[] = [];
  const p = pipeline(loader({ urls, config, processes: 2, seed: 1, epochs: Infinity }), { reporter: quiet(), signal: controller.signal });
  await assert.rejects(async () => {
    for await (const _ of p) {
      if (seen.length === 0) {
        seen = childPids().filter((x) => !before.has(x));
        controller.abort();
      }
    }
  }, /abort/i);
  assert.equal(seen.length, 2);
  for (const pid of seen) assert.equal(alive(pid), false);
});

test('a child that dies ends the run with ERR_LOADER_CHILD', { skip: !linux }, async () => {
  const before = new Set(childPids());
  let killed = false;
  const err = await (async () => {
    try {
      for await (const _ of pipeline(loader({ urls, config, processes: 2, seed: 1, epochs: Infinity }), { reporter: quiet() })) {
        const mine = childPids().filter((p) => !before.has(p));
        if (!killed && mine.length === 2) {
          killed = true;
          process.kill(mine[1]!, 'SIGKILL');
        }
      }
    } catch (e) {
      return e;
    }
    return null;
  })();
  assert.ok(err instanceof ColorpipeError, String(err));
  assert.equal(err.code, 'ERR_LOADER_CHILD');
  assert.match(err.message, /signal SIGKILL/);
  assert.deepEqual(childPids().filter((p) => !before.has(p)), []);
});

test("with onError 'fail' the first bad input in a child ends the run", async () => {
  const reporter = new Reporter({ onError: 'fail', log: null });
  await assert.rejects(collect(pipeline(loader({ urls, config, processes: 2, seed: 1 }), { reporter })), /s3-2/);
});

test('a resume position from another shard order is a clear error from the child', async () => {
  const bad = { epoch: 0, after: { 0: { epoch: 0, shardIndex: 0, shard: join(dir, 'nope.tar'), sample: 1 } } };
  await assert.rejects(collect(pipeline(loader({ urls, config, processes: 1, world: 2, seed: 1, resume: bad }), { reporter: quiet() })), InvalidOptionError);
});

test('frames survive any chunking of the pipe', () => {
  const frames: Frame[] = [
    { t: 'sample', rank: 1, key: 'a/b', cls: 3, position: { epoch: 0, shardIndex: 1, shard: 'x.tar', sample: 2 }, width: 2, height: 1, L: Uint8Array.of(1, 2), ab: Uint8Array.of(3, 4, 5, 6) },
    { t: 'drop', rank: 0, key: 'k', position: { epoch: 0, shardIndex: 0, shard: 'y.tar', sample: 0 }, stage: 'decode', reason: 'bad ü' },
    { t: 'end', rank: 1, epoch: 0 },
  ];
  const bytes = Buffer.concat(frames.flatMap((f) => encodeFrame(f)));
  for (const size of [1, 3, 7, bytes.length]) {
    const parser = new FrameParser();
    const got: Frame[] = [];
    for (let i = 0; i < bytes.length; i += size) got.push(...parser.push(bytes.subarray(i, i + size)));
    assert.equal(got.length, 3);
    const s = got[0] as Frame & { t: 'sample' };
    assert.deepEqual([...s.L], [1, 2]);
    assert.deepEqual([...s.ab], [3, 4, 5, 6]);
    assert.deepEqual({ ...s, L: null, ab: null }, { ...frames[0], L: null, ab: null });
    assert.deepEqual(got.slice(1), frames.slice(1));
    assert.equal(parser.pending, 0);
  }
});

test('options are validated when the factory is called', () => {
  assert.throws(() => loader({ urls, config, processes: -1 }), /Expected non-negative integer for options.processes but received -1/);
  assert.throws(() => loader({ urls, config, epochs: 0 }), InvalidOptionError);
  assert.throws(() => loader({ urls, config: {} as never }), InvalidOptionError);
  assert.throws(() => loader({ urls, config, startEpoch: 2, resume: { epoch: 1, after: {} } }), InvalidOptionError);
  assert.throws(() => loader({ urls, config, world: 2, resume: { epoch: 0, world: 3, after: {} } }), InvalidOptionError);
});
