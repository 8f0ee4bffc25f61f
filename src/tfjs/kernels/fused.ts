/**
 * Fused training kernels written in JavaScript over the backend's own memory (the wasm heap, or the cpu
 * backend's typed arrays): batch normalization (+ ReLU) in training mode with its gradient, and the Adam and
 * Adadelta updates.
 *
 * Why: composed from tfjs ops, one batch-norm layer in training costs about 40 kernel calls forward and
 * backward (moments, normalization, ReLU, then tfjs's FusedBatchNorm gradient, which tiles 1/sqrt(var) to the
 * full activation size), and an Adam step about 12 calls per variable. On wasm each call has a fixed cost of
 * tens of microseconds plus a full pass over memory, so for the small networks this project trains in tests
 * and demos these calls, not the convolutions, dominated a step. Here batch norm is 2 passes forward and 2
 * backward, and the optimizer 1 pass per variable.
 *
 * Kernel names (registered for 'wasm' and 'cpu' by `registerFusedKernels`); other backends use the composed
 * equivalents in layers.ts / optimizers.ts, which compute the same functions:
 * - ColorpipeBatchNormTrain: inputs {x [..., C], gamma [C], beta [C], movingMean?, movingVariance?},
 *     attrs {epsilon, relu, momentum?} -> [y, mean [C], variance [C] (biased), and with the moving inputs: their
 *     updates momentum * moving + (1 - momentum) * batch statistic (unbiased variance)].
 *     y = act((x - mean) / sqrt(variance + epsilon) * gamma + beta).
 * - ColorpipeBatchNormTrainGrad: inputs {dy, x, y, gamma, mean, variance}, attrs {epsilon, relu}
 *     -> [dx, dgamma, dbeta].
 * - ColorpipeAdamUpdate: inputs {w, g, m, v}, attrs {lr, beta1, beta2, epsilon, t} -> [w', m', v'].
 * - ColorpipeAdadeltaUpdate: inputs {w, g, ag, au}, attrs {lr, rho, epsilon} -> [w', ag', au'].
 */
import { registerGradient, registerKernel, getKernel, getGradient, util } from '@tensorflow/tfjs-core';
import type { DataId, KernelConfig, KernelFunc, NamedAttrMap, Tensor, TensorInfo } from '@tensorflow/tfjs-core';
import * as tf from '@tensorflow/tfjs-core';

export const BN_TRAIN = 'ColorpipeBatchNormTrain';
export const BN_TRAIN_GRAD = 'ColorpipeBatchNormTrainGrad';
export const ADAM_UPDATE = 'ColorpipeAdamUpdate';
export const ADADELTA_UPDATE = 'ColorpipeAdadeltaUpdate';

/** Typed-array access to one backend's tensors. Views must be taken after every output is allocated. */
interface Mem {
  alloc(shape: number[]): TensorInfo;
  view(t: TensorInfo): Float32Array;
}

function memFor(backendName: string, backend: unknown): Mem {
  if (backendName === 'wasm') {
    const b = backend as {
      makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
      dataIdMap: { get(d: DataId): { memoryOffset: number } };
      wasm: { HEAPF32: Float32Array };
    };
    return {
      alloc: (shape) => b.makeOutput(shape, 'float32'),
      view: (t) => {
        const off = b.dataIdMap.get(t.dataId).memoryOffset >>> 2;
        return b.wasm.HEAPF32.subarray(off, off + util.sizeFromShape(t.shape));
      },
    };
  }
  const b = backend as {
    makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
    data: { get(d: DataId): { values: Float32Array } };
    readSync(d: DataId): Float32Array;
  };
  return {
    alloc: (shape) => b.makeTensorInfo(shape, 'float32', new Float32Array(util.sizeFromShape(shape))),
    view: (t) => {
      const v = b.data.get(t.dataId).values;
      return v instanceof Float32Array ? v : (b.readSync(t.dataId) as Float32Array);
    },
  };
}

type Args = { inputs: Record<string, TensorInfo>; attrs: NamedAttrMap; backend: unknown };

// Small monomorphic loops: V8 optimizes them far better than the same loops inside one large kernel closure.
// ReLU is written branch-free ((v + |v|) / 2, dy * +(y > 0)): with data-dependent branches these loops ran
// 3-4x slower.

