import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batch } from '../../src/stages/batch.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { InvalidOptionError, Reporter } from '../../src/core/errors.js';
import type { LabSample } from '../../src/types.js';

/** A sample whose every L value is i + pixel/1000 and ab values are -(i + k/1000), so copies are checkable. */
function sample(i: number, w = 3, h = 2, cls?: number): LabSample {
  const L = new Float32Array(w * h).map((_, p) => i + p / 1000);
  const ab = new Float32Array(w * h * 2).map((_, k) => -(i + k / 1000));
  return { key: `k${i}`, cls, width: w, height: h, L, ab, position: { epoch: 0, shardIndex: 0, shard: 's', sample: i } };
}

test('batches are contiguous [B,H,W,1] and [B,H,W,2] arrays with classes, keys and positions', async () => {
  const samples = Array.from({ length: 7 }, (_, i) => sample(i, 3, 2, i % 2 ? i : undefined));
  const out = await collect(pipeline(samples, batch({ size: 3 })));
  assert.deepEqual(out.map((b) => b.size), [3, 3, 1]);
  for (const [bi, b] of out.entries()) {
    assert.equal(b.height, 2);
    assert.equal(b.width, 3);
    assert.equal(b.L.length, b.size * 6);
    assert.equal(b.ab.length, b.size * 12);
    assert.equal(b.cls.length, b.size);
    assert.ok(b.L instanceof Float32Array && b.ab instanceof Float32Array && b.cls instanceof Int32Array);
    for (let j = 0; j < b.size; j++) {
      const s = samples[bi * 3 + j]!;
      assert.deepEqual(b.L.subarray(j * 6, (j + 1) * 6), s.L);
      assert.deepEqual(b.ab.subarray(j * 12, (j + 1) * 12), s.ab);
      assert.equal(b.cls[j], s.cls ?? -1);
      assert.equal(b.keys[j], s.key);
      assert.deepEqual(b.positions[j], s.position);
    }
  }
  const dropped = await collect(pipeline(samples, batch({ size: 3, dropLast: true })));
  assert.deepEqual(dropped.map((b) => b.size), [3, 3]);
});

test('a sample of another size closes the batch early; malformed samples are reported', async () => {
  const reporter = new Reporter({ log: null });
  const bad: LabSample = { ...sample(99), L: new Float32Array(5) };
  const samples = [sample(0), sample(1), sample(2, 4, 4), bad, sample(3, 4, 4), sample(4, 4, 4), sample(5)];
  const out = await collect(pipeline(samples, batch({ size: 3, dropLast: true }), { reporter }));
  assert.deepEqual(out.map((b) => [b.size, b.width, b.height, b.keys.join()]), [
    [2, 3, 2, 'k0,k1'],
    [3, 4, 4, 'k2,k3,k4'],
  ]);
  assert.deepEqual(reporter.records.map((r) => r.key), ['k99']);
  assert.match(reporter.records[0]!.reason, /expected L of 6 and ab of 12 values for 3x2/);
});

test('batch options are validated when the factory is called', () => {
  assert.throws(() => batch({ size: 0 }), /Expected positive integer for options.size but received 0/);
  assert.throws(() => batch({ size: 2, dropLast: 'yes' as unknown as boolean }), InvalidOptionError);
  assert.throws(() => batch({ size: 1.5 }), InvalidOptionError);
  assert.throws(() => batch(null as unknown as { size: number }), /Expected object for options but received null/);
});
