/**
 * `pipe train --engine onnx` as a user runs it (tiny network, CPU): its run checkpoints in colorpipe's format
 * (colorize and export take it); SIGKILL then --resume ends with the uninterrupted run's weights, bit for bit; a
 * run moves from tfjs to onnx and back without a jump in its losses; flags it does not take are refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { FIXTURES, tmpDir } from '../helpers/tar.js';
import { exited, finish, run, start } from '../helpers/cli.js';
import { waitFor } from '../helpers/wait.js';
import { assertMovesAndBack, losses, stepOf, tinyConfig, train, weights } from '../helpers/train-runs.js';

/** Long enough that the kill below lands mid-run (the tiny network trains a step in milliseconds). */
const STEPS = 40;

test('an onnx-trained run colorizes and exports; SIGKILL then --resume ends with the uninterrupted run\'s weights', { timeout: 240_000 }, async (t) => {
  const dir = tmpDir(t);
  const config = tinyConfig(dir);
  const ref = join(dir, 'ref');
  const r = await run(train(config, ref, STEPS, '--engine', 'onnx'));
  exited(r, 0);
  assert.match(r.stderr, /^colorpipe: training tiny from step 0: onnxruntime [\d.]+ cpu \(1 thread\), training graph$/m);
  assert.doesNotMatch(r.stderr, /onnxruntime:/, 'no ONNX Runtime warnings reach the user');
  assert.equal([...losses(ref).values()].at(-1)!.engine, 'onnx');
  exited(await run(['colorize', '--in', join(FIXTURES, 'images'), '--out', join(dir, 'colorized'), '--model', ref, '--quiet']), 0);
  exited(await run(['export', '--model', ref, '--out', join(dir, 'm.onnx'), '--quiet']), 0);
  assert.ok(existsSync(join(dir, 'm.onnx')));

  const killed = join(dir, 'killed');
  const p = start(train(config, killed, STEPS, '--engine', 'onnx'));
  const done = finish(p);
  assert.ok(await waitFor(() => stepOf(killed) >= 4 || p.exitCode !== null, 120_000), 'a checkpoint was written');
  p.kill('SIGKILL');
  assert.equal((await done).signal, 'SIGKILL', 'killed before its end');
  assert.ok(stepOf(killed) < STEPS);
  exited(await run(train(config, killed, STEPS, '--engine', 'onnx', '--resume')), 0);
  assert.ok(weights(killed).equals(weights(ref)), 'the resumed run ends with the uninterrupted run\'s weights');
});

test('a tfjs run resumes on onnx and back; the losses go on without a jump', { timeout: 240_000 }, (t) => assertMovesAndBack(t, 'onnx'));

test('flags of another engine, several ranks and a CUDA provider that is not installed are refused in one line each, leaving no run folder', async (t) => {
  const dir = tmpDir(t);
  const config = tinyConfig(dir);
  const cases: Array<[string[], number, RegExp]> = [
    [['--engine', 'onnx', '--backend', 'wasm'], 2, /^colorpipe: --backend wasm names a tfjs backend, and this run trains on --engine onnx/],
    [['--engine', 'onnx', '--devices', '2'], 2, /^colorpipe: --engine onnx trains in one process; 2 ranks \(--devices 2\) need --engine torch$/],
    [['--engine', 'onnx', '--precision', 'bf16'], 2, /^colorpipe: .*--precision.* are options of --engine torch \(this run trains on onnx\)$/],
    [['--engine', 'onnx', '--software-gpu'], 2, /^colorpipe: --software-gpu is an option of tfjs's webgpu backend, and this run trains on --engine onnx$/],
  ];
  // Where ONNX Runtime's CUDA provider is installed, --device cuda is a real choice, not an error.
  const cuda = join(dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json')), 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so');
  if (!existsSync(cuda)) cases.push([['--engine', 'onnx', '--device', 'cuda'], 1, /^colorpipe: ONNX Runtime's CUDA provider is not installed \(npm i onnxruntime-node --onnxruntime-node-install=cuda12/]);
  for (const [flags, status, line] of cases) {
    const out = join(dir, `run-${flags.join('')}`);
    const r = await run(train(config, out, 3, ...flags));
    exited(r, status);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${flags.join(' ')}: one line, not ${r.stderr}`);
    assert.match(r.stderr.trim(), line);
    assert.ok(!existsSync(out), `${flags.join(' ')}: no folder left behind`);
  }
});
