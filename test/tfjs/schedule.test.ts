import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createOptimizer } from '../../src/tfjs/optimizers.js';
import { cosineSchedule } from '../../src/network/training.js';
import { makeConfig } from '../../src/config.js';
import { setupTfjs } from '../../src/tfjs/backend.js';

test('cosine schedule: 1 at the start, half-way 0.525, 5% at the end and after', () => {
  const f = cosineSchedule(100);
  assert.ok(Math.abs(f(0) - 1) < 1e-12);
  assert.ok(Math.abs(f(50) - 0.525) < 1e-12);
  assert.ok(Math.abs(f(100) - 0.05) < 1e-12);
  assert.equal(f(500), f(100));
  for (let t = 1; t <= 100; t++) assert.ok(f(t) <= f(t - 1), 'monotone');
});

test('createOptimizer applies the schedule only when the config asks for it', async () => {
  await setupTfjs({ backend: 'cpu' });
  const c = makeConfig({ train: { lrDecay: 'cosine', steps: 10 } });
  const o = createOptimizer(c.train) as unknown as { lrSchedule: unknown };
  assert.equal(typeof o.lrSchedule, 'function');
  const p = createOptimizer(makeConfig({}).train) as unknown as { lrSchedule: unknown };
  assert.equal(p.lrSchedule, null);
  assert.throws(() => makeConfig({ train: { lrDecay: 'step' as never } }), /lrDecay/);
});
