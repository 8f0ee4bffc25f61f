import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BatchDump, openBatchDump, readTensors, writeTensors } from '../../bench/fidelity-data.js';
import type { LabBatch } from '../../src/types.js';
import { tmpDir } from '../helpers/tar.js';
import { rand } from '../tfjs/reference.js';

test('writeTensors / readTensors: raw little-endian float32 and a JSON index of offsets, read back exactly', (t) => {
  const dir = tmpDir(t, 'fid-t-');
  const ts = [
    { name: 'a/kernel', shape: [2, 3], data: rand(6, 1) },
    { name: 'a/bias', shape: [3], data: Float32Array.of(-1, 0.5, 3e-38) },
  ];
  writeTensors(join(dir, 'w'), ts);
  const index = JSON.parse(readFileSync(join(dir, 'w.json'), 'utf8'));
  assert.deepEqual(index, { tensors: [{ name: 'a/kernel', shape: [2, 3], offset: 0 }, { name: 'a/bias', shape: [3], offset: 6 }] });
  const raw = readFileSync(join(dir, 'w.bin'));
  assert.equal(raw.length, 9 * 4);
  assert.equal(raw.readFloatLE(7 * 4), 0.5, 'what numpy.fromfile(dtype="<f4") reads');
  assert.deepEqual(readTensors(join(dir, 'w')), ts);
  assert.throws(() => writeTensors(join(dir, 'x'), [{ name: 'bad', shape: [4], data: new Float32Array(3) }]), RangeError);
});

function batch(seed: number, n = 3, s = 4): LabBatch {
  return {
    size: n, height: s, width: s, L: rand(n * s * s, seed), ab: rand(n * s * s * 2, seed + 1),
    cls: Int32Array.from({ length: n }, (_, i) => (i === 1 ? -1 : seed + i)), keys: Array.from({ length: n }, (_, i) => `k${seed}-${i}`), positions: [],
  };
}

test('BatchDump: batches appended, then read back one by one, bit for bit, with their keys and classes', (t) => {
  const dir = tmpDir(t, 'fid-b-');
  const dump = new BatchDump(dir, 3, 4);
  const batches = [batch(1), batch(2), batch(3)];
  for (const b of batches) dump.append(b);
  assert.throws(() => dump.append(batch(9, 2)), RangeError, 'another batch size');
  dump.close();
  assert.equal(statSync(join(dir, 'L.bin')).size, 3 * 3 * 16 * 4);
  assert.equal(statSync(join(dir, 'ab.bin')).size, 3 * 3 * 16 * 2 * 4);
  assert.equal(statSync(join(dir, 'cls.bin')).size, 3 * 3 * 4);
  const r = openBatchDump(dir);
  assert.deepEqual({ steps: r.index.steps, batch: r.index.batch, size: r.index.size }, { steps: 3, batch: 3, size: 4 });
  for (let i = 0; i < 3; i++) {
    const got = r.batch(i);
    assert.deepEqual(got.L, batches[i]!.L);
    assert.deepEqual(got.ab, batches[i]!.ab);
    assert.deepEqual(got.cls, batches[i]!.cls);
    assert.deepEqual(got.keys, batches[i]!.keys);
  }
  assert.throws(() => r.batch(3), RangeError);
  r.close();
});
