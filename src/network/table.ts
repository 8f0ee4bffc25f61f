/**
 * The colorization network of Iizuka, Simo-Serra and Ishikawa, "Let there be Color!: Joint End-to-end Learning
 * of Global and Local Image Priors for Automatic Image Colorization with Simultaneous Classification",
 * SIGGRAPH 2016 (Fig. 2 and Table 1 of the paper):
 *
 *   low-level (shared by both paths):  conv 64/2, 128/1, 128/2, 256/1, 256/2, 512/1
 *   mid-level:                         conv 512/1, 256/1
 *   global:                            conv 512/2, 512/1, 512/2, 512/1, flatten, FC 1024, FC 512, FC 256
 *   fusion:                            the 256-vector replicated over the mid-level map, concatenated
 *                                      (512 channels), 1x1 conv 256 + ReLU
 *   colorization:                      conv 128, upsample x2, conv 64, conv 64, upsample x2, conv 32,
 *                                      conv 2 + sigmoid  ->  ab at half the input size, in [0, 1]
 *   classification (optional):         from the 512-unit global FC: FC 256, FC numClasses (logits)
 *
 * Every convolution is 3x3 (the fusion one 1x1) followed by batch normalization and ReLU (the fusion and
 * output convolutions: bias, no BN); strides replace pooling; FC layers have bias and ReLU. BN + ReLU is one
 * layer (layers.ts BatchNormLayer, fused kernels on wasm/cpu); the convolutions before it have no bias (BN's
 * beta replaces it).
 *
 * Padding: 'same', as TensorFlow defines it. At stride 1 that is the paper's (and torch's) padding 1. At stride
 * 2 on an even size, TF pads 0 before and 1 after (the output's pixel i sees input rows 2i..2i+2) where torch's
 * padding=1 pads 1 on both sides (rows 2i-1..2i+1): the same shapes, features shifted by one input pixel.
 * Weights therefore do not transfer between the two without a one-pixel shift; bench/torch_model.py
 * reproduces TF's alignment with an explicit asymmetric pad so both benchmark the same computation.
 *
 * Width: every channel count (conv filters, FC units, the fusion and classifier FCs) is multiplied by
 * `config.width` and rounded to the nearest integer, at least 1 (`channels()`); the 2 output channels and the
 * numClasses logits are not scaled. width 1 is the paper: 42.4M parameters with 205 classes, 25.7M of them in
 * the first global FC (7*7*512*1024 at 224).
 */
import type { ModelConfig } from '../config.js';
import { invalidOption, nonNegativeInt, positiveNumber } from '../core/validate.js';

export type Activation = 'relu' | 'sigmoid' | 'linear';

/** One layer of the table. Convolutions are 'same'-padded; `bn` means BatchNorm then the activation. */
export interface LayerSpec {
  name: string;
  kind: 'conv' | 'dense' | 'upsample' | 'flatten' | 'fusion';
  /** conv: output channels; dense: units. */
  out?: number;
  kernel?: number;
  stride?: number;
  bn?: boolean;
  bias?: boolean;
  activation?: Activation;
}

/** The network as data: what `buildColorizer` builds and bench/torch_model.py rebuilds in PyTorch. */
export interface NetworkTable {
  inputSize: number;
  width: number;
  numClasses: number;
  low: LayerSpec[];
  mid: LayerSpec[];
  global: LayerSpec[];
  fusion: LayerSpec[];
  color: LayerSpec[];
  classifier: LayerSpec[];
  /** Batch-norm epsilon and momentum (keras convention: moving = momentum * moving + (1 - momentum) * batch). */
  bnEpsilon: number;
  bnMomentum: number;
}

/** Channel count under a width multiplier: round(n * width), at least 1. */
export function channels(n: number, width: number): number {
  return Math.max(1, Math.round(n * width));
}

/** BN settings: torch's defaults (eps 1e-5, momentum 0.1 = keras 0.9), so short runs get usable moving stats. */
export const BN_EPSILON = 1e-5;
export const BN_MOMENTUM = 0.9;

/** The paper's layer table for a model config (see the file comment). */
export function layerTable(config: ModelConfig): NetworkTable {
  const w = config.width;
  const c = (n: number) => channels(n, w);
  const conv = (name: string, out: number, stride = 1): LayerSpec => ({
    name,
    kind: 'conv',
    out: c(out),
    kernel: 3,
    stride,
    bn: true,
    bias: false,
    activation: 'relu',
  });
  const dense = (name: string, out: number, activation: Activation = 'relu', scale = true): LayerSpec => ({
    name,
    kind: 'dense',
    out: scale ? c(out) : out,
    bias: true,
    activation,
  });
  return {
    inputSize: config.inputSize,
    width: w,
    numClasses: config.numClasses,
    low: [conv('ll_conv1', 64, 2), conv('ll_conv2', 128), conv('ll_conv3', 128, 2), conv('ll_conv4', 256), conv('ll_conv5', 256, 2), conv('ll_conv6', 512)],
    mid: [conv('ml_conv1', 512), conv('ml_conv2', 256)],
    global: [
      conv('gl_conv1', 512, 2),
      conv('gl_conv2', 512),
      conv('gl_conv3', 512, 2),
      conv('gl_conv4', 512),
      { name: 'gl_flatten', kind: 'flatten' },
      dense('gl_fc1', 1024),
      dense('gl_fc2', 512),
      dense('gl_fc3', 256),
    ],
    fusion: [
      { name: 'fusion', kind: 'fusion' },
      { name: 'fu_conv', kind: 'conv', out: c(256), kernel: 1, stride: 1, bn: false, bias: true, activation: 'relu' },
    ],
    color: [
      conv('co_conv1', 128),
      { name: 'co_up1', kind: 'upsample' },
      conv('co_conv2', 64),
      conv('co_conv3', 64),
      { name: 'co_up2', kind: 'upsample' },
      conv('co_conv4', 32),
      { name: 'co_out', kind: 'conv', out: 2, kernel: 3, stride: 1, bn: false, bias: true, activation: 'sigmoid' },
    ],
    classifier: config.numClasses > 0 ? [dense('cls_fc1', 256), dense('cls_out', config.numClasses, 'linear', false)] : [],
    bnEpsilon: BN_EPSILON,
    bnMomentum: BN_MOMENTUM,
  };
}

