/**
 * The webgpu engine on whatever adapter this machine has: a GPU, or Mesa's lavapipe (a Vulkan device on the CPU,
 * `bash scripts/setup-software-gpu.sh`), which makes these correctness checks, never speed checks. Shapes are
 * tiny because lavapipe compiles every shader with LLVM and runs it on the CPU.
 *
 * Every kernel colorpipe registers for webgpu against the cpu backend and finite differences; the composed
 * batch-norm and optimizer paths webgpu uses (it has no fused kernels) against cpu's fused ones; 200 training
 * steps with a flat tensor count and flat GPU buffer bytes after warm-up. The CLI runs (train, resume across
 * engines, colorize) are in test/train/webgpu.test.ts.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setupTfjs } from '../../src/tfjs/backend.js';
import { registerKernels } from '../../src/tfjs/kernels/index.js';
import { im2colFilterGrad } from '../../src/tfjs/kernels/webgpu.js';
import { ADADELTA_UPDATE, ADAM_UPDATE, BN_TRAIN, BN_TRAIN_GRAD } from '../../src/tfjs/kernels/fused.js';
import { bnTrainComposite } from '../../src/tfjs/layers.js';
import { ColorpipeAdadelta, ColorpipeAdam } from '../../src/tfjs/optimizers.js';
import { buildColorizer, disposeColorizer } from '../../src/tfjs/network.js';
import { createTrainer } from '../../src/tfjs/trainer.js';
import { makeConfig } from '../../src/config.js';
import type { LabBatch } from '../../src/types.js';
import { checkSinConvGradients, conv2dRef, rand, relErr, type ConvGeom } from './reference.js';
import { webgpuHere } from '../helpers/webgpu.js';

const here = await webgpuHere();

const CASES: ConvGeom[] = [
  { B: 2, H: 8, W: 8, C: 3, CO: 4, k: 3, s: 1, pad: 'same' },
  { B: 2, H: 8, W: 8, C: 3, CO: 4, k: 3, s: 2, pad: 'same' },
  { B: 3, H: 7, W: 9, C: 5, CO: 6, k: 3, s: 2, pad: 'same' }, // odd sizes: TF pads 1 before at stride 2
  { B: 2, H: 6, W: 10, C: 2, CO: 3, k: 3, s: 2, pad: 'valid' },
  { B: 2, H: 5, W: 5, C: 4, CO: 3, k: 1, s: 1, pad: 'same' }, // the fusion layer's 1x1
  { B: 2, H: 16, W: 16, C: 20, CO: 17, k: 3, s: 2, pad: 'same' },
  { B: 1, H: 1, W: 1, C: 8, CO: 8, k: 3, s: 2, pad: 'same' }, // the global path's last stride 2 at 32px
];

const webgpu = () => setupTfjs({ backend: 'webgpu', softwareGpu: true });

/** Conv2DBackpropFilter through the kernel registry of the active backend. */
async function filterGrad(g: ConvGeom, x: Float32Array, dy: Float32Array, OH: number, OW: number): Promise<Float32Array> {
  const xt = tf.tensor4d(x, [g.B, g.H, g.W, g.C]);
  const dyt = tf.tensor4d(dy, [g.B, OH, OW, g.CO]);
  const attrs = { strides: [g.s, g.s], pad: g.pad, dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: [g.k, g.k, g.C, g.CO] };
  const out = tf.engine().runKernel('Conv2DBackpropFilter', { x: xt, dy: dyt }, attrs as never) as tf.Tensor;
  const v = (await out.data()) as Float32Array;
  tf.dispose([xt, dyt, out]);
  return v;
}

function synthetic(seed: number, n: number, S: number): LabBatch {
  const L = new Float32Array(n * S * S);
  const ab = new Float32Array(n * S * S * 2);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < S * S; i++) {
      const v = 0.5 + 0.4 * Math.sin(((i % S) + seed * 3 + b) / 5) * Math.cos(Math.floor(i / S) / 7);
      L[b * S * S + i] = v;
      ab[(b * S * S + i) * 2] = 0.3 + 0.4 * v;
      ab[(b * S * S + i) * 2 + 1] = 0.7 - 0.3 * v;
    }
  }
  return { size: n, height: S, width: S, L, ab, cls: Int32Array.from({ length: n }, (_, b) => (b + seed) % 4), keys: [], positions: [] };
}

