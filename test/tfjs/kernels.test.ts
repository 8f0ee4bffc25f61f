/**
 * colorpipe's gradient kernels: the wasm Conv2DBackpropFilter / Conv2DBackpropInput / transposed BatchMatMul /
 * Identity, the webgpu im2col filter gradient (run on the cpu backend), and the fused batch-norm and optimizer
 * kernels, against the cpu backend's built-in kernels and against finite differences of a float64 reference.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setupTfjs } from '../../src/tfjs/backend.js';
import { setFilterGradPath, setWasmChunkBytes } from '../../src/tfjs/kernels/wasm.js';
import { im2colFilterGrad } from '../../src/tfjs/kernels/webgpu.js';
import { ADADELTA_UPDATE, ADAM_UPDATE, BN_TRAIN, registerFusedKernels } from '../../src/tfjs/kernels/fused.js';
import { BatchNormLayer, bnTrainComposite } from '../../src/tfjs/layers.js';
import { ColorpipeAdadelta, ColorpipeAdam } from '../../src/tfjs/optimizers.js';
import { checkSinConvGradients, conv2dRef, rand, relErr, type ConvGeom } from './reference.js';

const CASES: ConvGeom[] = [
  { B: 2, H: 8, W: 8, C: 3, CO: 4, k: 3, s: 1, pad: 'same' },
  { B: 2, H: 8, W: 8, C: 3, CO: 4, k: 3, s: 2, pad: 'same' },
  { B: 3, H: 7, W: 9, C: 5, CO: 6, k: 3, s: 2, pad: 'same' }, // odd sizes: TF pads 1 before at stride 2
  { B: 2, H: 7, W: 7, C: 3, CO: 4, k: 3, s: 1, pad: 'same' },
  { B: 2, H: 6, W: 10, C: 2, CO: 3, k: 3, s: 2, pad: 'valid' },
  { B: 2, H: 5, W: 5, C: 4, CO: 3, k: 1, s: 1, pad: 'same' }, // the fusion layer's 1x1
  { B: 2, H: 16, W: 16, C: 20, CO: 17, k: 3, s: 2, pad: 'same' },
  { B: 2, H: 6, W: 6, C: 16, CO: 32, k: 3, s: 1, pad: 'same' },
  { B: 1, H: 1, W: 1, C: 8, CO: 8, k: 3, s: 2, pad: 'same' }, // the global path's last stride 2 at 32px
];

function attrs(g: ConvGeom) {
  return { strides: [g.s, g.s], pad: g.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
}

/** dx and dW of sum(conv(x, w) * r) on the active backend, through tfjs's gradient machinery. */
async function grads(g: ConvGeom, x: Float32Array, w: Float32Array, r: Float32Array): Promise<{ dx: Float32Array; dw: Float32Array; y: Float32Array }> {
  const xt = tf.tensor4d(x, [g.B, g.H, g.W, g.C]);
  const wt = tf.tensor4d(w, [g.k, g.k, g.C, g.CO]);
  const y = tf.conv2d(xt, wt, g.s, g.pad);
  const rt = tf.tensor(r, y.shape);
  const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, g.s, g.pad), rt)))([xt, wt]);
  const out = { dx: (await dx!.data()) as Float32Array, dw: (await dw!.data()) as Float32Array, y: (await y.data()) as Float32Array };
  tf.dispose([xt, wt, y, rt, dx!, dw!]);
  return out;
}