function channelSums(xv: Float32Array, C: number, s: Float64Array, ss: Float64Array): void {
  // Channel by channel with local accumulators (strided reads stay in cache lines shared by neighbours).
  const size = xv.length;
  for (let c = 0; c < C; c++) {
    let a = 0;
    let b = 0;
    for (let i = c; i < size; i += C) {
      const v = xv[i]!;
      a += v;
      b += v * v;
    }
    s[c] = a;
    ss[c] = b;
  }
}

function affine(xv: Float32Array, yv: Float32Array, C: number, scale: Float64Array, shift: Float64Array): void {
  const size = xv.length;
  for (let i = 0; i < size; i += C) for (let c = 0; c < C; c++) yv[i + c] = xv[i + c]! * scale[c]! + shift[c]!;
}

function affineRelu(xv: Float32Array, yv: Float32Array, C: number, scale: Float64Array, shift: Float64Array): void {
  const size = xv.length;
  for (let i = 0; i < size; i += C) {
    for (let c = 0; c < C; c++) {
      const v = xv[i + c]! * scale[c]! + shift[c]!;
      yv[i + c] = (v + Math.abs(v)) * 0.5;
    }
  }
}

function gradSums(dyv: Float32Array, xv: Float32Array, yv: Float32Array | null, C: number, mean: Float64Array, db: Float64Array, dg: Float64Array): void {
  const size = xv.length;
  for (let c = 0; c < C; c++) {
    let a = 0;
    let b = 0;
    const m = mean[c]!;
    if (yv) {
      for (let i = c; i < size; i += C) {
        const dz = dyv[i]! * +(yv[i]! > 0);
        a += dz;
        b += dz * (xv[i]! - m);
      }
    } else {
      for (let i = c; i < size; i += C) {
        const dz = dyv[i]!;
        a += dz;
        b += dz * (xv[i]! - m);
      }
    }
    db[c] = a;
    dg[c] = b;
  }
}

function gradInput(
  dyv: Float32Array,
  xv: Float32Array,
  yv: Float32Array | null,
  dxv: Float32Array,
  C: number,
  mean: Float64Array,
  k: Float64Array,
  ka: Float64Array,
  b2: Float64Array,
): void {
  const size = xv.length;
  if (yv) {
    for (let i = 0; i < size; i += C) {
      for (let c = 0; c < C; c++) {
        const dz = dyv[i + c]! * +(yv[i + c]! > 0);
        dxv[i + c] = k[c]! * dz - ka[c]! - (xv[i + c]! - mean[c]!) * b2[c]!;
      }
    }
  } else {
    for (let i = 0; i < size; i += C) {
      for (let c = 0; c < C; c++) dxv[i + c] = k[c]! * dyv[i + c]! - ka[c]! - (xv[i + c]! - mean[c]!) * b2[c]!;
    }
  }
}

function bnTrainKernel(backendName: string): KernelFunc {
  return ((args: Args) => {
    const { x, gamma, beta } = args.inputs as Record<string, TensorInfo>;
    const eps = args.attrs['epsilon'] as number;
    const relu = args.attrs['relu'] as boolean;
    const mem = memFor(backendName, args.backend);
    const C = x!.shape[x!.shape.length - 1]!;
    const size = util.sizeFromShape(x!.shape);
    const N = size / C;
    const y = mem.alloc(x!.shape);
    const meanT = mem.alloc([C]);
    const varT = mem.alloc([C]);
    const moving = args.inputs['movingMean'] && args.inputs['movingVariance'];
    const mmT = moving ? mem.alloc([C]) : null;
    const mvT = moving ? mem.alloc([C]) : null;
    const xv = mem.view(x!);
    const yv = mem.view(y);
    const gv = mem.view(gamma!);
    const bv = mem.view(beta!);
    const s = new Float64Array(C);
    const ss = new Float64Array(C);
    channelSums(xv, C, s, ss);
    const scale = new Float64Array(C);
    const shift = new Float64Array(C);
    const mv = mem.view(meanT);
    const vv = mem.view(varT);
    for (let c = 0; c < C; c++) {
      const mean = s[c]! / N;
      const variance = Math.max(0, ss[c]! / N - mean * mean);
      mv[c] = mean;
      vv[c] = variance;
      const k = gv[c]! / Math.sqrt(variance + eps);
      scale[c] = k;
      shift[c] = bv[c]! - mean * k;
    }
    if (relu) affineRelu(xv, yv, C, scale, shift);
    else affine(xv, yv, C, scale, shift);
    if (!moving) return [y, meanT, varT];
    const m = args.attrs['momentum'] as number;
    const omm = mem.view(args.inputs['movingMean']!);
    const omv = mem.view(args.inputs['movingVariance']!);
    const nmm = mem.view(mmT!);
    const nmv = mem.view(mvT!);
    const unbias = N > 1 ? N / (N - 1) : 1;
    for (let c = 0; c < C; c++) {
      nmm[c] = m * omm[c]! + (1 - m) * mv[c]!;
      nmv[c] = m * omv[c]! + (1 - m) * vv[c]! * unbias;
    }
    return [y, meanT, varT, mmT!, mvT!];
  }) as unknown as KernelFunc;
}

