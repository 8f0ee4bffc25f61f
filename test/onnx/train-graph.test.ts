/**
 * The training graph's layers (src/onnx/train-ops.ts) run by ONNX Runtime, against central finite differences
 * of a nonlinear loss, sum(sin(layer(x)) * r), in float64: convolutions at stride 1 and 2 on even and odd sizes,
 * 3x3 and 1x1, in every formulation of their gradients (per image and channel-major); batch norm + ReLU in training mode. The whole network's
 * gradients against the tfjs engine's are in train-engine.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadOrt } from '../../src/onnx/session.js';
import { encodeModel, floatValueInfo } from '../../src/onnx/proto.js';
import { hwioToOihw, oihwToHwio } from '../../src/onnx/layout.js';
import { TrainNodes, type Formulation } from '../../src/onnx/train-ops.js';
import { checkSinConvGradients, conv2dRef, rand, type ConvGeom } from '../tfjs/reference.js';

/** Runs a graph built on `nodes` whose loss is sum(sin(y) * r); returns the named gradients. */
async function lossGradients(
  nodes: TrainNodes,
  y: { name: string; shape: number[] },
  feeds: Record<string, { data: Float32Array; dims: number[] }>,
  grads: Record<string, () => string>,
): Promise<Record<string, Float32Array>> {
  const cos = nodes.op('Cos', [y.name]);
  nodes.accumulate(y.name, nodes.op('Mul', [cos, 'r']));
  nodes.backward();
  const outputs = Object.entries(grads).map(([name, of]) => {
    nodes.add('Identity', [of()], `out/${name}`);
    return floatValueInfo(`out/${name}`, feeds[name]!.dims);
  });
  const bytes = encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'layer',
      node: nodes.nodes,
      initializer: nodes.inits,
      input: Object.entries(feeds).map(([name, f]) => floatValueInfo(name, f.dims)),
      output: outputs,
    },
  });
  const ort = await loadOrt();
  const session = await ort.InferenceSession.create(bytes, { logSeverityLevel: 3 });
  let out: Record<string, { data: unknown }>;
  try {
    out = await session.run(Object.fromEntries(Object.entries(feeds).map(([k, f]) => [k, new ort.Tensor('float32', f.data, f.dims)])));
  } finally {
    await session.release();
  }
  return Object.fromEntries(Object.keys(grads).map((k) => [k, out[`out/${k}`]!.data as Float32Array]));
}

/** [B, H, W, C] <-> [B, C, H, W] */
function toNchw(x: ArrayLike<number>, B: number, H: number, W: number, C: number): Float32Array {
  const out = new Float32Array(B * C * H * W);
  for (let b = 0; b < B; b++) for (let y = 0; y < H; y++) for (let x0 = 0; x0 < W; x0++) for (let c = 0; c < C; c++) out[((b * C + c) * H + y) * W + x0] = x[((b * H + y) * W + x0) * C + c]!;
  return out;
}
function toNhwc(x: ArrayLike<number>, B: number, H: number, W: number, C: number): Float32Array {
  const out = new Float32Array(B * C * H * W);
  for (let b = 0; b < B; b++) for (let y = 0; y < H; y++) for (let x0 = 0; x0 < W; x0++) for (let c = 0; c < C; c++) out[((b * H + y) * W + x0) * C + c] = x[((b * C + c) * H + y) * W + x0]!;
  return out;
}

const CASES: ConvGeom[] = [
  { B: 2, H: 6, W: 5, C: 3, CO: 4, k: 3, s: 1, pad: 'same' },
  { B: 2, H: 8, W: 6, C: 3, CO: 4, k: 3, s: 2, pad: 'same' },
  { B: 2, H: 7, W: 5, C: 2, CO: 3, k: 3, s: 2, pad: 'same' },
  { B: 2, H: 2, W: 2, C: 3, CO: 2, k: 3, s: 2, pad: 'same' },
  { B: 3, H: 1, W: 1, C: 4, CO: 3, k: 3, s: 1, pad: 'same' },
  { B: 2, H: 4, W: 3, C: 5, CO: 3, k: 1, s: 1, pad: 'same' },
  { B: 2, H: 1, W: 2, C: 6, CO: 5, k: 1, s: 1, pad: 'same' },
];
const FORMULATIONS: Formulation[] = [
  { wgrad: 'im2col', dgrad: 'flip' },
  { wgrad: 'taps', dgrad: 'transpose' },
];