test('wasm Conv2DBackpropInput and Conv2DBackpropFilter match the cpu backend (strides 1 and 2, odd sizes, batch, channels)', async () => {
  await setupTfjs({ backend: 'cpu' });
  type Out = Awaited<ReturnType<typeof grads>>;
  const ref: Array<{ g: ConvGeom; x: Float32Array; w: Float32Array; r: Float32Array; out: Out | null }> = [];
  for (const [i, g] of CASES.entries()) {
    const x = rand(g.B * g.H * g.W * g.C, 10 + i);
    const w = rand(g.k * g.k * g.C * g.CO, 20 + i);
    const { y } = conv2dRef(x, w, g);
    ref.push({ g, x, w, r: rand(y.length, 30 + i), out: null });
  }
  for (const c of ref) c.out = await grads(c.g, c.x, c.w, c.r);
  await setupTfjs({ backend: 'wasm' });
  // Both filter-gradient formulations (im2col + one GEMM; shifted GEMMs over a phase frame), and the heuristic.
  for (const path of ['im2col', 'shifted', 'auto'] as const) {
    setFilterGradPath(path);
    for (const c of ref) {
      const got = await grads(c.g, c.x, c.w, c.r);
      assert.ok(relErr(got.dx, c.out!.dx) < 1e-5, `dx ${JSON.stringify(c.g)}: ${relErr(got.dx, c.out!.dx)}`);
      assert.ok(relErr(got.dw, c.out!.dw) < 1e-5, `dw ${path} ${JSON.stringify(c.g)}: ${relErr(got.dw, c.out!.dw)}`);
    }
  }
  setFilterGradPath('auto');
});

test('wasm conv gradients match finite differences of a nonlinear loss (float64 reference)', async () => {
  await setupTfjs({ backend: 'wasm' });
  for (const [i, g] of CASES.slice(0, 7).entries()) {
    const x = Float64Array.from(rand(g.B * g.H * g.W * g.C, 40 + i));
    const w = Float64Array.from(rand(g.k * g.k * g.C * g.CO, 50 + i, 0.5));
    const r = rand(conv2dRef(x, w, g).y.length, 60 + i);
    const xt = tf.tensor4d(Float32Array.from(x), [g.B, g.H, g.W, g.C]);
    const wt = tf.tensor4d(Float32Array.from(w), [g.k, g.k, g.C, g.CO]);
    const { OH, OW } = conv2dRef(x, w, g);
    const rt = tf.tensor4d(r, [g.B, OH, OW, g.CO]);
    const [dxT, dwT] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.sin(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, g.s, g.pad)), rt)))([xt, wt]);
    const dx = await dxT!.data();
    const dw = await dwT!.data();
    // Every weight (up to 60) and a spread of input positions (borders included).
    checkSinConvGradients(x, w, r, g, dx, dw, 40, 60);
    tf.dispose([xt, wt, rt, dxT!, dwT!]);
  }
});

test('wasm Conv2DBackpropFilter gives the same result when the batch is processed in chunks', async (t) => {
  await setupTfjs({ backend: 'wasm' });
  const g: ConvGeom = { B: 5, H: 9, W: 7, C: 6, CO: 5, k: 3, s: 2, pad: 'same' };
  const x = rand(g.B * g.H * g.W * g.C, 1);
  const w = rand(g.k * g.k * g.C * g.CO, 2);
  const r = rand(conv2dRef(x, w, g).y.length, 3);
  const whole = await grads(g, x, w, r);
  setFilterGradPath('im2col'); // the chunked path
  const prev = setWasmChunkBytes(1); // one image per chunk
  t.after(() => {
    setWasmChunkBytes(prev);
    setFilterGradPath('auto');
  });
  const chunked = await grads(g, x, w, r);
  assert.ok(relErr(chunked.dw, whole.dw) < 1e-6);
  const g1: ConvGeom = { ...g, k: 1, s: 1 }; // pointwise path
  const w1 = rand(g.C * g.CO, 4);
  const r1 = rand(conv2dRef(x, w1, g1).y.length, 5);
  const c1 = await grads(g1, x, w1, r1);
  setWasmChunkBytes(prev);
  const w1whole = await grads(g1, x, w1, r1);
  assert.ok(relErr(c1.dw, w1whole.dw) < 1e-6);
});