if (!here.ok && !here.ci) {
  describe('webgpu engine', { skip: here.reason }, () => {});
} else if (!here.ok) {
  test('webgpu engine: CI must have a WebGPU adapter (a GPU or lavapipe)', () => {
    assert.fail(`CI=true but ${here.reason}`);
  });
} else {
  describe(`webgpu engine on ${here.software ? 'a software adapter' : 'a GPU'} (${here.adapter})`, () => {
    test('colorpipe registers exactly Conv2DBackpropFilter for webgpu; the fused kernels are not (composed paths)', async () => {
      const e = await webgpu();
      assert.equal(e.name, 'webgpu');
      assert.match(e.describe, here.software ? /software adapter .*opted in/ : /^webgpu \(/);
      // A new webgpu kernel must be added to the tests below: this list is what they cover.
      assert.deepEqual(registerKernels('webgpu'), ['Conv2DBackpropFilter']);
      assert.equal((tf.getKernel('Conv2DBackpropFilter', 'webgpu') as { colorpipe?: boolean }).colorpipe, true);
      for (const k of [BN_TRAIN, BN_TRAIN_GRAD, ADAM_UPDATE, ADADELTA_UPDATE]) assert.equal(tf.getKernel(k, 'webgpu'), undefined, k);
    });

    test('Conv2DBackpropFilter on webgpu matches the cpu backend, whole batch and chunked', async () => {
      const inputs = CASES.map((g, i) => {
        const { OH, OW } = conv2dRef(new Float32Array(g.B * g.H * g.W * g.C), new Float32Array(g.k * g.k * g.C * g.CO), g);
        return { g, OH, OW, x: rand(g.B * g.H * g.W * g.C, 70 + i), dy: rand(g.B * OH * OW * g.CO, 80 + i) };
      });
      await setupTfjs({ backend: 'cpu' });
      const ref = await Promise.all(inputs.map((c) => filterGrad(c.g, c.x, c.dy, c.OH, c.OW)));
      await webgpu();
      for (const [i, c] of inputs.entries()) {
        const got = await filterGrad(c.g, c.x, c.dy, c.OH, c.OW);
        assert.ok(relErr(got, ref[i]!) < 1e-5, `${JSON.stringify(c.g)}: ${relErr(got, ref[i]!)}`);
        // One sample per chunk: the accumulation over chunks (Add of partial products) on the GPU.
        const xt = tf.tensor4d(c.x, [c.g.B, c.g.H, c.g.W, c.g.C]);
        const dyt = tf.tensor4d(c.dy, [c.g.B, c.OH, c.OW, c.g.CO]);
        const before = tf.backend().numDataIds();
        const attrs = { strides: [c.g.s, c.g.s], pad: c.g.pad, dataFormat: 'NHWC', filterShape: [c.g.k, c.g.k, c.g.C, c.g.CO] };
        const info = im2colFilterGrad('webgpu', 1)({ inputs: { x: xt, dy: dyt }, attrs: attrs as never, backend: tf.backend() }) as tf.TensorInfo;
        const chunked = tf.engine().makeTensorFromTensorInfo(info);
        assert.ok(relErr((await chunked.data()) as Float32Array, ref[i]!) < 1e-5, `chunked ${JSON.stringify(c.g)}`);
        chunked.dispose();
        assert.equal(tf.backend().numDataIds(), before, 'no intermediate left behind');
        tf.dispose([xt, dyt]);
      }
    });

    test('conv gradients on webgpu match finite differences of a nonlinear loss (float64 reference)', async () => {
      await webgpu();
      for (const [i, g] of CASES.slice(0, 4).entries()) {
        const x = Float64Array.from(rand(g.B * g.H * g.W * g.C, 40 + i));
        const w = Float64Array.from(rand(g.k * g.k * g.C * g.CO, 50 + i, 0.5));
        const { OH, OW, y } = conv2dRef(x, w, g);
        const r = rand(y.length, 60 + i);
        const xt = tf.tensor4d(Float32Array.from(x), [g.B, g.H, g.W, g.C]);
        const wt = tf.tensor4d(Float32Array.from(w), [g.k, g.k, g.C, g.CO]);
        const rt = tf.tensor4d(r, [g.B, OH, OW, g.CO]);
        const f = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.sin(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, g.s, g.pad)), rt));
        const [dxT, dwT] = tf.grads(f)([xt, wt]);
        const dx = await dxT!.data();
        const dw = await dwT!.data();
        checkSinConvGradients(x, w, r, g, dx, dw, 30, 40);
        tf.dispose([xt, wt, rt, dxT!, dwT!]);
      }
    });

    test('composed batch norm (+ReLU) and optimizers on webgpu match the fused kernels on cpu', async () => {
      const shape = [3, 4, 5, 6];
      const xv = rand(3 * 4 * 5 * 6, 7, 2);
      const gv = rand(6, 8);
      const bv = rand(6, 9);
      const rv = rand(xv.length, 10);
      const bn = async (fused: boolean, relu: boolean) => {
        const [x, gamma, beta, r] = [tf.tensor(xv, shape), tf.tensor1d(gv), tf.tensor1d(bv), tf.tensor(rv, shape)];
        const fwd = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
          fused
            ? (tf.engine().runKernel(BN_TRAIN, { x: a, gamma: g, beta: b }, { epsilon: 1e-5, relu }) as tf.Tensor[])[0]!
            : bnTrainComposite(a, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5, relu)[0];
        const y = fwd(x, gamma, beta);
        const gs = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(fwd(a, g, b), r)))([x, gamma, beta]);
        const out = await Promise.all([y, ...gs].map(async (t) => (await t.data()) as Float32Array));
        tf.dispose([x, gamma, beta, r, y, ...gs]);
        return out;
      };
      const init = rand(50, 3);
      const coef = (i: number) => rand(50, 4 + i);
      const opt = async (make: () => tf.Optimizer) => {
        const o = make();
        const v = tf.variable(tf.tensor1d(init));
        for (let i = 0; i < 5; i++) o.minimize(() => tf.sum(tf.mul(tf.square(tf.sub(v, 0.3)), tf.tensor1d(coef(i)))) as tf.Scalar, false, [v]);
        const out = (await v.data()) as Float32Array;
        v.dispose();
        o.dispose();
        return out;
      };
      await setupTfjs({ backend: 'cpu' });
      const ref = { bn: [await bn(true, true), await bn(true, false)], adam: await opt(() => new ColorpipeAdam(0.01)), adadelta: await opt(() => new ColorpipeAdadelta(1.0)) };
      await webgpu();
      for (const [i, relu] of [true, false].entries()) {
        const got = await bn(false, relu);
        for (const [j, what] of ['y', 'dx', 'dgamma', 'dbeta'].entries()) {
          assert.ok(relErr(got[j]!, ref.bn[i]![j]!) < 1e-4, `bn relu=${relu} ${what}: ${relErr(got[j]!, ref.bn[i]![j]!)}`);
        }
      }
      assert.ok(relErr(await opt(() => new ColorpipeAdam(0.01)), ref.adam) < 1e-5, 'adam');
      assert.ok(relErr(await opt(() => new ColorpipeAdadelta(1.0)), ref.adadelta) < 1e-5, 'adadelta');
    });

    test('200 training steps: tensor count and GPU buffer bytes stay flat after warm-up', async () => {
      await webgpu();
      const S = 32;
      const cfg = makeConfig({ model: { inputSize: S, width: 0.125, numClasses: 4 }, train: { batch: 2, lr: 0.003 } });
      const c = buildColorizer(cfg.model, { seed: 1 });
      const trainer = createTrainer(c.train, cfg, tf);
      const batches = [0, 1, 2, 3].map((s) => synthetic(s, 2, S));
      const WARM = 20;
      const samples: Array<{ step: number; tensors: number; gpu: number; inUse: number }> = [];
      let first = NaN;
      let last = NaN;
      for (let i = 0; i < 200; i++) {
        const r = await trainer.step(batches[i % 4]!);
        if (i === 0) first = r.loss;
        last = r.loss;
        assert.ok(Number.isFinite(r.loss), `finite loss at step ${i}`);
        if (i >= WARM) {
          const m = tf.memory() as tf.MemoryInfo & { numBytesInGPUAllocated?: number; numBytesAllocatedInGPU?: number; numBytesInGPU?: number };
          samples.push({ step: i, tensors: m.numTensors, gpu: m.numBytesAllocatedInGPU ?? NaN, inUse: m.numBytesInGPU ?? NaN });
        }
      }
      const w = samples[0]!;
      for (const s of samples) {
        assert.equal(s.tensors, w.tensors, `numTensors at step ${s.step}`);
        assert.equal(s.inUse, w.inUse, `GPU bytes in use at step ${s.step}`);
        assert.ok(s.gpu <= w.gpu, `GPU bytes allocated at step ${s.step}: ${s.gpu} > ${w.gpu} at step ${w.step}`);
      }
      assert.ok(Number.isFinite(w.gpu) && w.gpu > 0, `tfjs-webgpu reports its GPU bytes: ${JSON.stringify(w)}`);
      assert.ok(last < first, `loss falls: ${first} -> ${last}`);
      trainer.dispose();
      disposeColorizer(c);
    });
  });
}
