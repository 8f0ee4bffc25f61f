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
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Tensor } from '@tensorflow/tfjs-core';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs-layers';
import type { ModelConfig } from '../config.js';
import { InvalidOptionError } from '../core/errors.js';
import { BatchNormLayer, FusionLayer, registerLayers } from './layers.js';

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

function validateModelConfig(config: ModelConfig): void {
  if (!Number.isInteger(config.inputSize) || config.inputSize < 8 || config.inputSize % 8 !== 0) {
    throw new InvalidOptionError(`Expected a positive multiple of 8 for model.inputSize but received ${config.inputSize}`);
  }
  if (!(config.width > 0)) throw new InvalidOptionError(`Expected positive number for model.width but received ${config.width}`);
  if (!Number.isInteger(config.numClasses) || config.numClasses < 0) {
    throw new InvalidOptionError(`Expected non-negative integer for model.numClasses but received ${config.numClasses}`);
  }
}

/** Output spatial size of a 'same' convolution. */
const sameOut = (n: number, stride: number) => Math.ceil(n / stride);

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

export interface Colorizer {
  config: ModelConfig;
  table: NetworkTable;
  /**
   * Training model: input L [B, S, S, 1] (S = inputSize); outputs [ab [B, S/2, S/2, 2], logits [B, N]] (logits
   * only when numClasses > 0). The global path reuses the same low-level output (computed once).
   */
  train: LayersModel;
  /**
   * Inference model (what is saved): inputs [local L [B, H, W, 1] (H, W multiples of 8), global L [B, S, S, 1]];
   * outputs [ab [B, H/2, W/2, 2], logits?]. The global image may be another picture than the local one:
   * that is the paper's style transfer. Shares every layer (weight) with `train`.
   */
  infer: LayersModel;
  /** Global path alone: global L [B, S, S, 1] -> [global features [B, 256*width], logits?]. */
  global: LayersModel;
  /** Local path given global features: [local L [B, H, W, 1], global features [B, 256*width]] -> ab [B, H/2, W/2, 2]. */
  local: LayersModel;
}

export interface BuildOptions {
  /** Seed of the weight initializers (He-normal for ReLU layers, Glorot for the outputs): same seed, same weights. */
  seed?: number;
}

type LayerMap = Map<string, tfl.layers.Layer>;

function makeLayers(t: NetworkTable, seed: number): LayerMap {
  const m: LayerMap = new Map();
  let n = 0;
  // tfjs treats a seed of 0 as "no seed" (Math.random()), so every layer's seed is mixed to a non-zero integer.
  const layerSeed = () => ((Math.imul(seed | 0, 2654435761) + Math.imul(++n, 40503)) >>> 0) || 1;
  const init = (activation: Activation | undefined) =>
    activation === 'relu' ? tfl.initializers.heNormal({ seed: layerSeed() }) : tfl.initializers.glorotUniform({ seed: layerSeed() });
  const all = [...t.low, ...t.mid, ...t.global, ...t.fusion, ...t.color, ...t.classifier];
  for (const l of all) {
    switch (l.kind) {
      case 'conv':
        m.set(
          l.name,
          tfl.layers.conv2d({
            name: l.name,
            filters: l.out!,
            kernelSize: l.kernel!,
            strides: l.stride!,
            padding: 'same',
            useBias: !!l.bias,
            activation: l.bn ? 'linear' : l.activation,
            kernelInitializer: init(l.activation),
          }),
        );
        if (l.bn) {
          m.set(`${l.name}_bn`, new BatchNormLayer({ name: `${l.name}_bn`, epsilon: t.bnEpsilon, momentum: t.bnMomentum, relu: l.activation === 'relu' }));
        }
        break;
      case 'dense':
        m.set(l.name, tfl.layers.dense({ name: l.name, units: l.out!, activation: l.activation, kernelInitializer: init(l.activation) }));
        break;
      case 'flatten':
        m.set(l.name, tfl.layers.flatten({ name: l.name }));
        break;
      case 'upsample':
        m.set(l.name, tfl.layers.upSampling2d({ name: l.name, size: [2, 2], interpolation: 'nearest' }));
        break;
      case 'fusion':
        m.set(l.name, new FusionLayer({ name: l.name }));
        break;
    }
  }
  return m;
}