test('wasm BatchMatMul with transposes matches cpu; wasm Identity shares memory', async () => {
  const a = rand(5 * 7, 1);
  const b = rand(7 * 6, 2);
  const res: Record<string, Float32Array[]> = {};
  for (const backend of ['cpu', 'wasm'] as const) {
    await setupTfjs({ backend });
    res[backend] = [];
    for (const [ta, tb] of [[true, false], [false, true], [true, true], [false, false]] as const) {
      const A = tf.tensor2d(a, ta ? [7, 5] : [5, 7]);
      const B = tf.tensor2d(b, tb ? [6, 7] : [7, 6]);
      const y = tf.matMul(A, B, ta, tb);
      assert.deepEqual(y.shape, [5, 6]);
      res[backend]!.push((await y.data()) as Float32Array);
      tf.dispose([A, B, y]);
    }
  }
  res['cpu']!.forEach((r, i) => assert.ok(relErr(res['wasm']![i]!, r) < 1e-6));
  const x = tf.tensor1d([1, 2, 3]);
  const before = tf.memory().numBytes;
  const y = tf.clone(x);
  assert.equal(tf.memory().numBytes, before + 12); // tracked per tensor...
  const backend = tf.backend() as unknown as { dataIdMap: { get(d: object): { memoryOffset: number } } };
  assert.equal(backend.dataIdMap.get(y.dataId).memoryOffset, backend.dataIdMap.get(x.dataId).memoryOffset); // ...but one buffer
  x.dispose();
  assert.deepEqual(Array.from(await y.data()), [1, 2, 3]);
  y.dispose();
});

test('webgpu im2col filter gradient (run with the cpu backend kernels) matches the built-in kernel, chunked or not', async () => {
  await setupTfjs({ backend: 'cpu' });
  for (const [i, g] of CASES.entries()) {
    const x = tf.tensor4d(rand(g.B * g.H * g.W * g.C, 70 + i), [g.B, g.H, g.W, g.C]);
    const w = [g.k, g.k, g.C, g.CO] as [number, number, number, number];
    const y = tf.conv2d(x, tf.zeros(w) as tf.Tensor4D, g.s, g.pad);
    const dy = tf.tensor(rand(y.size, 80 + i), y.shape);
    const a = { ...attrs(g), filterShape: w };
    const ref = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, a as never) as tf.Tensor;
    const before = tf.backend().numDataIds();
    for (const chunk of [1 << 30, 1]) {
      const out = im2colFilterGrad('cpu', chunk)({ inputs: { x, dy }, attrs: a as never, backend: tf.backend() }) as tf.TensorInfo;
      assert.deepEqual(out.shape, w);
      const got = tf.backend().readSync(out.dataId) as Float32Array;
      assert.ok(relErr(got, await ref.data()) < 1e-5, `${JSON.stringify(g)} chunk ${chunk}`);
      tf.backend().disposeData(out.dataId);
      assert.equal(tf.backend().numDataIds(), before, 'no intermediate left behind');
    }
    tf.dispose([x, y, dy, ref]);
  }
});