export function validateModelConfig(config: ModelConfig): void {
  if (!Number.isInteger(config.inputSize) || config.inputSize < 8 || config.inputSize % 8 !== 0) {
    throw invalidOption('model.inputSize', 'a positive multiple of 8', config.inputSize);
  }
  positiveNumber(config.width, 'model.width');
  nonNegativeInt(config.numClasses, 'model.numClasses');
}

/** Output spatial size of a 'same' convolution. */
export const sameOut = (n: number, stride: number) => Math.ceil(n / stride);

export interface ParamCount {
  total: number;
  trainable: number;
  /** Per layer name (conv/dense weights + bias + BN's 4 vectors). */
  byLayer: Record<string, number>;
}

/**
 * Parameters of a config, computed from the layer table without building the model. `total` counts every
 * weight tfjs stores (BN moving mean/variance included, as LayersModel.countParams() does); `trainable`
 * leaves the BN moving statistics out.
 */
export function countParams(config: ModelConfig): ParamCount {
  validateModelConfig(config);
  const t = layerTable(config);
  const byLayer: Record<string, number> = {};
  let total = 0;
  let trainable = 0;
  const add = (spec: LayerSpec, inC: number): number => {
    if (spec.kind === 'conv') {
      const k = spec.kernel!;
      const out = spec.out!;
      const wts = k * k * inC * out + (spec.bias ? out : 0);
      const bn = spec.bn ? 4 * out : 0;
      byLayer[spec.name] = wts + bn;
      total += wts + bn;
      trainable += wts + (spec.bn ? 2 * out : 0);
      return out;
    }
    if (spec.kind === 'dense') {
      const wts = inC * spec.out! + (spec.bias ? spec.out! : 0);
      byLayer[spec.name] = wts;
      total += wts;
      trainable += wts;
      return spec.out!;
    }
    return inC;
  };
  let c = 1;
  let s = config.inputSize;
  for (const l of t.low) {
    c = add(l, c);
    s = sameOut(s, l.stride!);
  }
  const lowC = c;
  for (const l of t.mid) c = add(l, c);
  const midC = c;
  let g = lowC;
  let gs = s;
  let globalMid = 0;
  for (const l of t.global) {
    if (l.kind === 'flatten') {
      g = gs * gs * g;
      continue;
    }
    g = add(l, g);
    if (l.kind === 'conv') gs = sameOut(gs, l.stride!);
    if (l.name === 'gl_fc2') globalMid = g;
  }
  c = add(t.fusion[1]!, midC + g);
  for (const l of t.color) c = add(l, c);
  let k = globalMid;
  for (const l of t.classifier) k = add(l, k);
  return { total, trainable, byLayer };
}

/**
 * How far the local path sees (low-level, mid-level, fusion and colorization layers): the largest distance, in
 * input pixels, between an output pixel and an input pixel that changes it, and the path's total stride (a
 * window cut at a multiple of it samples the same grid as the whole image). Counted conservatively: a 3x3
 * convolution reaches one cell of its input each way, two on the far side at stride 2 (TF's 'same' pads after,
 * so output i sees inputs 2i..2i+2); a nearest x2 upsampling one cell of its output; the output pixel at half
 * size covers 2 input pixels. The paper's table: 72 pixels, stride 8. Fully convolutional, so windows with a
 * margin of `reach` around the part kept give exactly the one-pass result (src/colorize/tiles.ts).
 */
export function localReach(table: Pick<NetworkTable, 'low' | 'mid' | 'fusion' | 'color'>): { reach: number; stride: number } {
  let jump = 1;
  let reach = 0;
  let stride = 1;
  for (const l of [...table.low, ...table.mid, ...table.fusion, ...table.color]) {
    if (l.kind === 'conv') {
      const k = l.kernel ?? 1;
      const s = l.stride ?? 1;
      reach += ((k - 1) / 2) * jump * (s > 1 ? 2 : 1);
      jump *= s;
      stride = Math.max(stride, jump);
    } else if (l.kind === 'upsample') {
      jump /= 2;
      reach += jump;
    }
  }
  return { reach: reach + jump, stride };
}
