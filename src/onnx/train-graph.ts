/**
 * The training graph, generated from the layer table (src/network/table.ts) as `pipe export` generates the
 * inference graph: one ONNX graph of standard operators that takes a batch, every weight, the optimizer's slots
 * and the step's hyperparameters, and returns the losses, the next weights (batch-norm moving statistics
 * updated) and the next slots. ONNX Runtime's inference API runs it; nothing of ONNX Runtime's training API is
 * needed. The same generator writes the evaluation graph (inference-mode batch norm, losses and predicted ab).
 *
 * What makes it compute what the tfjs engine computes (src/tfjs/trainer.ts, layers.ts, optimizers.ts):
 * - loss (Iizuka et al. 2016, Eq. 4): MSE between the predicted ab (half size) and the target ab averaged over
 *   2x2 blocks, plus alpha x the cross-entropy of the class logits, summed over the labelled samples and
 *   divided by their count (`onehot` rows are zero for unlabelled samples; `ce_weight` = 1 / count, or 0);
 * - batch norm: batch statistics, eps 1e-5; moving = momentum x moving + (1 - momentum) x batch statistic,
 *   with the unbiased batch variance (keras momentum 0.9);
 * - Adam (epsilon 1e-7): w' = w - step m' / (sqrt(v' ibc2) + eps), with step = lr_t / (1 - beta1^t) and
 *   ibc2 = 1 / (1 - beta2^t) (computed in double from the iteration count, as tfjs's engine does, so a resumed
 *   run continues exactly, and fed per step); Adadelta as torch and Keras have it;
 * - the global path flattens NCHW: its first FC's rows are kept in that order (train-state.ts);
 * - fusion: the 1x1 convolution's kernel is split in the graph into its mid-level part (a Conv) and its global
 *   part (one Gemm per image, broadcast), the inference export's `split` form.
 */
import type { NetworkTable, LayerSpec } from '../network/table.js';
import { ADADELTA_EPSILON, ADADELTA_RHO, ADAM_BETA1, ADAM_BETA2, slotNames } from '../network/training.js';
import { DEFAULT_OPSET, encodeModel, floatValueInfo, irVersionFor, type ValueInfoMessage } from './proto.js';
import { stateLayout } from './train-state.js';
import { DEFAULT_FORMULATION, TrainNodes, type Act, type Formulation } from './train-ops.js';

export const TRAIN_IO = {
  L: 'L',
  ab: 'ab',
  onehot: 'onehot',
  ceWeight: 'ce_weight',
  /** Adam (see adam()): sqrt(1 / (1 - beta2^t)) / step_t, step_t = lr_t / (1 - beta1^t); Adadelta: lr_t. */
  rate: 'rate',
  /** Adam: eps / step_t. */
  epsilon: 'epsilon',
  losses: 'losses',
  pred: 'ab_pred',
} as const;

/** The output holding the next value of an input (a weight, or a slot `W/m`). */
export const nextOf = (name: string) => `next/${name}`;
/** The output holding a weight's gradient ('gradients' mode). */
export const gradOf = (name: string) => `grad/${name}`;

export interface TrainGraphOptions {
  /** The batch size (shapes are static: one graph per batch size). */
  batch: number;
  /**
   * 'train': one optimizer step; 'eval': inference-mode losses and predictions; 'gradients': the losses and
   * every trainable weight's gradient (`gradOf(name)`, graph layout), nothing updated (tests, benchmarks).
   */
  mode: 'train' | 'eval' | 'gradients';
  optimizer: 'adam' | 'adadelta';
  alpha: number;
  formulation?: Formulation;
}

/** The encoded model (.onnx bytes) of a training or evaluation graph. */
export function trainModel(t: NetworkTable, o: TrainGraphOptions): Uint8Array {
  return encodeModel({
    irVersion: irVersionFor(DEFAULT_OPSET),
    opsetImport: [{ domain: '', version: DEFAULT_OPSET }],
    producerName: 'colorpipe',
    graph: buildTrainGraph(t, o),
  });
}