test('fused batch norm (+ReLU) kernels match the composite version and finite differences', async () => {
  for (const backend of ['wasm', 'cpu'] as const) {
    await setupTfjs({ backend });
    for (const relu of [true, false]) {
      const shape = [3, 4, 5, 6];
      const xv = rand(3 * 4 * 5 * 6, 7, 2);
      const gv = rand(6, 8);
      const bv = rand(6, 9);
      const rv = rand(xv.length, 10);
      const x = tf.tensor(xv, shape);
      const gamma = tf.tensor1d(gv);
      const beta = tf.tensor1d(bv);
      const r = tf.tensor(rv, shape);
      const fused = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
        (tf.engine().runKernel(BN_TRAIN, { x: a, gamma: g, beta: b }, { epsilon: 1e-5, relu }) as tf.Tensor[])[0]!;
      const composite = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const [y, m, v] = bnTrainComposite(a, g as tf.Tensor1D, b as tf.Tensor1D, 1e-5, relu);
        tf.dispose([m, v]);
        return y;
      };
      const results = [];
      for (const f of [fused, composite]) {
        const [dx, dg, db] = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, g, b), r)))([x, gamma, beta]);
        const y = tf.tidy(() => f(x, gamma, beta));
        results.push({ y: await y.data(), dx: await dx!.data(), dg: await dg!.data(), db: await db!.data() });
        tf.dispose([y, dx!, dg!, db!]);
      }
      const [a, b] = results as [(typeof results)[0], (typeof results)[0]];
      assert.ok(relErr(a.y, b.y) < 1e-5, `${backend} relu=${relu} forward`);
      assert.ok(relErr(a.dx, b.dx) < 1e-4, `${backend} relu=${relu} dx ${relErr(a.dx, b.dx)}`);
      assert.ok(relErr(a.dg, b.dg) < 1e-4, `${backend} relu=${relu} dgamma`);
      assert.ok(relErr(a.db, b.db) < 1e-4, `${backend} relu=${relu} dbeta`);
      // Finite differences (float64) of the same loss for a few inputs and every gamma/beta.
      const lossAt = (xx: Float64Array, gg: Float64Array, bb: Float64Array) => {
        const C = 6;
        const n = xx.length / C;
        let s = 0;
        for (let c = 0; c < C; c++) {
          let m = 0;
          for (let i = 0; i < n; i++) m += xx[i * C + c]!;
          m /= n;
          let v = 0;
          for (let i = 0; i < n; i++) v += (xx[i * C + c]! - m) ** 2;
          v /= n;
          for (let i = 0; i < n; i++) {
            let yv = ((xx[i * C + c]! - m) / Math.sqrt(v + 1e-5)) * gg[c]! + bb[c]!;
            if (relu) yv = Math.max(0, yv);
            s += yv * rv[i * C + c]!;
          }
        }
        return s;
      };
      const X = Float64Array.from(xv);
      const G = Float64Array.from(gv);
      const Bt = Float64Array.from(bv);
      const eps = 1e-5;
      const fd = (arr: Float64Array, j: number) => {
        const k = arr[j]!;
        arr[j] = k + eps;
        const up = lossAt(X, G, Bt);
        arr[j] = k - eps;
        const dn = lossAt(X, G, Bt);
        arr[j] = k;
        return (up - dn) / (2 * eps);
      };
      for (const j of [0, 7, 33, 100, 359]) assert.ok(Math.abs(fd(X, j) - a.dx[j]!) < 2e-3, `${backend} dx[${j}] fd ${fd(X, j)} vs ${a.dx[j]}`);
      for (let j = 0; j < 6; j++) {
        assert.ok(Math.abs(fd(G, j) - a.dg[j]!) < 2e-3, `dgamma[${j}]`);
        assert.ok(Math.abs(fd(Bt, j) - a.db[j]!) < 2e-3, `dbeta[${j}]`);
      }
      tf.dispose([x, gamma, beta, r]);
    }
  }
});

test('BatchNormLayer in training mode: fused and composite paths update the moving statistics alike', async (t) => {
  await setupTfjs({ backend: 'wasm' });
  t.after(() => registerFusedKernels('wasm'));
  const x = tf.tensor4d(rand(2 * 3 * 3 * 5, 11, 2), [2, 3, 3, 5]);
  const stats = [];
  for (const fused of [true, false]) {
    if (!fused) tf.unregisterKernel(BN_TRAIN, 'wasm');
    const layer = new BatchNormLayer({ name: `bn_${fused}`, momentum: 0.8, relu: true });
    for (let i = 0; i < 3; i++) tf.dispose(layer.apply(x, { training: true }) as tf.Tensor);
    const [, , mm, mv] = layer.getWeights();
    stats.push({ mm: await mm!.data(), mv: await mv!.data() });
    layer.dispose();
  }
  assert.ok(relErr(stats[0]!.mm, stats[1]!.mm) < 1e-6);
  assert.ok(relErr(stats[0]!.mv, stats[1]!.mv) < 1e-5);
  // Unbiased moving variance: after 3 steps of momentum 0.8 from 1, 0.512 + 0.488 * var * n / (n - 1).
  const xv = await x.data();
  let m = 0;
  for (let i = 0; i < 18; i++) m += xv[i * 5]!;
  m /= 18;
  let v = 0;
  for (let i = 0; i < 18; i++) v += (xv[i * 5]! - m) ** 2;
  assert.ok(Math.abs(stats[0]!.mv[0]! - (0.512 + 0.488 * (v / 17))) < 1e-5);
  assert.ok(Math.abs(stats[0]!.mm[0]! - 0.488 * m) < 1e-6);
  x.dispose();
});

