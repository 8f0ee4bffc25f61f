/**
 * The training graph's layers, each a forward pass in ONNX nodes and its backward pass recorded on a tape
 * (reverse-mode differentiation by layer: train-graph.ts runs the tape backwards from the loss). Shapes are
 * static (the batch size is fixed per graph), NCHW.
 *
 * Formulations (chosen by measurement, BENCHMARKS.md "Training on ONNX Runtime"):
 * - weight gradient of a convolution: im2col (the padded input's k*k shifted, strided slices, concatenated,
 *   one batched MatMul against the output gradient), or `taps` (one MatMul per kernel tap, no concatenation);
 * - input gradient: at stride 1 a Conv of the output gradient with the flipped, transposed kernel (`flip`), or
 *   ConvTranspose; at stride 2 always ConvTranspose (its kernel layout is the forward one's);
 * - batch norm in training mode from ReduceMean / ReduceSumSquare over the centred input, which its backward
 *   pass reuses: dx = a * dz + b * xc + c per channel.
 */
import { sameOut } from '../network/table.js';
import { Nodes } from './nodes.js';
import { samePads } from './layout.js';
import { floatTensor } from './proto.js';

/** An activation: its tensor name and static NCHW (or [N, F]) shape. */
export interface Act {
  name: string;
  shape: number[];
}

export type WeightGradient = 'im2col' | 'taps';
/** Where the weight gradient sums over the batch: `image` (per image, then summed), `channel` (one Gemm), `auto` (the cheaper). */
export type WeightGradientOrder = 'auto' | 'image' | 'channel';
export type InputGradient = 'flip' | 'transpose';

export interface Formulation {
  wgrad: WeightGradient;
  order?: WeightGradientOrder;
  dgrad: InputGradient;
}

export const DEFAULT_FORMULATION: Formulation = { wgrad: 'taps', order: 'auto', dgrad: 'flip' };


interface ConvGeometry {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  k: number;
  s: number;
  Ho: number;
  Wo: number;
  /** [top, left, bottom, right] */
  pads: [number, number, number, number];
}

export class TrainNodes extends Nodes {
  private readonly tape: Array<() => void> = [];
  private readonly grads = new Map<string, string>();
  /** Gradient of each parameter input (by input name), filled by the backward pass. */
  readonly paramGrads = new Map<string, string>();

  constructor(readonly formulation: Formulation) {
    super();
  }

  /** Records a backward step (run in reverse order of recording). */
  record(f: () => void): void {
    this.tape.push(f);
  }

  gradOf(x: string): string | undefined {
    return this.grads.get(x);
  }

  /** Adds `g` to the gradient of activation `x` (a tensor used twice gets the sum). */
  accumulate(x: string, g: string): void {
    const had = this.grads.get(x);
    this.grads.set(x, had ? this.op('Add', [had, g], {}, 'dsum') : g);
  }

  paramGrad(param: string, g: string): void {
    const had = this.paramGrads.get(param);
    this.paramGrads.set(param, had ? this.op('Add', [had, g], {}, 'dsum') : g);
  }

  /** Runs the tape from the seeds set with `accumulate`. */
  backward(): void {
    for (let i = this.tape.length - 1; i >= 0; i--) this.tape[i]!();
  }

  /** ReduceSum / ReduceMean / ReduceSumSquare over `axes` (opset 17: ReduceSum takes axes as an input). */
  reduce(op: 'ReduceSum' | 'ReduceMean' | 'ReduceSumSquare', x: string, axes: number[], keepdims: boolean, hint: string = op): string {
    if (op === 'ReduceSum') return this.op(op, [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 }, hint);
    return this.op(op, [x], { axes, keepdims: keepdims ? 1 : 0 }, hint);
  }

  reshape(x: string, shape: number[], hint = 'reshape'): string {
    return this.op('Reshape', [x, this.ints(shape)], {}, hint);
  }

  /** dy where y > 0, else 0: ReLU's gradient from its output (a 0/1 mask times dy: measured faster than Where). */
  reluGrad(y: string, dy: string): string {
    const on = this.op('Cast', [this.op('Greater', [y, this.scalar(0)], {}, 'relu_on')], { to: 1 }, 'relu_mask');
    return this.op('Mul', [dy, on], {}, 'drelu');
  }

