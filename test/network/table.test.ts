import { test } from 'node:test';
import assert from 'node:assert/strict';
import { channels, countParams, layerTable } from '../../src/network/table.js';

const TINY = { inputSize: 32, width: 0.125, numClasses: 4 };

test('layer table: the paper\'s channels, strides and width rounding', () => {
  const t = layerTable({ inputSize: 224, width: 1, numClasses: 205 });
  assert.deepEqual(t.low.map((l) => [l.out, l.stride]), [[64, 2], [128, 1], [128, 2], [256, 1], [256, 2], [512, 1]]);
  assert.deepEqual(t.mid.map((l) => l.out), [512, 256]);
  assert.deepEqual(t.global.filter((l) => l.kind === 'conv').map((l) => [l.out, l.stride]), [[512, 2], [512, 1], [512, 2], [512, 1]]);
  assert.deepEqual(t.global.filter((l) => l.kind === 'dense').map((l) => l.out), [1024, 512, 256]);
  assert.deepEqual(t.color.filter((l) => l.kind === 'conv').map((l) => l.out), [128, 64, 64, 32, 2]);
  assert.equal(t.color.at(-1)!.activation, 'sigmoid');
  assert.deepEqual(t.classifier.map((l) => l.out), [256, 205]);
  assert.equal(t.fusion[1]!.kernel, 1);
  assert.equal(channels(64, 0.125), 8);
  assert.equal(channels(2, 0.1), 1, 'never 0 channels');
  assert.equal(channels(64, 0.3), 19);
  assert.equal(layerTable(TINY).classifier.at(-1)!.out, 4, 'class count is not scaled');
  assert.equal(layerTable({ ...TINY, numClasses: 0 }).classifier.length, 0);
});

test('parameter count of the paper config (computed without building): about 42M, most in the first global FC', () => {
  const p = countParams({ inputSize: 224, width: 1, numClasses: 205 });
  assert.equal(p.byLayer['gl_fc1'], 7 * 7 * 512 * 1024 + 1024);
  assert.equal(p.total, 42_367_183);
  assert.ok(p.byLayer['gl_fc1']! / p.total > 0.6);
  // BN moving statistics are the only non-trainable weights: 2 per BN channel.
  const t = layerTable({ inputSize: 224, width: 1, numClasses: 205 });
  const bnChannels = [...t.low, ...t.mid, ...t.global, ...t.color].filter((l) => l.bn).reduce((a, l) => a + l.out!, 0);
  assert.equal(p.total - p.trainable, 2 * bnChannels);
});