test('fused Adam follows tfjs Adam step for step; Adadelta follows Zeiler/torch; composite paths agree', async (t) => {
  // Puts back the kernels a composite run below unregisters, should it fail before it does so itself.
  t.after(() => {
    for (const backend of ['wasm', 'cpu'] as const) registerFusedKernels(backend);
  });
  /** Float64 Adadelta as torch implements it (the new running average of g^2 in the update). */
  const adadeltaRef = (init: Float32Array, gradsOf: (w: Float64Array, i: number) => Float64Array, steps: number, lr: number, rho = 0.95, eps = 1e-6) => {
    const w = Float64Array.from(init);
    const ag = new Float64Array(w.length);
    const au = new Float64Array(w.length);
    for (let t = 0; t < steps; t++) {
      const g = gradsOf(w, t);
      for (let i = 0; i < w.length; i++) {
        ag[i] = rho * ag[i]! + (1 - rho) * g[i]! * g[i]!;
        const u = (Math.sqrt(au[i]! + eps) / Math.sqrt(ag[i]! + eps)) * g[i]!;
        au[i] = rho * au[i]! + (1 - rho) * u * u;
        w[i] = w[i]! - lr * u;
      }
    }
    return w;
  };
  const init = rand(50, 3);
  const coef = (i: number) => rand(50, 4 + i);
  // loss_t(w) = sum(coef_t * (w - 0.3)^2)  ->  grad = 2 coef_t (w - 0.3)
  const lossAt = (v: tf.Variable, i: number) => tf.sum(tf.mul(tf.square(tf.sub(v, 0.3)), tf.tensor1d(coef(i)))) as tf.Scalar;
  const run = async (opt: tf.Optimizer) => {
    const v = tf.variable(tf.tensor1d(init));
    for (let i = 0; i < 5; i++) opt.minimize(() => lossAt(v, i), false, [v]);
    const out = (await v.data()) as Float32Array;
    v.dispose();
    opt.dispose();
    return out;
  };
  const expectedAdadelta = adadeltaRef(init, (w, t) => Float64Array.from(w, (x, i) => 2 * coef(t)[i]! * (x - 0.3)), 5, 1.0);
  for (const backend of ['wasm', 'cpu'] as const) {
    await setupTfjs({ backend });
    const adamRef = await run(tf.train.adam(0.01));
    for (const [kind, expected, make] of [
      ['adam', adamRef, () => new ColorpipeAdam(0.01)],
      ['adadelta', expectedAdadelta, () => new ColorpipeAdadelta(1.0)],
    ] as const) {
      const fused = await run(make());
      assert.ok(relErr(fused, expected) < 1e-5, `${backend} ${kind}: ${relErr(fused, expected)}`);
      assert.notDeepEqual(Array.from(fused), Array.from(init));
      // Without the fused kernel the optimizer composes tfjs ops (webgpu, tensorflow): same result.
      const kernel = kind === 'adam' ? ADAM_UPDATE : ADADELTA_UPDATE;
      tf.unregisterKernel(kernel, backend);
      const composite = await run(make());
      registerFusedKernels(backend);
      assert.ok(relErr(composite, expected) < 1e-5, `${backend} ${kind} composite`);
    }
  }
});