/** Builds the four models from one set of layer objects (fresh, or taken from a loaded model). */
function wire(config: ModelConfig, t: NetworkTable, layers: LayerMap): Colorizer {
  const get = (name: string) => {
    const l = layers.get(name);
    if (!l) throw new Error(`colorizer: layer ${name} missing (the model does not match the layer table)`);
    return l;
  };
  const apply = (specs: LayerSpec[], x: SymbolicTensor): SymbolicTensor => {
    for (const s of specs) {
      x = get(s.name).apply(x) as SymbolicTensor;
      if (s.kind === 'conv' && s.bn) x = get(`${s.name}_bn`).apply(x) as SymbolicTensor;
    }
    return x;
  };
  /** Global path from low-level features: [features (gl_fc3), logits?]. */
  const globalPath = (low: SymbolicTensor): [SymbolicTensor, SymbolicTensor | null] => {
    let x = low;
    let fc2: SymbolicTensor | null = null;
    for (const s of t.global) {
      x = apply([s], x);
      if (s.name === 'gl_fc2') fc2 = x;
    }
    const logits = t.classifier.length ? apply(t.classifier, fc2!) : null;
    return [x, logits];
  };
  const localPath = (low: SymbolicTensor, feats: SymbolicTensor): SymbolicTensor => {
    const mid = apply(t.mid, low);
    const fused = get('fusion').apply([mid, feats]) as SymbolicTensor;
    return apply(t.color, apply([t.fusion[1]!], fused));
  };
  const outs = (ab: SymbolicTensor, logits: SymbolicTensor | null) => (logits ? [ab, logits] : [ab]);
  const S = config.inputSize;
  const featC = t.global[t.global.length - 1]!.out!;

  const trainIn = tfl.input({ shape: [S, S, 1], name: 'L' });
  const trainLow = apply(t.low, trainIn);
  const [trainFeats, trainLogits] = globalPath(trainLow);
  const train = tfl.model({ inputs: trainIn, outputs: outs(localPath(trainLow, trainFeats), trainLogits), name: 'colorizer_train' });

  const localIn = tfl.input({ shape: [null, null, 1], name: 'local_L' });
  const globalIn = tfl.input({ shape: [S, S, 1], name: 'global_L' });
  const [gFeats, gLogits] = globalPath(apply(t.low, globalIn));
  const localLow = apply(t.low, localIn);
  const infer = tfl.model({ inputs: [localIn, globalIn], outputs: outs(localPath(localLow, gFeats), gLogits), name: 'colorizer_infer' });

  const global = tfl.model({ inputs: globalIn, outputs: outs(gFeats, gLogits), name: 'colorizer_global' });
  const featIn = tfl.input({ shape: [featC], name: 'global_features' });
  const local = tfl.model({ inputs: [localIn, featIn], outputs: localPath(localLow, featIn), name: 'colorizer_local' });
  return { config: { ...config }, table: t, train, infer, global, local };
}

/**
 * Builds the network for a model config. Throws InvalidOptionError for an invalid config. Allocates all
 * weights at once on the current backend (the paper config: 42M floats, 170 MB).
 *
 * @example
 * const c = buildColorizer({ inputSize: 32, width: 0.125, numClasses: 4 });
 * const [ab, logits] = c.train.predict(L) as tf.Tensor[];
 */
export function buildColorizer(config: ModelConfig, options: BuildOptions = {}): Colorizer {
  validateModelConfig(config);
  registerLayers();
  const t = layerTable(config);
  return wire(config, t, makeLayers(t, options.seed ?? 1));
}

/** Model config recovered from a loaded inference model (its global input size, widths and classes). */
function configFromInfer(model: LayersModel): ModelConfig {
  const globalShape = model.inputs[1]!.shape;
  const inputSize = globalShape[1]!;
  const conv1 = model.getLayer('ll_conv1') as unknown as { getConfig(): { filters: number } };
  const width = conv1.getConfig().filters / 64;
  let numClasses = 0;
  try {
    numClasses = (model.getLayer('cls_out') as unknown as { getConfig(): { units: number } }).getConfig().units;
  } catch {
    numClasses = 0;
  }
  return { inputSize, width, numClasses };
}

/**
 * Rebuilds a Colorizer around the layers of a loaded inference model (weights shared, nothing copied).
 * The width is recovered from the first layer's filter count (width = filters / 64), which identifies the
 * table as long as the saved model was built by buildColorizer: every layer is checked against the table.
 */