  /** ReLU, sigmoid or nothing, with its backward step. */
  activation(kind: string | undefined, x: Act, hint: string): Act {
    if (kind !== 'relu' && kind !== 'sigmoid') return x;
    const y = this.op(kind === 'relu' ? 'Relu' : 'Sigmoid', [x.name], {}, `${hint}/${kind}`);
    this.record(() => {
      const dy = this.gradOf(y);
      if (!dy) return;
      if (kind === 'relu') {
        this.accumulate(x.name, this.reluGrad(y, dy));
      } else {
        // sigmoid' = y (1 - y)
        const slope = this.op('Mul', [y, this.op('Sub', [this.scalar(1), y], {}, 'one_minus')], {}, 'dsigmoid_dx');
        this.accumulate(x.name, this.op('Mul', [dy, slope], {}, 'dsigmoid'));
      }
    });
    return { name: y, shape: x.shape };
  }

  geometry(x: Act, O: number, k: number, s: number): ConvGeometry {
    const [N, C, H, W] = x.shape as [number, number, number, number];
    const [pt, pb] = samePads(H, k, s);
    const [pl, pr] = samePads(W, k, s);
    return { N, C, H, W, O, k, s, Ho: sameOut(H, s), Wo: sameOut(W, s), pads: [pt, pl, pb, pr] };
  }

  /**
   * A 'same' convolution with kernel input `w` ([O, C, k, k]) and optional bias input `b`; backward: the
   * kernel's gradient through `onKernelGrad`, the bias's to `b`, the input's when `needDx`.
   */
  conv(x: Act, w: string, b: string | undefined, O: number, k: number, s: number, needDx: boolean, hint: string, onKernelGrad: (g: string) => void): Act {
    const g = this.geometry(x, O, k, s);
    const y = this.op('Conv', b ? [x.name, w, b] : [x.name, w], { kernel_shape: [k, k], strides: [s, s], pads: g.pads, dilations: [1, 1], group: 1 }, hint);
    this.record(() => {
      const dy = this.gradOf(y);
      if (!dy) return;
      onKernelGrad(this.kernelGrad(x.name, dy, g));
      if (b) this.paramGrad(b, this.reduce('ReduceSum', dy, [0, 2, 3], false, 'dbias'));
      if (needDx) this.accumulate(x.name, this.inputGrad(dy, w, g));
    });
    return { name: y, shape: [g.N, O, g.Ho, g.Wo] };
  }