function bnTrainGradKernel(backendName: string): KernelFunc {
  return ((args: Args) => {
    const { dy, x, y, gamma, mean, variance } = args.inputs as Record<string, TensorInfo>;
    const eps = args.attrs['epsilon'] as number;
    const relu = args.attrs['relu'] as boolean;
    const mem = memFor(backendName, args.backend);
    const C = x!.shape[x!.shape.length - 1]!;
    const size = util.sizeFromShape(x!.shape);
    const N = size / C;
    const dx = mem.alloc(x!.shape);
    const dgT = mem.alloc([C]);
    const dbT = mem.alloc([C]);
    const dyv = mem.view(dy!);
    const xv = mem.view(x!);
    const yv = mem.view(y!);
    const gv = mem.view(gamma!);
    const mv = mem.view(mean!);
    const vv = mem.view(variance!);
    const dxv = mem.view(dx);
    const inv = new Float64Array(C);
    for (let c = 0; c < C; c++) inv[c] = 1 / Math.sqrt(vv[c]! + eps);
    // dz = dy * relu'(y); dbeta = sum dz; dgamma = sum dz * xhat, xhat = (x - mean) * inv.
    const db = new Float64Array(C);
    const dg = new Float64Array(C);
    const mean64 = Float64Array.from(mv);
    gradSums(dyv, xv, relu ? yv : null, C, mean64, db, dg);
    // dx = gamma * inv * (dz - dbeta / N - xhat * dgamma / N) = k * dz - k * a - (x - mean) * b2
    const k = new Float64Array(C);
    const ka = new Float64Array(C);
    const b2 = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      dg[c] = dg[c]! * inv[c]!;
      k[c] = gv[c]! * inv[c]!;
      ka[c] = (k[c]! * db[c]!) / N;
      b2[c] = (k[c]! * dg[c]! * inv[c]!) / N;
    }
    gradInput(dyv, xv, relu ? yv : null, dxv, C, mean64, k, ka, b2);
    const dgv = mem.view(dgT);
    const dbv = mem.view(dbT);
    for (let c = 0; c < C; c++) {
      dgv[c] = dg[c]!;
      dbv[c] = db[c]!;
    }
    return [dx, dgT, dbT];
  }) as unknown as KernelFunc;
}

function adamLoop(
  wv: Float32Array, gv: Float32Array, mv: Float32Array, vv: Float32Array,
  wo: Float32Array, mo: Float32Array, vo: Float32Array,
  lr: number, beta1: number, beta2: number, epsilon: number, t: number, n: number,
): void {
  const c1 = 1 - beta1;
  const c2 = 1 - beta2;
  const step = lr / (1 - Math.pow(beta1, t));
  const ibc2 = 1 / (1 - Math.pow(beta2, t));
  for (let i = 0; i < n; i++) {
    const gi = gv[i]!;
    const mi = beta1 * mv[i]! + c1 * gi;
    const vi = beta2 * vv[i]! + c2 * gi * gi;
    mo[i] = mi;
    vo[i] = vi;
    wo[i] = wv[i]! - (step * mi) / (Math.sqrt(vi * ibc2) + epsilon);
  }
}

