import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import { isSoftwareAdapter, setupTfjs } from '../../src/tfjs/backend.js';
import { EngineUnavailableError } from '../../src/core/errors.js';
import { registerAllGradients } from '../../src/tfjs/gradients.js';
import { InvalidOptionError } from '../../src/core/errors.js';

const require = createRequire(import.meta.url);
const installed = (name: string) => {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
};

test('options are validated', async () => {
  await assert.rejects(setupTfjs({ backend: 'gpu' as never }), InvalidOptionError);
  await assert.rejects(setupTfjs({ backend: 'wasm', threads: 0 }), /options\.threads/);
});

test('tfjs-core gradients are registered for the one tfjs-core instance', () => {
  const { registered, skipped } = registerAllGradients();
  for (const k of ['Conv2D', 'BatchMatMul', 'Relu', 'Sigmoid', 'Concat', 'Tile', 'ResizeNearestNeighbor', 'Mean', 'SquaredDifference', 'LogSoftmax', 'AvgPool']) {
    assert.ok(registered.includes(k) || tf.getGradient(k) != null, `gradient of ${k}`);
  }
  // Only the 3D and LRN gradients need internal ops colorpipe does not provide.
  for (const s of skipped) assert.match(s, /3D|LRN/);
  assert.ok(registered.length > 90);
});

test('wasm and cpu engines; the same backend twice is a no-op', async () => {
  const w = await setupTfjs({ backend: 'wasm' });
  assert.equal(w.name, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.match(w.describe, /wasm .*colorpipe kernels/);
  assert.ok(tf.getKernel('Conv2DBackpropFilter', 'wasm'), 'wasm has a filter gradient now');
  const again = await setupTfjs({ backend: 'wasm' });
  assert.equal(again.name, 'wasm');
  const c = await setupTfjs({ backend: 'cpu' });
  assert.equal(c.name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.equal(c.tf, tf, 'one tfjs-core instance');
});

test('tensorflow engine: a clear error naming the package when tfjs-node is not installed', async (t) => {
  if (installed('@tensorflow/tfjs-node') || installed('@tensorflow/tfjs-node-gpu')) {
    t.skip('tfjs-node is installed here');
    return;
  }
  await assert.rejects(setupTfjs({ backend: 'tensorflow' }), (err: unknown) => {
    assert.ok(err instanceof EngineUnavailableError);
    assert.match(err.message, /npm i @tensorflow\/tfjs-node/);
    return true;
  });
});

test('webgpu engine: either a real GPU or a clear error; auto then falls back to wasm', async () => {
  let gpu = false;
  try {
    const e = await setupTfjs({ backend: 'webgpu' });
    assert.equal(e.name, 'webgpu');
    gpu = true;
  } catch (err) {
    assert.ok(err instanceof EngineUnavailableError, String(err));
    assert.match(err.message, /webgpu engine .*(no GPU adapter|software adapter|not installed)|--backend wasm/);
  }
  const auto = await setupTfjs({ backend: 'auto' });
  const tfNode = installed('@tensorflow/tfjs-node') || installed('@tensorflow/tfjs-node-gpu');
  assert.equal(auto.name, tfNode ? 'tensorflow' : gpu ? 'webgpu' : 'wasm');
});

test('software adapters do not count as a GPU', () => {
  assert.ok(isSoftwareAdapter({ info: { vendor: 'google', architecture: 'swiftshader', description: 'SwiftShader Device (Subzero)' } }));
  assert.ok(isSoftwareAdapter({ info: { description: 'llvmpipe (LLVM 15.0.6, 256 bits)' } }));
  assert.ok(isSoftwareAdapter({ isFallbackAdapter: true }));
  assert.ok(!isSoftwareAdapter({ info: { vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100 80GB HBM3' } }));
});

test('auto keeps Dawn quiet: its native warnings never reach stderr, and it never picks a software adapter', async () => {
  const { spawnSync } = await import('node:child_process');
  const url = new URL('../../src/tfjs/backend.js', import.meta.url).href;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e',
    `const { setupTfjs } = await import(${JSON.stringify(url)}); const e = await setupTfjs({ backend: 'auto' }); console.log(e.describe);`],
    { encoding: 'utf8', env: { ...process.env, COLORPIPE_SOFTWARE_GPU: '1' } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', 'nothing on stderr');
  assert.doesNotMatch(r.stdout, /software adapter .*opted in/);
});
