/**
 * The colorization network built from its layer table (table.ts: the paper's architecture, padding and width
 * rules are documented there): four tfjs-layers models sharing their weights (train, inference, global path,
 * local path), saved and loaded in the tfjs Layers format through model/io.ts.
 */
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Tensor } from '@tensorflow/tfjs-core';
import type { LayersModel, SymbolicTensor } from '@tensorflow/tfjs-layers';
import type { ModelConfig } from '../config.js';
import type { TrainingScale } from '../types.js';
import { InvalidOptionError } from '../core/errors.js';
import { BatchNormLayer, FusionLayer, registerLayers } from './layers.js';
import { layerTable, sameOut, validateModelConfig, type Activation, type LayerSpec, type NetworkTable } from '../network/table.js';
import { readModelFiles, trainingScaleOf, writeModelFiles } from '../network/model-files.js';
import { modelTopology } from '../network/topology.js';
import { orderWeights, type NamedWeight } from '../network/weights.js';

export interface Colorizer {
  config: ModelConfig;
  table: NetworkTable;
  /** How it was trained (saved in model.json by pipe train): colorize's default resolution follows it. */
  trainingScale?: TrainingScale;
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
  // tfjs's heNormal truncates its normal at 2 std without Keras's 1/0.8796 widening, so ReLU layers start with a
  // std about 12% below He et al.'s sqrt(2 / fanIn). The corrected init (varianceScaling, scale 2 / 0.8796^2)
  // measured worse on the demo (held-apart PSNR 0.10 to 0.29 dB lower on each of 4 seeds; see BENCHMARKS.md),
  // so tfjs's heNormal stays.
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

/**
 * Every weight of a colorizer (batch-norm moving statistics included) in colorpipe's names and layout, in the
 * canonical order (src/network/weights.ts): what checkpoints, ONNX export and the other engines take.
 */
export async function colorizerWeights(c: Colorizer): Promise<NamedWeight[]> {
  const named: NamedWeight[] = [];
  // Read asynchronously: a synchronous read on webgpu needs a canvas Node does not have.
  for (const l of c.infer.layers) {
    for (const w of l.weights) named.push({ name: w.originalName, shape: [...w.shape] as number[], data: (await w.read().data()) as Float32Array });
  }
  return orderWeights(c.table, named, 'the tfjs model');
}

/**
 * Writes weights given in colorpipe's names and layout into a colorizer (every weight of the table, checked).
 * @throws InvalidOptionError naming `source` when a weight is missing or has another shape.
 */
export function setColorizerWeights(c: Colorizer, weights: Iterable<NamedWeight>, source: string): void {
  const byName = new Map(orderWeights(c.table, weights, source).map((w) => [w.name, w]));
  tf.tidy(() => {
    for (const l of c.infer.layers) {
      for (const w of l.weights) {
        const src = byName.get(w.originalName)!;
        w.write(tf.tensor(src.data, src.shape, 'float32'));
      }
    }
  });
}

/**
 * Writes the inference model to `dir` in the tfjs Layers format (model.json and one weights.bin,
 * src/network/model-files.ts), which `tf.loadLayersModel` opens in Node or a browser once `registerLayers()`
 * has run. Writes in place: for an atomic checkpoint, write into a temporary directory and rename it.
 */
export async function saveColorizer(colorizer: Colorizer, dir: string): Promise<void> {
  await writeModelFiles(dir, {
    topology: modelTopology(colorizer.config),
    weights: await colorizerWeights(colorizer),
    config: colorizer.config,
    ...(colorizer.trainingScale ? { trainingScale: colorizer.trainingScale } : {}),
  });
}

/**
 * Loads a colorizer saved by `saveColorizer` (or `pipe train`): a directory holding model.json, a path to a
 * model.json, a file:// URL, or an http(s):// URL. Returns the same structure as buildColorizer, the train,
 * global and local models rebuilt around the loaded layers. Throws when the file is missing or is not a
 * colorpipe model.
 */
export async function loadColorizer(pathOrUrl: string): Promise<Colorizer> {
  registerLayers();
  if (/^https?:\/\//.test(pathOrUrl)) {
    const model = await tfl.loadLayersModel(pathOrUrl);
    return colorizerFromInfer(checkInputs(model, pathOrUrl));
  }
  const p = pathOrUrl.startsWith('file://') ? fileURLToPath(pathOrUrl) : pathOrUrl;
  const files = await readModelFiles(p);
  // Rebuilt from its config (the layer table), then its weights written in by name.
  const c = buildColorizer(files.config);
  try {
    setColorizerWeights(c, files.weights, files.path);
  } catch (err) {
    disposeColorizer(c);
    throw err;
  }
  if (files.trainingScale) c.trainingScale = files.trainingScale;
  return c;
}

function checkInputs(model: LayersModel, source: string): LayersModel {
  if (model.inputs.length !== 2) {
    throw new InvalidOptionError(`${source} is not a colorpipe inference model (expected 2 inputs, found ${model.inputs.length})`);
  }
  return model;
}

/** What colorpipe adds to model.json (tfjs ignores it): the model config and, when known, the training scale. */
export function modelMetadata(config: ModelConfig, trainingScale?: TrainingScale): { colorpipe: Record<string, unknown> } {
  return { colorpipe: trainingScale ? { config, trainingScale } : { config } };
}

export { trainingScaleOf };

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

/** A colorizer as ONNX export takes a model (src/onnx/export.ts ExportSource): its config and weights. */
export async function exportSourceOf(c: Colorizer): Promise<{ config: ModelConfig; weights: NamedWeight[] }> {
  return { config: c.config, weights: await colorizerWeights(c) };
}
