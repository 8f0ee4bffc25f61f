/**
 * The PyTorch engine through the training engine contract, against the tfjs engine on the same weights and
 * batches (tiny network, CPU); its worker's failures and its cleanup.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.js';
import { setupTfjs } from '../../src/tfjs/backend.js';
import { tfjsTrainEngine, type TfjsTrainEngine } from '../../src/tfjs/train-engine.js';
import { torchTrainEngine, type TorchTrainEngine } from '../../src/torch/engine.js';
import { TorchWorker } from '../../src/torch/worker.js';
import { shmDir } from '../../src/torch/ring.js';
import { alive } from '../helpers/faults.js';
import { ROOT } from '../helpers/tar.js';
import { torchTests } from '../helpers/torch.js';
import { syntheticBatch as batchOf } from '../helpers/batches.js';
import { assertStateRoundTrip, rel, sameWeights } from '../helpers/engines.js';

const config = loadConfig(join(ROOT, 'configs', 'tiny.json'));
const S = config.model.inputSize;
const B = config.train.batch;

const syntheticBatch = (seed: number) => batchOf(seed, B, S, config.model.numClasses);

torchTests('the PyTorch engine', (python) => {
  let torch: TorchTrainEngine;
  let tfjs: TfjsTrainEngine;
  before(async () => {
    tfjs = tfjsTrainEngine(await setupTfjs({ backend: 'cpu' }), config);
    torch = await torchTrainEngine({ config, python, device: 'cpu', threads: 1 });
  });
  after(async () => {
    await torch?.release();
    await tfjs?.release();
  });

  test('on the tfjs engine\'s weights it predicts, and steps, as the tfjs engine does', async () => {
    await torch.setWeights(await tfjs.weights());
    const probe = syntheticBatch(99);
    const [a, b] = [await torch.evaluate(probe), await tfjs.evaluate(probe)];
    assert.equal(a.ab.length, B * (S / 2) * (S / 2) * 2);
    let worst = 0;
    for (let i = 0; i < a.ab.length; i++) worst = Math.max(worst, Math.abs(a.ab[i]! - b.ab[i]!));
    assert.ok(worst < 1e-5, `predicted ab differs by ${worst}`);
    assert.ok(rel(a.loss, b.loss) < 1e-5 && rel(a.ce, b.ce) < 1e-5, `evaluation ${a.loss} vs ${b.loss}`);
    for (let k = 1; k <= 5; k++) {
      const batch = syntheticBatch(k);
      const [x, y] = [await torch.step(batch), await tfjs.step(batch)];
      // Step 1 runs on identical weights: float rounding only. After it, Adam's steps amplify the rounding a little.
      const tol = k === 1 ? 1e-5 : 5e-3;
      for (const key of ['loss', 'mse', 'ce'] as const) assert.ok(rel(x[key], y[key]) < tol, `step ${k} ${key}: ${x[key]} vs ${y[key]}`);
    }
    assert.equal((await torch.optimizerState()).iterations, 5);
  });

  test('weights and optimizer state go out and back in bit for bit, from either engine', async () => {
    await assertStateRoundTrip(torch);
    // The tfjs engine's state, named as a checkpoint names it, is the torch engine's to continue.
    const fromTfjs = await tfjs.optimizerState();
    await torch.setOptimizerState(fromTfjs);
    const byName = new Map((await torch.optimizerState()).slots.map((s) => [s.name, s]));
    sameWeights(fromTfjs.slots, fromTfjs.slots.map((s) => byName.get(s.name)!));
  });

  test('a failure inside the worker is one line naming the exception; the traceback only with COLORPIPE_DEBUG=1', async (t) => {
    const worker = new TorchWorker(python);
    t.after(() => worker.close());
    await assert.rejects(worker.request('nope'), (e: Error) => e.message === "PyTorch: ValueError: unknown request 'nope'");
    process.env.COLORPIPE_DEBUG = '1';
    t.after(() => delete process.env.COLORPIPE_DEBUG);
    await assert.rejects(worker.request('nope'), (e: Error) => /^PyTorch: ValueError[^\n]*\nTraceback/.test(e.message));
  });

  test('a worker that dies fails the requests in flight, naming its signal', async (t) => {
    const worker = new TorchWorker(python);
    t.after(() => worker.close());
    const pending = worker.request('init', { bad: true });
    process.kill(worker.pid!, 'SIGKILL');
    await assert.rejects(pending, /the PyTorch worker \(pid \d+\) was killed by SIGKILL/);
    await assert.rejects(worker.request('quit'), /was killed by SIGKILL/);
  });

  test('release ends the worker and leaves no shared-memory file', async () => {
    const e = await torchTrainEngine({ config, python, device: 'cpu', threads: 1 });
    await e.step(syntheticBatch(3));
    assert.ok(e.pid && alive(e.pid));
    const before = readdirSync(shmDir()).filter((n) => n.startsWith(`colorpipe-torch-${process.pid}-`));
    assert.deepEqual(before, [], 'the ring is unlinked once the worker has it');
    await e.release();
    await e.release();
    assert.deepEqual(readdirSync(shmDir()).filter((n) => n.startsWith(`colorpipe-torch-${process.pid}-`)), []);
    assert.ok(!alive(e.pid), 'the worker has exited');
  });
});
