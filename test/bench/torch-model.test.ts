/** bench/torch_model.py's interface, which bench/train.ts, bench/train-torch.ts and bench/gpu-host.ts read. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { layerTable } from '../../src/network/table.js';
import { ROOT, tmpDir } from '../helpers/tar.js';
import { torchTests } from '../helpers/torch.js';

torchTests('bench/torch_model.py', (python) => {
  test('bare PyTorch on a layer table prints one JSON line with its rates', (t) => {
    const table = join(tmpDir(t), 'table.json');
    writeFileSync(table, JSON.stringify(layerTable({ inputSize: 32, width: 0.125, numClasses: 3 })));
    const r = spawnSync(python, [join(ROOT, 'bench', 'torch_model.py'), table, '--batch', '2', '--steps', '1', '--warmup', '1', '--threads', '1', '--precision', 'fp32'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    for (const k of ['train_img_s', 'predict_img_s', 'params', 'torch', 'threads', 'batch', 'size']) assert.ok(k in out, k);
    assert.ok((out.train_img_s as number) > 0);
  });
});
