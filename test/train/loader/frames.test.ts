import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, FrameParser, ForwardingReporter, toSample, wireError, parseBody, type Frame } from '../../../src/train/loader/frames.js';
import { ColorpipeError, InvalidOptionError } from '../../../src/core/errors.js';

const position = { epoch: 0, shardIndex: 1, shard: 'x.tar', sample: 2 };
const frames: Frame[] = [
  { t: 'sample', rank: 1, key: 'a/b', cls: 3, position, width: 2, height: 1, L: Uint8Array.of(1, 2), ab: Uint8Array.of(3, 4, 5, 6) },
  { t: 'drop', rank: 0, key: 'k', position: { epoch: 0, shardIndex: 0, shard: 'y.tar', sample: 0 }, stage: 'decode', reason: 'bad ü' },
  { t: 'end', rank: 1, epoch: 0 },
  { t: 'report', stage: 'shards', key: 'z', reason: 'truncated' },
  { t: 'fatal', code: 'ERR_X', message: 'boom' },
  { t: 'done' },
];

test('frames survive any chunking of the pipe', () => {
  const bytes = Buffer.concat(frames.flatMap((f) => encodeFrame(f)));
  for (const size of [1, 3, 7, bytes.length]) {
    const parser = new FrameParser();
    const got: Frame[] = [];
    for (let i = 0; i < bytes.length; i += size) got.push(...parser.push(bytes.subarray(i, i + size)));
    assert.equal(got.length, frames.length);
    const s = got[0] as Frame & { t: 'sample' };
    assert.deepEqual([...s.L], [1, 2]);
    assert.deepEqual([...s.ab], [3, 4, 5, 6]);
    assert.deepEqual({ ...s, L: null, ab: null }, { ...frames[0], L: null, ab: null });
    assert.deepEqual(got.slice(1), frames.slice(1));
    assert.equal(parser.pending, 0);
  }
});

test('a partial frame stays pending until its last byte arrives', () => {
  const bytes = Buffer.concat(encodeFrame(frames[0]!));
  const parser = new FrameParser();
  assert.deepEqual(parser.push(bytes.subarray(0, bytes.length - 1)), []);
  assert.equal(parser.pending, bytes.length - 1 - 4, 'the length field is taken, the rest waits');
  assert.equal(parser.push(bytes.subarray(bytes.length - 1)).length, 1);
  // parseBody is the same decoding without the length field.
  const f = parseBody(bytes.subarray(4)) as Frame & { t: 'sample' };
  assert.deepEqual([...f.ab], [3, 4, 5, 6]);
});

test('toSample is the dequantization of the planes (byte k -> k / 255), with rank, position, class and the replayed mark', () => {
  const qL = Uint8Array.of(0, 128, 255);
  const qAb = Uint8Array.of(0, 255, 128, 128, 1, 254);
  const s = toSample({ t: 'sample', rank: 2, key: 'k', cls: 7, position, width: 3, height: 1, L: qL, ab: qAb }, true);
  assert.deepEqual({ key: s.key, rank: s.rank, cls: s.cls, replayed: s.replayed, width: s.width, height: s.height }, { key: 'k', rank: 2, cls: 7, replayed: true, width: 3, height: 1 });
  assert.deepEqual(s.position, position);
  assert.deepEqual([...s.L], [...qL].map((k) => Math.fround(k / 255)));
  assert.deepEqual([...s.ab], [...qAb].map((k) => Math.fround(k / 255)));
  const t = toSample({ t: 'sample', rank: 0, key: 'k', position, width: 3, height: 1, L: qL, ab: qAb }, false);
  assert.equal('replayed' in t, false);
  assert.equal('cls' in t, false);
});

test('ForwardingReporter forwards every report and notice and decides nothing', () => {
  const got: unknown[] = [];
  const r = new ForwardingReporter((m) => got.push(m));
  r.report('decode', 'a', 'bad');
  r.report('shards', 'b', 'truncated');
  r.notice('decode', 'c', 'animated GIF with 2 frames: only the first is used');
  assert.deepEqual(got, [
    { t: 'report', stage: 'decode', key: 'a', reason: 'bad' },
    { t: 'report', stage: 'shards', key: 'b', reason: 'truncated' },
    { t: 'notice', stage: 'decode', key: 'c', reason: 'animated GIF with 2 frames: only the first is used' },
  ]);
  assert.deepEqual(r.notices, []);
});

test('wireError rebuilds the error class from its code', () => {
  const a = wireError({ code: 'ERR_INVALID_OPTION', message: 'Expected x' });
  assert.ok(a instanceof InvalidOptionError);
  assert.equal(a.message, 'Expected x');
  const b = wireError({ code: 'ERR_LOADER_CHILD', message: 'gone' });
  assert.ok(b instanceof ColorpipeError && !(b instanceof InvalidOptionError));
  assert.equal(b.code, 'ERR_LOADER_CHILD');
});