test('conv gradients (weights and input, every formulation) match finite differences of a nonlinear loss', async () => {
  for (const f of FORMULATIONS) {
    for (const [i, g] of CASES.entries()) {
      const x = Float64Array.from(rand(g.B * g.H * g.W * g.C, 10 + i));
      const w = Float64Array.from(rand(g.k * g.k * g.C * g.CO, 20 + i, 0.5));
      const { OH, OW } = conv2dRef(x, w, g);
      const r = rand(g.B * OH * OW * g.CO, 30 + i);
      const nodes = new TrainNodes(f);
      let dw = '';
      const y = nodes.conv({ name: 'x', shape: [g.B, g.C, g.H, g.W] }, 'w', undefined, g.CO, g.k, g.s, true, 'conv', (d) => (dw = d));
      const sin = nodes.op('Sin', [y.name]);
      nodes.add('ReduceSum', [nodes.op('Mul', [sin, 'r'])], 'loss', { keepdims: 0 });
      const got = await lossGradients(nodes, y, {
        x: { data: toNchw(x, g.B, g.H, g.W, g.C), dims: [g.B, g.C, g.H, g.W] },
        w: { data: hwioToOihw(Float32Array.from(w), g.k, g.C, g.CO), dims: [g.CO, g.C, g.k, g.k] },
        r: { data: toNchw(r, g.B, OH, OW, g.CO), dims: [g.B, g.CO, OH, OW] },
      }, { x: () => nodes.gradOf('x')!, w: () => dw });
      const dwHwio = new Float32Array(w.length);
      oihwToHwio(got['w']!, g.k, g.C, g.CO, dwHwio);
      checkSinConvGradients(x, w, r, g, toNhwc(got['x']!, g.B, g.H, g.W, g.C), dwHwio, 40, 60);
    }
  }
});

/** y = relu(gamma * (x - mean) / sqrt(var + eps) + beta) over [B, C, H, W] with batch statistics, float64. */
function bnRef(x: Float64Array, gamma: Float64Array, beta: Float64Array, [B, C, H, W]: number[], eps: number): Float64Array {
  const y = new Float64Array(x.length);
  const n = B * H * W;
  for (let c = 0; c < C; c++) {
    let m = 0;
    let v = 0;
    const at = (b: number, p: number) => (b * C + c) * H * W + p;
    for (let b = 0; b < B; b++) for (let p = 0; p < H * W; p++) m += x[at(b, p)]! / n;
    for (let b = 0; b < B; b++) for (let p = 0; p < H * W; p++) v += (x[at(b, p)]! - m) ** 2 / n;
    for (let b = 0; b < B; b++) for (let p = 0; p < H * W; p++) y[at(b, p)] = Math.max(0, (gamma[c]! * (x[at(b, p)]! - m)) / Math.sqrt(v + eps) + beta[c]!);
  }
  return y;
}

test('batch norm + ReLU in training mode: gradients of input, gamma and beta match finite differences', async () => {
  const shape = [3, 4, 5, 3];
  const eps = 1e-5;
  const size = shape.reduce((a, b) => a * b, 1);
  const x = Float64Array.from(rand(size, 1, 2));
  const gamma = Float64Array.from(rand(4, 2), (v) => 1 + 0.5 * v);
  const beta = Float64Array.from(rand(4, 3, 0.5));
  // Weights with a non-zero mean, so that each term of the input gradient (dbeta's included) is large.
  const r = rand(size, 4).map((v) => v + 0.5);
  const loss = () => bnRef(x, gamma, beta, shape, eps).reduce((a, v, i) => a + Math.sin(v) * r[i]!, 0);
  const nodes = new TrainNodes(FORMULATIONS[0]!);
  const { y } = nodes.batchNormTrain({ name: 'x', shape }, 'gamma', 'beta', eps, true, 'bn');
  const got = await lossGradients(nodes, y, {
    x: { data: Float32Array.from(x), dims: shape },
    gamma: { data: Float32Array.from(gamma), dims: [4] },
    beta: { data: Float32Array.from(beta), dims: [4] },
    r: { data: r, dims: shape },
  }, { x: () => nodes.gradOf('x')!, gamma: () => nodes.paramGrads.get('gamma')!, beta: () => nodes.paramGrads.get('beta')! });
  for (const [name, arr] of [['x', x], ['gamma', gamma], ['beta', beta]] as const) {
    for (let j = 0; j < arr.length; j += Math.max(1, Math.floor(arr.length / 40))) {
      const keep = arr[j]!;
      arr[j] = keep + 1e-5;
      const up = loss();
      arr[j] = keep - 1e-5;
      const down = loss();
      arr[j] = keep;
      const fd = (up - down) / 2e-5;
      // float32 against float64: 1e-4 is far above float32 rounding and far below a wrong term's effect.
      assert.ok(Math.abs(fd - got[name]![j]!) < 1e-4 * Math.max(1, Math.abs(fd)), `d${name}[${j}]: fd ${fd} vs ${got[name]![j]}`);
    }
  }
});
