/**
 * `pipe train --engine torch` as a user runs it (tiny network, CPU, gloo): a torch-trained run colorizes and
 * exports; SIGKILL and --resume give bit-identical weights; a run moves from tfjs to torch and back; --devices 2
 * equals two one-rank machines; a rank killed mid-run, Ctrl-C, and a missing torch end the run cleanly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, FIXTURES, tmpDir } from '../helpers/tar.js';
import { exited, finish, noStack, run, start } from '../helpers/cli.js';
import { alive, descendants } from '../helpers/faults.js';
import { waitFor } from '../helpers/wait.js';
import { torchTests } from '../helpers/torch.js';
import { SHARDS, assertMovesAndBack, losses, stepOf, tinyConfig, train, weights } from '../helpers/train-runs.js';
import { freePort } from '../../src/torch/dist.js';

/** pids of `colorpipe` ranks and PyTorch workers under `pid`. */
const family = (pid: number) => descendants(pid).filter((p) => {
  try {
    return /cli\.js|colorpipe_torch/.test(readFileSync(`/proc/${p}/cmdline`, 'utf8'));
  } catch {
    return false;
  }
});

torchTests('pipe train --engine torch', () => {
  test('a torch-trained run checkpoints in colorpipe\'s format: it colorizes and exports; SIGKILL then --resume ends bit-identical', { timeout: 240_000 }, async (t) => {
    const dir = tmpDir(t);
    const config = tinyConfig(dir);
    const ref = join(dir, 'ref');
    const r = await run(train(config, ref, 12, '--engine', 'torch'));
    exited(r, 0);
    assert.match(r.stderr, /^colorpipe: training tiny from step 0: torch [\d.]+\S* cpu, 1 thread, fp32/m);
    assert.equal([...losses(ref).values()].at(-1)!.engine, 'torch');
    exited(await run(['colorize', '--in', join(FIXTURES, 'images'), '--out', join(dir, 'colorized'), '--model', ref, '--quiet']), 0);
    exited(await run(['export', '--model', ref, '--out', join(dir, 'm.onnx'), '--quiet']), 0);
    assert.ok(existsSync(join(dir, 'm.onnx')));

    const killed = join(dir, 'killed');
    const p = start(train(config, killed, 12, '--engine', 'torch'));
    const done = finish(p);
    assert.ok(await waitFor(() => stepOf(killed) >= 4 || p.exitCode !== null, 120_000), 'a checkpoint was written');
    const team = family(p.pid!);
    p.kill('SIGKILL');
    await done;
    assert.ok(await waitFor(() => !team.some(alive), 10_000), 'no worker outlives the run it served');
    const resumed = await run(train(config, killed, 12, '--engine', 'torch', '--resume'));
    exited(resumed, 0);
    assert.ok(weights(killed).equals(weights(ref)), 'the resumed run ends with the uninterrupted run\'s weights');
  });

  test('a tfjs run resumes on torch and back; the losses go on without a jump', { timeout: 240_000 }, (t) => assertMovesAndBack(t, 'torch'));

  test('--devices 2 and two one-rank machines on 127.0.0.1 train the same weights; metrics say the global batch', { timeout: 240_000 }, async (t) => {
    const dir = tmpDir(t);
    const config = tinyConfig(dir);
    const [local, nodes] = [join(dir, 'local'), join(dir, 'nodes')];
    const r = await run(train(config, local, 8, '--engine', 'torch', '--devices', '2'));
    exited(r, 0);
    assert.match(r.stderr, /2 ranks, global batch 16 \(8 per rank\)/);
    const last = [...losses(local).values()].at(-1) as unknown as { ranks: number; global_batch: number };
    assert.deepEqual([last.ranks, last.global_batch], [2, 16]);
    const master = `127.0.0.1:${await freePort()}`;
    const node = (rank: number) => run(train(config, nodes, 8, '--engine', 'torch', '--nodes', '2', '--node-rank', String(rank), '--master', master));
    const [n0, n1] = await Promise.all([node(0), node(1)]);
    exited(n0, 0);
    exited(n1, 0);
    assert.ok(weights(nodes).equals(weights(local)));
  });

  test('a rank killed mid-run ends every process with one line naming it; --resume continues from the last checkpoint', { timeout: 240_000 }, async (t) => {
    const dir = tmpDir(t);
    const config = tinyConfig(dir);
    const out = join(dir, 'run');
    const p = start(train(config, out, 100_000, '--engine', 'torch', '--devices', '2'));
    const done = finish(p, 200_000);
    assert.ok(await waitFor(() => stepOf(out) >= 4 || p.exitCode !== null, 120_000), 'a checkpoint was written');
    const team = family(p.pid!);
    const rank1 = team.find((q) => readFileSync(`/proc/${q}/environ`, 'utf8').includes('COLORPIPE_RANK=1') && readFileSync(`/proc/${q}/cmdline`, 'utf8').includes('cli.js'));
    assert.ok(rank1, 'rank 1 runs in its own process');
    process.kill(rank1, 'SIGKILL');
    const r = await done;
    exited(r, 1);
    noStack(r.stderr);
    assert.match(r.stderr, new RegExp(`colorpipe: rank 1 \\(pid ${rank1}\\) was killed by SIGKILL; the run stopped \\(the last checkpoint is intact: --resume continues\\)`));
    assert.ok(await waitFor(() => !team.some(alive), 10_000), 'no rank or worker outlives the run');
    const step = stepOf(out);
    exited(await run(train(config, out, step + 2, '--engine', 'torch', '--devices', '2', '--resume')), 0);
    assert.equal(stepOf(out), step + 2);
  });

  test('Ctrl-C on a --devices 2 run: every rank stops after the same step, one checkpoint, no process left, status 130', { timeout: 240_000 }, async (t) => {
    const dir = tmpDir(t);
    const config = tinyConfig(dir);
    const out = join(dir, 'run');
    // Its own process group, as a terminal's: Ctrl-C reaches every rank and worker.
    const p = start(train(config, out, 100_000, '--engine', 'torch', '--devices', '2'), { detached: true });
    const done = finish(p, 200_000);
    assert.ok(await waitFor(() => stepOf(out) >= 4 || p.exitCode !== null, 120_000), 'a checkpoint was written');
    const team = family(p.pid!);
    process.kill(-p.pid!, 'SIGINT');
    const r = await done;
    exited(r, 130);
    noStack(r.stderr);
    assert.ok(await waitFor(() => !team.some(alive), 10_000), 'no rank or worker outlives the run');
    const lastLogged = [...losses(out).keys()].at(-1)!;
    assert.equal(stepOf(out), lastLogged, 'the checkpoint is of the last step trained');
  });

  test('a Python without torch, or with an older one, is one line naming the flag and how to install it (exit 2)', async (t) => {
    const dir = tmpDir(t);
    const cases: Array<[string, string, RegExp]> = [
      ['none', 'raise ImportError("No module named \'torch\'")', /python\S* has no torch \(ImportError: No module named 'torch'\)/],
      ['old', '__version__ = "1.8.1"', /has torch 1\.8\.1, older than 1\.13/],
    ];
    for (const [name, body, want] of cases) {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, 'torch.py'), body + '\n');
      const r = await run(train(join(ROOT, 'configs', 'tiny.json'), join(dir, `run-${name}`), 2, '--engine', 'torch'), { env: { PYTHONPATH: join(dir, name) } });
      exited(r, 2);
      noStack(r.stderr);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, want);
      assert.match(lines[0]!, /^colorpipe: --engine torch: .*apt-get install python3-torch; else pip install torch/);
    }
  });

  test('an exception in the PyTorch worker is one line; COLORPIPE_DEBUG=1 adds its traceback', async (t) => {
    const dir = tmpDir(t);
    // --compile needs torch 2: on Debian's 1.13 the worker raises. (On torch 2 the run compiles: nothing to see.)
    const r = await run(train(join(ROOT, 'configs', 'tiny.json'), join(dir, 'run'), 2, '--engine', 'torch', '--compile'));
    if (r.status === 0) return t.skip('torch >= 2 here: --compile works');
    exited(r, 1);
    noStack(r.stderr);
    assert.match(r.stderr, /^colorpipe: PyTorch: RuntimeError: --compile needs torch >= 2\.0 \(this is torch 1\.13[^)]*\)$/m);
    assert.doesNotMatch(r.stderr, /Traceback/);
    const debug = await run(train(join(ROOT, 'configs', 'tiny.json'), join(dir, 'run2'), 2, '--engine', 'torch', '--compile'), { env: { COLORPIPE_DEBUG: '1' } });
    assert.match(debug.stderr, /Traceback \(most recent call last\)/);
  });
});