export function buildTrainGraph(t: NetworkTable, o: TrainGraphOptions) {
  const g = new TrainNodes(o.formulation ?? DEFAULT_FORMULATION);
  const train = o.mode !== 'eval';
  const update = o.mode === 'train';
  const N = o.batch;
  const S = t.inputSize;
  const K = t.classifier.length ? t.numClasses : 0;
  const layout = stateLayout(t);
  const entries = layout.entries;
  const outputs: ValueInfoMessage[] = [];
  /** The next moving statistics, by weight name (written as one output, the group's). */
  const movingNext = new Map<string, string>();
  const output = (name: string, value: string, dims: number[]) => {
    // The node computing it writes the output itself (an Identity would copy it); an input passed on is copied.
    if (!g.rename(value, name)) g.add('Identity', [value], name);
    outputs.push(floatValueInfo(name, dims));
  };

  const convLayer = (spec: LayerSpec, x: Act, needDx: boolean): Act => {
    const kernel = `${spec.name}/kernel`;
    const y = g.conv(x, kernel, spec.bias ? `${spec.name}/bias` : undefined, spec.out!, spec.kernel!, spec.stride!, needDx, spec.name, (dk) => g.paramGrad(kernel, dk));
    if (!spec.bn) return g.activation(spec.activation, y, spec.name);
    const bn = `${spec.name}_bn`;
    const relu = spec.activation === 'relu';
    if (!train) {
      const pre = g.op('BatchNormalization', [y.name, `${bn}/gamma`, `${bn}/beta`, `${bn}/moving_mean`, `${bn}/moving_variance`], { epsilon: t.bnEpsilon }, bn);
      return { name: relu ? g.op('Relu', [pre], {}, `${bn}/relu`) : pre, shape: y.shape };
    }
    const r = g.batchNormTrain(y, `${bn}/gamma`, `${bn}/beta`, t.bnEpsilon, relu, bn);
    const [, , H, W] = y.shape as [number, number, number, number];
    const n = N * H * W;
    const m = t.bnMomentum;
    const moving = (stat: string, batch: string) =>
      movingNext.set(`${bn}/${stat}`, g.op('Add', [g.op('Mul', [`${bn}/${stat}`, g.scalar(m)], {}, 'mom'), g.op('Mul', [batch, g.scalar(1 - m)], {}, 'mom_new')], {}, `${bn}/${stat}_next`));
    if (update) {
      moving('moving_mean', r.mean);
      moving('moving_variance', n > 1 ? g.op('Mul', [r.variance, g.scalar(n / (n - 1))], {}, `${bn}/unbiased`) : r.variance);
    }
    return r.y;
  };

  // Low level (no gradient for the input L).
  let x: Act = { name: TRAIN_IO.L, shape: [N, 1, S, S] };
  t.low.forEach((spec, i) => (x = convLayer(spec, x, i > 0)));
  const low = x;

  // Global path and the class head.
  let feats = low;
  let fc2: Act | null = null;
  for (const spec of t.global) {
    if (spec.kind === 'conv') feats = convLayer(spec, feats, true);
    else if (spec.kind === 'flatten') feats = g.reshapeAct(feats, [N, feats.shape[1]! * feats.shape[2]! * feats.shape[3]!], spec.name);
    else if (spec.kind === 'dense') feats = g.activation(spec.activation, g.dense(feats, `${spec.name}/kernel`, `${spec.name}/bias`, spec.out!, true, spec.name), spec.name);
    if (spec.name === 'gl_fc2') fc2 = feats;
  }
  let logits: Act | null = null;
  if (K > 0) {
    let h = fc2!;
    for (const spec of t.classifier) h = g.activation(spec.activation, g.dense(h, `${spec.name}/kernel`, `${spec.name}/bias`, spec.out!, true, spec.name), spec.name);
    logits = h;
  }

  // Mid level and fusion.
  let mid = low;
  for (const spec of t.mid) mid = convLayer(spec, mid, true);
  const fused = fusion(g, t.fusion[1]!, mid, feats);

  // Colorization.
  x = fused;
  for (const spec of t.color) x = spec.kind === 'upsample' ? g.upsample(x, spec.name) : convLayer(spec, x, true);
  const pred = x;

  // Loss: MSE against the 2x2-averaged target, plus alpha x cross-entropy.
  const abNchw = g.op('Transpose', [TRAIN_IO.ab], { perm: [0, 3, 1, 2] }, 'ab_nchw');
  const target = g.op('AveragePool', [abNchw], { kernel_shape: [2, 2], strides: [2, 2] }, 'target');
  const diff = g.op('Sub', [pred.name, target], {}, 'diff');
  const count = pred.shape.reduce((a, b) => a * b, 1);
  const mse = g.op('Mul', [g.op('ReduceSumSquare', [diff], { keepdims: 0 }, 'sse'), g.scalar(1 / count)], {}, 'mse');
  g.accumulate(pred.name, g.op('Mul', [diff, g.scalar(2 / count)], {}, 'dpred'));
  let ce = '';
  let loss = mse;
  if (logits) {
    // log softmax from its parts (ONNX Runtime's WebGPU provider has no LogSoftmax).
    const shifted = g.op('Sub', [logits.name, g.op('ReduceMax', [logits.name], { axes: [1], keepdims: 1 }, 'logit_max')], {}, 'logit_shifted');
    const lse = g.op('Log', [g.reduce('ReduceSum', g.op('Exp', [shifted], {}, 'exp'), [1], true, 'sum_exp')], {}, 'log_sum_exp');
    const logp = g.op('Sub', [shifted, lse], {}, 'logp');
    const picked = g.op('ReduceSum', [g.op('Mul', [TRAIN_IO.onehot, logp], {}, 'picked')], { keepdims: 0 }, 'nll_sum');
    ce = g.op('Mul', [g.op('Neg', [picked], {}, 'nll'), TRAIN_IO.ceWeight], {}, 'ce');
    if (o.alpha > 0) {
      loss = g.op('Add', [mse, g.op('Mul', [ce, g.scalar(o.alpha)], {}, 'alpha_ce')], {}, 'loss');
      // d(alpha ce)/dlogits = alpha ce_weight (softmax - onehot) on labelled rows.
      const rowMask = g.reduce('ReduceSum', TRAIN_IO.onehot, [1], true, 'labelled_row');
      const softmax = g.op('Mul', [g.op('Exp', [logp], {}, 'softmax'), rowMask], {}, 'softmax_labelled');
      const scale = g.op('Mul', [TRAIN_IO.ceWeight, g.scalar(o.alpha)], {}, 'ce_scale');
      g.accumulate(logits.name, g.op('Mul', [g.op('Sub', [softmax, TRAIN_IO.onehot], {}, 'dce'), scale], {}, 'dlogits'));
    }
  }
  const one = (v: string) => g.reshape(v, [1]);
  output(TRAIN_IO.losses, g.op('Concat', [one(loss), one(mse), one(ce || g.scalar(0))], { axis: 0 }, 'loss3'), [3]);

  const inputs: ValueInfoMessage[] = [
    floatValueInfo(TRAIN_IO.L, [N, 1, S, S], 'L / 100'),
    floatValueInfo(TRAIN_IO.ab, [N, S, S, 2], '(ab + 128) / 255, NHWC'),
  ];
  if (K > 0) inputs.push(floatValueInfo(TRAIN_IO.onehot, [N, K], 'one-hot class of each labelled sample, zeros for the others'), floatValueInfo(TRAIN_IO.ceWeight, [], '1 / labelled samples, or 0'));
  for (const e of entries) inputs.push(floatValueInfo(e.name, e.graphShape));

  if (!train) {
    output(TRAIN_IO.pred, g.op('Transpose', [pred.name], { perm: [0, 2, 3, 1] }, 'pred_nhwc'), [N, S / 2, S / 2, 2]);
    return { name: 'colorpipe_eval', node: g.nodes, initializer: g.inits, input: inputs, output: outputs };
  }

  g.backward();
  if (!update) {
    for (const e of entries) if (e.trainable) output(gradOf(e.name), g.paramGrads.get(e.name)!, e.graphShape);
    return { name: 'colorpipe_gradients', node: g.nodes, initializer: g.inits, input: inputs, output: outputs };
  }
  const [s0, s1] = slotNames(o.optimizer);
  inputs.push(floatValueInfo(TRAIN_IO.rate, []));
  if (o.optimizer === 'adam') inputs.push(floatValueInfo(TRAIN_IO.epsilon, []));
  const flat = (v: string, size: number) => g.reshape(v, [size], 'flat');
  const joined = (values: Array<[string, number]>, size: number) =>
    values.length === 1 ? flat(values[0]![0], size) : g.op('Concat', values.map(([v, n]) => flat(v, n)), { axis: 0 }, 'group');
  for (const group of layout.groups) {
    if (!group.trainable) {
      output(nextOf(group.name), joined(group.entries.map((e) => [movingNext.get(e.name)!, e.size]), group.size), [group.size]);
      continue;
    }
    const [a, b] = [`${group.name}/${s0}`, `${group.name}/${s1}`];
    inputs.push(floatValueInfo(group.name, [group.size]), floatValueInfo(a, [group.size]), floatValueInfo(b, [group.size]));
    // A weight the loss does not reach (the class head with alpha 0) gets a zero gradient, as in the PyTorch engine.
    const grads = group.entries.map((e): [string, number] => [g.paramGrads.get(e.name) ?? g.op('ConstantOfShape', [g.ints([e.size])], {}, 'zero_grad'), e.size]);
    const grad = joined(grads, group.size);
    const next = o.optimizer === 'adam' ? adam(g, group.name, a, b, grad) : adadelta(g, group.name, a, b, grad);
    output(nextOf(group.name), next[0], [group.size]);
    output(nextOf(a), next[1], [group.size]);
    output(nextOf(b), next[2], [group.size]);
  }
  return { name: 'colorpipe_train', node: g.nodes, initializer: g.inits, input: inputs, output: outputs };
}