  /**
   * dL/dW [O, C, k, k] from the input x and the output gradient dy: the input's k*k taps (shifted, strided
   * slices of the padded input) against dy. Either per image (batched MatMul, then a sum over the batch) or, when
   * the per-image products (N x O x C k^2 floats written, then summed) outweigh transposing the input and dy to
   * channel-major order, one Gemm over the whole batch.
   */
  kernelGrad(x: string, dy: string, g: ConvGeometry): string {
    const { N, C, H, W, O, k, s, Ho, Wo, pads } = g;
    const P = Ho * Wo;
    const order = this.formulation.order ?? 'auto';
    const major = order === 'channel' || (order === 'auto' && N * O * C * k * k > N * C * H * W + N * O * P);
    const input = major ? this.op('Transpose', [x], { perm: [1, 0, 2, 3] }, 'x_cnhw') : x;
    const dyMat = major ? this.reshape(this.op('Transpose', [dy], { perm: [1, 0, 2, 3] }, 'dy_onhw'), [O, N * P], 'dy2') : this.reshape(dy, [N, O, P], 'dy3');
    /** dy times columns [rows, P] per image (or [rows, N P]): [O, rows]. */
    const against = (cols: string, rows: number) => {
      if (major) return this.op('Gemm', [dyMat, this.reshape(cols, [rows, N * P])], { transB: 1 }, 'dw');
      // MatMul with a transposed operand: ONNX Runtime fuses the Transpose into it.
      const t = this.op('Transpose', [this.reshape(cols, [N, rows, P])], { perm: [0, 2, 1] }, 'cols_t');
      return this.reshape(this.reduce('ReduceSum', this.op('MatMul', [dyMat, t], {}, 'dw_n'), [0], false, 'dw'), [O, rows]);
    };
    if (k === 1 && s === 1) return this.reshape(against(input, C), [O, C, 1, 1], 'dkernel');
    const padded = pads.some((p) => p > 0) ? this.op('Pad', [input, this.ints([0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]])], {}, 'xpad') : input;
    const taps: string[] = [];
    for (let kh = 0; kh < k; kh++) {
      for (let kw = 0; kw < k; kw++) {
        taps.push(this.op('Slice', [padded, this.ints([kh, kw]), this.ints([kh + s * (Ho - 1) + 1, kw + s * (Wo - 1) + 1]), this.ints([2, 3]), this.ints([s, s])], {}, 'tap'));
      }
    }
    if (this.formulation.wgrad === 'taps') {
      const per = taps.map((tap) => this.reshape(against(tap, C), [O, C, 1]));
      return this.reshape(this.op('Concat', per, { axis: 2 }, 'dw_taps'), [O, C, k, k], 'dkernel');
    }
    // [C, k k, N P] channel-major, [N, C, k k, P] per image: rows in (c, kh, kw) order either way.
    const cols = this.op('Concat', taps.map((tap) => this.reshape(tap, major ? [C, 1, N * P] : [N, C, 1, P])), { axis: major ? 1 : 2 }, 'im2col');
    return this.reshape(against(cols, C * k * k), [O, C, k, k], 'dkernel');
  }

  /** dL/dx [N, C, H, W] from the output gradient and the kernel [O, C, k, k]. */
  inputGrad(dy: string, w: string, g: ConvGeometry): string {
    const { k, s, pads } = g;
    if (s === 1 && (this.formulation.dgrad === 'flip' || k === 1)) {
      // The kernel flipped in both spatial axes, in and out swapped: [C, O, k, k]. The flip is a product with the
      // k^2 x k^2 exchange matrix (exact: one 1 per column), measured several times faster than a Slice with step -1.
      const swapped = this.op('Transpose', [this.reshape(w, [g.O, g.C, k * k])], { perm: [1, 0, 2] }, 'w_t');
      const exchange = Array.from({ length: k ** 4 }, (_, i) => (Math.floor(i / (k * k)) + (i % (k * k)) === k * k - 1 ? 1 : 0));
      const wt = k === 1 ? this.reshape(swapped, [g.C, g.O, 1, 1]) : this.reshape(this.op('MatMul', [swapped, this.init(floatTensor(`exchange${k}`, [k * k, k * k], exchange))], {}, 'wflip'), [g.C, g.O, k, k]);
      const back: [number, number, number, number] = [k - 1 - pads[0], k - 1 - pads[1], k - 1 - pads[2], k - 1 - pads[3]];
      return this.op('Conv', [dy, wt], { kernel_shape: [k, k], strides: [1, 1], pads: back, dilations: [1, 1], group: 1 }, 'dx');
    }
    // ConvTranspose takes the forward kernel as it is ([in of the transpose = O, out = C, k, k]).
    const full = (n: number, out: number, before: number, after: number) => (out - 1) * s + k - before - after - n;
    const extra = [-full(g.H, g.Ho, pads[0], pads[2]), -full(g.W, g.Wo, pads[1], pads[3])];
    return this.op('ConvTranspose', [dy, w], { kernel_shape: [k, k], strides: [s, s], pads, dilations: [1, 1], group: 1, output_padding: extra }, 'dx');
  }

  /**
   * Batch norm (+ ReLU) in training mode: batch statistics (biased variance to normalize); returns y and the
   * batch mean and biased variance ([C]) for the moving statistics. Gradients to gamma and beta (inputs).
   */
  batchNormTrain(x: Act, gamma: string, beta: string, eps: number, relu: boolean, hint: string): { y: Act; mean: string; variance: string } {
    const [N, C, H, W] = x.shape as [number, number, number, number];
    const n = N * H * W;
    const axes = [0, 2, 3];
    const mean4 = this.reduce('ReduceMean', x.name, axes, true, `${hint}/mean`);
    const xc = this.op('Sub', [x.name, mean4], {}, `${hint}/xc`);
    const var4 = this.op('Mul', [this.reduce('ReduceSumSquare', xc, axes, true, `${hint}/ss`), this.scalar(1 / n)], {}, `${hint}/var`);
    const inv4 = this.op('Reciprocal', [this.op('Sqrt', [this.op('Add', [var4, this.scalar(eps)], {}, 'var_eps')], {}, 'std')], {}, `${hint}/inv`);
    const scale4 = this.op('Mul', [inv4, this.reshape(gamma, [1, C, 1, 1], 'gamma4')], {}, `${hint}/scale`);
    // gamma xc / sqrt(var + eps) + beta in one pass: inference-mode BatchNormalization of the centred input.
    const variance = this.reshape(var4, [C], `${hint}/var1`);
    const pre = this.op('BatchNormalization', [xc, gamma, beta, this.floats(new Array<number>(C).fill(0)), variance], { epsilon: eps }, `${hint}/pre`);
    const y = relu ? this.op('Relu', [pre], {}, `${hint}/relu`) : pre;
    this.record(() => {
      const dy = this.gradOf(y);
      if (!dy) return;
      const dz = relu ? this.reluGrad(y, dy) : dy;
      const dbeta4 = this.reduce('ReduceSum', dz, axes, true, 'dbeta');
      const dgamma4 = this.op('Mul', [this.reduce('ReduceSum', this.op('Mul', [dz, xc], {}, 'dz_xc'), axes, true, 'dz_xc_sum'), inv4], {}, 'dgamma');
      this.paramGrad(beta, this.reshape(dbeta4, [C]));
      this.paramGrad(gamma, this.reshape(dgamma4, [C]));
      // dx = scale (dz - dbeta / n - xhat dgamma / n) = scale dz + b xc + c, xhat = xc inv.
      const b = this.op('Mul', [this.op('Mul', [scale4, inv4], {}, 'bn_si'), this.op('Mul', [dgamma4, this.scalar(-1 / n)], {}, 'bn_g')], {}, 'bn_b');
      const c = this.op('Mul', [scale4, this.op('Mul', [dbeta4, this.scalar(-1 / n)], {}, 'bn_bn')], {}, 'bn_c');
      const dx = this.op('Add', [this.op('Add', [this.op('Mul', [dz, scale4], {}, 'bn_adz'), this.op('Mul', [xc, b], {}, 'bn_bxc')], {}, 'bn_sum'), c], {}, 'dbn');
      this.accumulate(x.name, dx);
    });
    return { y: { name: y, shape: x.shape }, mean: this.reshape(mean4, [C], `${hint}/mean1`), variance };
  }

  /** Dense layer: x [N, in] times kernel [in, out] plus bias; gradients to both and to x when `needDx`. */
  dense(x: Act, kernel: string, bias: string, out: number, needDx: boolean, hint: string): Act {
    const y = this.op('Gemm', [x.name, kernel, bias], {}, hint);
    this.record(() => {
      const dy = this.gradOf(y);
      if (!dy) return;
      this.paramGrad(kernel, this.op('Gemm', [x.name, dy], { transA: 1 }, 'dkernel'));
      this.paramGrad(bias, this.reduce('ReduceSum', dy, [0], false, 'dbias'));
      if (needDx) this.accumulate(x.name, this.op('Gemm', [dy, kernel], { transB: 1 }, 'dx'));
    });
    return { name: y, shape: [x.shape[0]!, out] };
  }

  /** Nearest x2 upsampling (tfjs's upSampling2d); its gradient sums each 2x2 block. */
  upsample(x: Act, hint: string): Act {
    const [N, C, H, W] = x.shape as [number, number, number, number];
    const y = this.op('Resize', [x.name, '', this.floats([1, 1, 2, 2])], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }, hint);
    this.record(() => {
      const dy = this.gradOf(y);
      if (!dy) return;
      const blocks = this.reshape(dy, [N, C, H, 2, W, 2], 'dup6');
      this.accumulate(x.name, this.reduce('ReduceSum', blocks, [3, 5], false, 'dup'));
    });
    return { name: y, shape: [N, C, 2 * H, 2 * W] };
  }

  /** Reshape with a gradient (flatten and its inverse). */
  reshapeAct(x: Act, shape: number[], hint: string): Act {
    const y = this.reshape(x.name, shape, hint);
    this.record(() => {
      const dy = this.gradOf(y);
      if (dy) this.accumulate(x.name, this.reshape(dy, x.shape, 'dreshape'));
    });
    return { name: y, shape };
  }
}
