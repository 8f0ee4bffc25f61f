/** `pipe export` on a saved run: model.onnx beside it, the same numbers as tfjs, one-line errors naming the flag or file. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { setupTfjs } from '../../src/tfjs/backend.js';
import { disposeColorizer, predictAb, saveColorizer } from '../../src/tfjs/network.js';
import { loadOnnxColorizer } from '../../src/onnx/session.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { maxAbsDiff, pattern, trainedLike } from '../onnx/helpers.js';
import { noStack, pipe, tempLeftovers } from '../helpers/cli.js';
import { mountTmpfs } from '../helpers/faults.js';

test('pipe export writes runs/NAME/model.onnx that ONNX Runtime runs to the tfjs numbers', async () => {
  await setupTfjs({ backend: 'cpu' });
  const run = mkdtempSync(join(tmpdir(), 'pipe-export-'));
  const c = trainedLike({ inputSize: 32, width: 0.125, numClasses: 4 }, 9);
  try {
    // The layout `pipe train` leaves: a checkpoint directory, `model` a symlink to it, state.json.
    await saveColorizer(c, join(run, 'checkpoints', 'step-00000010'));
    symlinkSync(join('checkpoints', 'step-00000010'), join(run, 'model'));
    writeFileSync(join(run, 'state.json'), JSON.stringify({ config: { augment: { resize: 40, crop: 32 } } }));

    const r = pipe(['export', '--model', run]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /wrote .*model\.onnx .*opset 17/);
    const file = join(run, 'model.onnx');
    const meta = Object.fromEntries(decodeModel(readFileSync(file)).metadataProps.map((p) => [p.key, p.value]));
    assert.equal(meta['colorpipe.training_scale'], '{"shortSide":40,"crop":32}');

    const m = await loadOnnxColorizer(file, { device: 'cpu', threads: 1 });
    const local = pattern(2 * 24 * 40, 3);
    const global = pattern(2 * 32 * 32, 4);
    const got = await m.predict({ local, global, batch: 2, height: 24, width: 40 });
    const ref = predictAb(c, tf.tensor4d(local, [2, 24, 40, 1]), tf.tensor4d(global, [2, 32, 32, 1]));
    assert.ok(maxAbsDiff(got.ab, await ref.ab.data()) <= 1e-4);
    assert.ok(maxAbsDiff(got.logits!, await ref.logits!.data()) <= 1e-4);
    tf.dispose([ref.ab, ref.logits!]);
    await m.release();

    const r2 = pipe(['export', '--model', join(run, 'model'), '--out', join(run, 'x', 'other.onnx'), '--opset', '13', '--quiet']);
    assert.equal(r2.status, 0, r2.stderr);
    assert.equal(r2.stderr, '');
    assert.equal(Number(decodeModel(readFileSync(join(run, 'x', 'other.onnx'))).opsetImport[0]!.version), 13);
  } finally {
    disposeColorizer(c);
    rmSync(run, { recursive: true, force: true });
  }
});

test('pipe export errors: one line naming the flag or the file, exit 2 (usage errors: InvalidOptionError)', () => {
  const missing = join(tmpdir(), 'no-such-run-for-export');
  const cases: [string[], RegExp][] = [
    [['--model', missing], new RegExp(`--model but ${missing} does not exist`)],
    [['--model', tmpdir(), '--opset', '9'], /--opset/],
    [['--model', missing, '--opset', '99'], /Expected integer in \[13, 21\] for --opset but received "99"/],
    [['--model', tmpdir()], /no model\.json in/],
    [[], /Missing --model/],
  ];
  for (const [args, re] of cases) {
    const r = pipe(['export', ...args]);
    assert.equal(r.status, 2, args.join(' '));
    assert.match(r.stderr.split('\n')[0]!, re);
    noStack(r.stderr);
  }
  assert.ok(!existsSync(join(missing, 'model.onnx')));
});

test('pipe export: a write that fails (a file in the way, a full disk) is a runtime failure: one line naming the file, exit 1', async (t) => {
  await setupTfjs({ backend: 'cpu' });
  const dir = mkdtempSync(join(tmpdir(), 'pipe-export-fail-'));
  const c = trainedLike({ inputSize: 32, width: 0.125, numClasses: 0 }, 3);
  const unmount: (() => void)[] = [];
  try {
    const model = join(dir, 'model');
    await saveColorizer(c, model);
    // A file where --out's folder should be: the folder cannot be made (ENOTDIR), on any machine.
    writeFileSync(join(dir, 'blocker'), 'x');
    const blocked = join(dir, 'blocker', 'sub', 'model.onnx');
    const r = pipe(['export', '--model', model, '--out', blocked]);
    assert.equal(r.status, 1, `a runtime failure, not a usage error (2): ${r.stderr}`);
    assert.match(r.stderr, /^colorpipe: cannot write .*blocker.*: a part of the path is a file, not a directory\n$/);
    assert.ok(!r.stderr.includes('Usage:'), 'no usage text: the flags were right');
    noStack(r.stderr);

    // A full disk: a 16 KiB tmpfs (where this machine allows one) cannot hold the model.
    const mnt = join(dir, 'full');
    const m = mountTmpfs(mnt, 'size=16k');
    if (typeof m === 'string') return t.skip(`the full-disk case: ${m}`);
    unmount.push(m);
    const out = join(mnt, 'model.onnx');
    const full = pipe(['export', '--model', model, '--out', out]);
    assert.equal(full.status, 1, full.stderr);
    assert.equal(full.stderr, `colorpipe: cannot write ${out}: no space left on device\n`);
    assert.ok(!existsSync(out));
    assert.deepEqual(tempLeftovers(mnt), [], 'no temp file left');
  } finally {
    for (const u of unmount) u();
    disposeColorizer(c);
    rmSync(dir, { recursive: true, force: true });
  }
});