/**
 * The fusion layer (the paper's Eq. 1) and its 1x1 convolution + ReLU: conv(mid, W_mid) + W_global . features,
 * the kernel [O, Cm + Cg, 1, 1] split in the graph; its gradient is assembled back into one kernel gradient.
 */
function fusion(g: TrainNodes, fu: LayerSpec, mid: Act, feats: Act): Act {
  const [N, Cm] = mid.shape as [number, number];
  const Cg = feats.shape[1]!;
  const O = fu.out!;
  const kernel = `${fu.name}/kernel`;
  const bias = `${fu.name}/bias`;
  const wMid = g.op('Slice', [kernel, g.ints([0]), g.ints([Cm]), g.ints([1])], {}, 'fu_w_mid');
  const wGlob = g.reshape(g.op('Slice', [kernel, g.ints([Cm]), g.ints([Cm + Cg]), g.ints([1])], {}, 'fu_w_global'), [O, Cg]);
  let dGlob = '';
  const local = g.conv(mid, wMid, undefined, O, 1, 1, true, `${fu.name}/mid`, (dMid) => {
    g.paramGrad(kernel, g.op('Concat', [dMid, g.reshape(dGlob, [O, Cg, 1, 1])], { axis: 1 }, 'dfu_kernel'));
  });
  const perImage = g.op('Gemm', [feats.name, wGlob, bias], { transB: 1 }, `${fu.name}/global`);
  const z = g.op('Add', [local.name, g.reshape(perImage, [N, O, 1, 1])], {}, fu.name);
  g.record(() => {
    const dz = g.gradOf(z);
    if (!dz) return;
    g.accumulate(local.name, dz);
    const dPer = g.reduce('ReduceSum', dz, [2, 3], false, 'dfu_per_image');
    g.paramGrad(bias, g.reduce('ReduceSum', dPer, [0], false, 'dbias'));
    dGlob = g.op('Gemm', [dPer, feats.name], { transA: 1 }, 'dfu_global');
    g.accumulate(feats.name, g.op('Gemm', [dPer, wGlob], {}, 'dfeats'));
  });
  return g.activation(fu.activation, { name: z, shape: local.shape }, fu.name);
}