export function colorizerFromInfer(model: LayersModel): Colorizer {
  registerLayers();
  const config = configFromInfer(model);
  const t = layerTable(config);
  const layers: LayerMap = new Map();
  for (const l of model.layers) layers.set(l.name, l);
  for (const spec of [...t.low, ...t.mid, ...t.global, ...t.fusion, ...t.color, ...t.classifier]) {
    if (spec.kind === 'conv' || spec.kind === 'dense') {
      const cfg = (layers.get(spec.name) as unknown as { getConfig(): { filters?: number; units?: number } } | undefined)?.getConfig();
      const got = cfg?.filters ?? cfg?.units;
      if (got !== spec.out) {
        throw new InvalidOptionError(`Saved model does not match colorpipe's layer table: ${spec.name} has ${String(got)} outputs, expected ${spec.out}`);
      }
    }
  }
  return wire(config, t, layers);
}

// ---------------------------------------------------------------------------------------------------------
// Save / load (tfjs Layers format: model.json + weights.bin)
// ---------------------------------------------------------------------------------------------------------

const WEIGHTS_FILE = 'weights.bin';

/**
 * Writes the inference model to `dir` in the tfjs Layers format (model.json and one weights.bin), which
 * `tf.loadLayersModel` opens in Node or a browser once `registerLayers()` has run. Writes in place: for an
 * atomic checkpoint, save into a temporary directory and rename it.
 */
export async function saveColorizer(colorizer: Colorizer, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await colorizer.infer.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = artifacts.weightData;
      const bytes = weightData == null ? new Uint8Array(0) : new Uint8Array(tf.io.concatenateArrayBuffers(weightData as ArrayBuffer | ArrayBuffer[]));
      const modelJson: tf.io.ModelJSON & { colorpipe: unknown } = {
        modelTopology: artifacts.modelTopology as tf.io.ModelJSON['modelTopology'],
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? '',
        convertedBy: null,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
        colorpipe: { config: colorizer.config },
      };
      await writeFile(join(dir, WEIGHTS_FILE), bytes);
      await writeFile(join(dir, 'model.json'), JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
}

/** An IOHandler reading model.json and its weight files from the local file system. */
function fileHandler(modelJsonPath: string): tf.io.IOHandler {
  const dir = resolve(modelJsonPath, '..');
  return {
    load: async () => {
      const json = JSON.parse(await readFile(modelJsonPath, 'utf8')) as tf.io.ModelJSON;
      return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const buffers: ArrayBuffer[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const p of group.paths) {
            const b = await readFile(join(dir, p));
            buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
          }
        }
        return [specs, tf.io.concatenateArrayBuffers(buffers)];
      });
    },
  };
}

/**
 * Loads a colorizer saved by `saveColorizer` (or `pipe train`): a directory holding model.json, a path to a
 * model.json, a file:// URL, or an http(s):// URL. Returns the same structure as buildColorizer, the train,
 * global and local models rebuilt around the loaded layers. Throws when the file is missing or is not a
 * colorpipe model.
 */
export async function loadColorizer(pathOrUrl: string): Promise<Colorizer> {
  registerLayers();
  let model: LayersModel;
  if (/^https?:\/\//.test(pathOrUrl)) {
    model = await tfl.loadLayersModel(pathOrUrl);
  } else {
    let p = pathOrUrl.startsWith('file://') ? fileURLToPath(pathOrUrl) : pathOrUrl;
    if (!p.endsWith('.json')) p = join(p, 'model.json');
    model = await tfl.loadLayersModel(fileHandler(resolve(p)));
  }
  if (model.inputs.length !== 2) {
    throw new InvalidOptionError(`${pathOrUrl} is not a colorpipe inference model (expected 2 inputs, found ${model.inputs.length})`);
  }
  return colorizerFromInfer(model);
}

/** file:// URL of a saved model's model.json (for tf.loadLayersModel in other tools). */
export function modelUrl(dir: string): string {
  return pathToFileURL(join(resolve(dir), 'model.json')).href;
}

/**
 * Disposes every weight of a colorizer (all four models share them). The models are unusable afterwards.
 * (LayersModel.dispose() would leave them: tfjs-layers counts one reference per call of a layer, and the
 * low-level layers are called twice in the inference model.)
 */
export function disposeColorizer(c: Colorizer): void {
  const weights = new Set([...c.train.weights, ...c.infer.weights, ...c.global.weights, ...c.local.weights]);
  for (const w of weights) if (!w.read().isDisposed) w.dispose();
}

/** Runs the inference model: ab [B, H/2, W/2, 2] and logits (or null), for local L and global L tensors. */
export function predictAb(c: Colorizer, local: Tensor, global: Tensor): { ab: Tensor; logits: Tensor | null } {
  const out = c.infer.predict([local, global]);
  if (Array.isArray(out)) return { ab: out[0]!, logits: out[1] ?? null };
  return { ab: out, logits: null };
}