function adadeltaLoop(
  wv: Float32Array, gv: Float32Array, agv: Float32Array, auv: Float32Array,
  wo: Float32Array, ago: Float32Array, auo: Float32Array,
  lr: number, rho: number, epsilon: number, n: number,
): void {
  // Zeiler's Adadelta (torch, Keras): ag' = rho ag + (1-rho) g^2; u = sqrt(au + eps) / sqrt(ag' + eps) * g;
  // au' = rho au + (1-rho) u^2; w' = w - lr u
  const c = 1 - rho;
  for (let i = 0; i < n; i++) {
    const gi = gv[i]!;
    const a = rho * agv[i]! + c * gi * gi;
    const u = Math.sqrt((auv[i]! + epsilon) / (a + epsilon)) * gi;
    ago[i] = a;
    auo[i] = rho * auv[i]! + c * u * u;
    wo[i] = wv[i]! - lr * u;
  }
}

function adamKernel(backendName: string): KernelFunc {
  return ((args: Args) => {
    const { w, g, m, v } = args.inputs as Record<string, TensorInfo>;
    const { lr, beta1, beta2, epsilon, t } = args.attrs as Record<string, number>;
    const mem = memFor(backendName, args.backend);
    const n = util.sizeFromShape(w!.shape);
    const w2 = mem.alloc(w!.shape);
    const m2 = mem.alloc(w!.shape);
    const v2 = mem.alloc(w!.shape);
    // tfjs's Adam: m' = b1 m + (1-b1) g; v' = b2 v + (1-b2) g^2; w' = w - lr * (m'/(1-b1^t)) / (sqrt(v'/(1-b2^t)) + eps)
    adamLoop(mem.view(w!), mem.view(g!), mem.view(m!), mem.view(v!), mem.view(w2), mem.view(m2), mem.view(v2), lr!, beta1!, beta2!, epsilon!, t!, n);
    return [w2, m2, v2];
  }) as unknown as KernelFunc;
}

function adadeltaKernel(backendName: string): KernelFunc {
  return ((args: Args) => {
    const { w, g, ag, au } = args.inputs as Record<string, TensorInfo>;
    const { lr, rho, epsilon } = args.attrs as Record<string, number>;
    const mem = memFor(backendName, args.backend);
    const n = util.sizeFromShape(w!.shape);
    const w2 = mem.alloc(w!.shape);
    const ag2 = mem.alloc(w!.shape);
    const au2 = mem.alloc(w!.shape);
    adadeltaLoop(mem.view(w!), mem.view(g!), mem.view(ag!), mem.view(au!), mem.view(w2), mem.view(ag2), mem.view(au2), lr!, rho!, epsilon!, n);
    return [w2, ag2, au2];
  }) as unknown as KernelFunc;
}

/** The batch-norm kernel's gradient (backend-independent: it runs the gradient kernel of the active backend). */
const bnGrad = {
  kernelName: BN_TRAIN,
  inputsToSave: ['x', 'gamma'],
  outputsToSave: [true, true, true],
  gradFunc: (dy: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [x, gamma, y, mean, variance] = saved as [Tensor, Tensor, Tensor, Tensor, Tensor];
    const dyY = Array.isArray(dy) ? dy[0]! : dy;
    // Computed once for the three inputs. The engine runs gradFunc inside its 'backward' tidy, which holds every
    // gradient until the backward pass ends anyway, so computing eagerly costs no extra memory.
    const [dx, dgamma, dbeta] = tf.engine().runKernel(BN_TRAIN_GRAD, { dy: dyY, x, y, gamma, mean, variance }, attrs) as Tensor[];
    return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
  },
};

/** Registers the fused kernels for 'wasm' or 'cpu' (and the batch-norm gradient). Idempotent. */
export function registerFusedKernels(backendName: 'wasm' | 'cpu'): void {
  const configs: Array<[string, KernelFunc]> = [
    [BN_TRAIN, bnTrainKernel(backendName)],
    [BN_TRAIN_GRAD, bnTrainGradKernel(backendName)],
    [ADAM_UPDATE, adamKernel(backendName)],
    [ADADELTA_UPDATE, adadeltaKernel(backendName)],
  ];
  for (const [kernelName, kernelFunc] of configs) {
    if (getKernel(kernelName, backendName) == null) registerKernel({ kernelName, backendName, kernelFunc } as KernelConfig);
  }
  if (getGradient(BN_TRAIN) == null) registerGradient(bnGrad as unknown as Parameters<typeof registerGradient>[0]);
}

/** True when the active backend has colorpipe's fused kernel `name` (default: the batch-norm one). */
export function hasFusedKernels(name: string = BN_TRAIN): boolean {
  return getKernel(name, tf.getBackend()) != null;
}
