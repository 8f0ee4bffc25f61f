/**
 * Data parallel on the CPU: two torch engines as two gloo ranks, each stepping on half of every batch, against
 * a single-process reference that averages the two halves' gradients (test/torch/ddp_reference.py).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyOverrides, loadConfig } from '../../src/config.js';
import { layerTable } from '../../src/network/table.js';
import { weightSpecs, type NamedWeight } from '../../src/network/weights.js';
import { freePort } from '../../src/torch/dist.js';
import { torchTrainEngine, type TorchTrainEngine } from '../../src/torch/engine.js';
import type { LabBatch } from '../../src/types.js';
import { ROOT, tmpDir } from '../helpers/tar.js';
import { syntheticBatch } from '../helpers/batches.js';
import { torchTests } from '../helpers/torch.js';

const HALF = 4;
const STEPS = 4;
const config = applyOverrides(loadConfig(join(ROOT, 'configs', 'tiny.json')), { batch: HALF });
const S = config.model.inputSize;

function halfOf(b: LabBatch, r: number): LabBatch {
  const px = HALF * S * S;
  return {
    size: HALF, height: S, width: S, keys: [], positions: [],
    L: b.L.slice(r * px, (r + 1) * px), ab: b.ab.slice(2 * r * px, 2 * (r + 1) * px), cls: b.cls.slice(r * HALF, (r + 1) * HALF),
  };
}

const bytes = (a: Float32Array | Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

torchTests('data parallel on gloo', (python) => {
  test('2 ranks x half batches give the weights of one process averaging the two halves\' gradients', async (t) => {
    const port = await freePort();
    const place = (rank: number) => ({ rank, world: 2, localRank: rank, addr: '127.0.0.1', port, timeoutS: 60 });
    const ranks: TorchTrainEngine[] = await Promise.all([0, 1].map((r) => torchTrainEngine({ config, python, device: 'cpu', threads: 1, dist: place(r) })));
    t.after(() => Promise.all(ranks.map((e) => e.release())));
    const init = await ranks[0]!.weights();
    const batches = Array.from({ length: STEPS }, (_, k) => syntheticBatch(k + 11, 2 * HALF, S, config.model.numClasses));
    for (const b of batches) await Promise.all(ranks.map((e, r) => e.step(halfOf(b, r))));
    const got = await ranks[0]!.weights();
    const other = await ranks[1]!.weights();

    const dir = tmpDir(t);
    const table = layerTable(config.model);
    writeFileSync(join(dir, 'run.json'), JSON.stringify({
      table, specs: weightSpecs(table), half: HALF, size: S, steps: STEPS,
      train: { optimizer: config.train.optimizer, lr: config.train.lr, lrDecay: config.train.lrDecay, steps: config.train.steps, alpha: config.train.alpha, seed: 0 },
    }));
    writeFileSync(join(dir, 'init.bin'), Buffer.concat(init.map((w) => bytes(w.data))));
    writeFileSync(join(dir, 'batches.bin'), Buffer.concat(batches.flatMap((b) => [0, 1].map((r) => halfOf(b, r)).flatMap((h) => [bytes(h.L), bytes(h.ab), bytes(h.cls)]))));
    const r = spawnSync(python, [join(ROOT, 'test', 'torch', 'ddp_reference.py'), dir], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const ref = readFileSync(join(dir, 'out.bin'));
    const want = new Float32Array(ref.buffer, ref.byteOffset, ref.byteLength / 4);

    let at = 0;
    let worst = { name: '', rel: 0 };
    let moved = 0;
    for (const w of got) {
      const b = want.subarray(at, at + w.data.length);
      const a0 = init.find((x) => x.name === w.name)!.data;
      let d = 0, m = 0, mv = 0;
      for (let i = 0; i < b.length; i++) {
        d += (w.data[i]! - b[i]!) ** 2;
        m += b[i]! ** 2;
        mv += (b[i]! - a0[i]!) ** 2;
      }
      const rel = Math.sqrt(d / Math.max(m, 1e-30));
      if (rel > worst.rel) worst = { name: w.name, rel };
      if (mv > 0) moved++;
      at += w.data.length;
    }
    assert.equal(at, want.length);
    assert.ok(moved > got.length / 2, 'the steps moved the weights');
    assert.ok(worst.rel < 1e-5, `${worst.name}: relative L2 ${worst.rel}`);
    // The ranks hold the same trainable weights (DistributedDataParallel's invariant; the moving statistics are
    // rank 0's from each step's start).
    const same = (a: NamedWeight, b: NamedWeight) => bytes(a.data).equals(bytes(b.data));
    assert.ok(got.every((w, i) => /moving_/.test(w.name) || same(w, other[i]!)), 'rank 1 holds rank 0\'s weights');
  });
});