/**
 * Adam's update (optimizers.ts), w' = w - step m' / (sqrt(v' ibc2) + eps), written as w - m' / (sqrt(v') a + e)
 * with a = sqrt(ibc2) / step and e = eps / step fed per step (one pass fewer). Returns the next weight, m and v.
 */
function adam(g: TrainNodes, w: string, m: string, v: string, grad: string): [string, string, string] {
  const m2 = g.op('Add', [g.op('Mul', [m, g.scalar(ADAM_BETA1)], {}, 'b1m'), g.op('Mul', [grad, g.scalar(1 - ADAM_BETA1)], {}, 'b1g')], {}, 'm_next');
  const g2 = g.op('Mul', [grad, grad], {}, 'g2');
  const v2 = g.op('Add', [g.op('Mul', [v, g.scalar(ADAM_BETA2)], {}, 'b2v'), g.op('Mul', [g2, g.scalar(1 - ADAM_BETA2)], {}, 'b2g')], {}, 'v_next');
  const den = g.op('Add', [g.op('Mul', [g.op('Sqrt', [v2], {}, 'sqrt_v'), TRAIN_IO.rate], {}, 'sqrt_v_a'), TRAIN_IO.epsilon], {}, 'den');
  return [g.op('Sub', [w, g.op('Div', [m2, den], {}, 'update')], {}, 'w_next'), m2, v2];
}

/** Adadelta's update (Zeiler 2012, as torch and Keras; optimizers.ts). */
function adadelta(g: TrainNodes, w: string, ag: string, au: string, grad: string): [string, string, string] {
  const rho = g.scalar(ADADELTA_RHO);
  const rest = g.scalar(1 - ADADELTA_RHO);
  const eps = g.scalar(ADADELTA_EPSILON);
  const ag2 = g.op('Add', [g.op('Mul', [ag, rho]), g.op('Mul', [g.op('Mul', [grad, grad]), rest])], {}, 'ag_next');
  const u = g.op('Mul', [g.op('Sqrt', [g.op('Div', [g.op('Add', [au, eps]), g.op('Add', [ag2, eps])])]), grad], {}, 'u');
  const au2 = g.op('Add', [g.op('Mul', [au, rho]), g.op('Mul', [g.op('Mul', [u, u]), rest])], {}, 'au_next');
  return [g.op('Sub', [w, g.op('Mul', [u, TRAIN_IO.rate])], {}, 'w_next'), ag2, au2];
}
