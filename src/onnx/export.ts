/**
 * ONNX export of a trained model: its inference graph (graph.ts) with the weights as initializers and
 * colorpipe's conventions in metadata_props, encoded with onnx-proto (proto.ts). It takes the model as the
 * weights every engine exchanges (src/network/weights.ts: a model folder read by readModelFiles, or an engine's
 * weights), so exporting loads no engine. The file runs in ONNX Runtime (session.ts) and any other ONNX
 * runtime; `python3 bench/onnx_check.py model.onnx` runs onnx's checker on it.
 *
 * The graph (see graph.ts): inputs L_local [N, 1, H, W] (L / 100; H, W multiples of 8) and L_global
 * [G, 1, S, S] (S = the model's inputSize; G = N, or 1 for one global image shared by the batch: the paper's
 * style transfer); outputs ab [N, 2, H/2, W/2] ((ab + 128) / 255: the network's own half resolution) and,
 * with a class head, logits [G, numClasses]. Batch and spatial dimensions are symbolic.
 */
import { colorpipeVersion } from '../core/version.js';
import { writeFileAtomic } from '../core/atomic.js';
import { InvalidOptionError } from '../core/errors.js';
import { object, oneOf, optional } from '../core/validate.js';
import type { ModelConfig } from '../config.js';
import type { TrainingScale } from '../types.js';
import { layerTable, validateModelConfig } from '../network/table.js';
import { layerReader, orderWeights, type NamedWeight } from '../network/weights.js';
import { buildGraph, type FusionMode } from './graph.js';
import { DEFAULT_OPSET, encodeModel, irVersionFor, type ModelMessage } from './proto.js';

export interface ExportOptions {
  /** Default-domain opset, 13 to 21 (default 17, which onnx 1.12's checker and every current runtime know). */
  opset?: number;
  /** How the fusion layer is written (graph.ts): 'split' (default, cheaper) or 'concat' (the paper's form). */
  fusion?: FusionMode;
  /**
   * The training scale, when the model records one (model.json, or an older run's state.json): written to
   * metadata as `colorpipe.training_scale`, JSON `{"shortSide":256,"crop":224}`: crops of `crop` pixels of
   * images whose short side was scaled to `shortSide`. Colorize's default resolution reads it back.
   */
  trainingScale?: TrainingScale;
  /** More metadata_props (string values), written after colorpipe's own. */
  metadata?: Record<string, string>;
}

export { colorpipeVersion };

/** The metadata_props keys the export writes (engine.ts reads them back). */
export const META = {
  version: 'colorpipe.version',
  config: 'colorpipe.model_config',
  inputSize: 'colorpipe.input_size',
  numClasses: 'colorpipe.num_classes',
  normL: 'colorpipe.normalization.L',
  normAb: 'colorpipe.normalization.ab',
  abScale: 'colorpipe.ab_resolution',
  layout: 'colorpipe.layout',
  trainingScale: 'colorpipe.training_scale',
} as const;

/** A model to export: its config and weights (colorpipe's names and layout), e.g. readModelFiles' result. */
export interface ExportSource {
  config: ModelConfig;
  weights: Iterable<NamedWeight>;
  /** Where the weights came from, for messages (a model.json path). */
  source?: string;
}

/**
 * The ONNX ModelProto (as a plain message) of a model's inference graph.
 * @throws InvalidOptionError for a bad option or weights that do not match the layer table.
 */
export function onnxModel(model: ExportSource, options: ExportOptions = {}): ModelMessage {
  object(options, 'options');
  const opset = optional(options.opset, 'options.opset', (v) => v as number, DEFAULT_OPSET);
  const irVersion = irVersionFor(opset);
  const fusion = optional(options.fusion, 'options.fusion', (v, n) => oneOf(v, n, ['split', 'concat'] as const), 'split');
  validateModelConfig(model.config);
  const t = layerTable(model.config);
  const graph = buildGraph(t, layerReader(orderWeights(t, model.weights, model.source ?? 'the model')), { fusion });
  const meta: Record<string, string> = {
    [META.version]: colorpipeVersion(),
    [META.config]: JSON.stringify({ inputSize: t.inputSize, width: t.width, numClasses: t.numClasses }),
    [META.inputSize]: String(t.inputSize),
    [META.numClasses]: String(t.numClasses),
    // src/color/lab.ts normL / normAb.
    [META.normL]: 'L_local and L_global hold L / 100 (CIE L* in [0, 100] -> [0, 1])',
    [META.normAb]: 'ab holds (ab + 128) / 255 (CIE a*, b* in [-128, 127] -> [0, 1]); invert with ab = 255 * v - 128',
    [META.abScale]: 'half: ab is [N, 2, H/2, W/2] for L_local [N, 1, H, W]; upsample it x2 to join the full-size L',
    [META.layout]: 'NCHW; H and W multiples of 8; L_global batch N or 1',
  };
  if (options.trainingScale) {
    const { shortSide, crop } = options.trainingScale;
    meta[META.trainingScale] = JSON.stringify({ shortSide, crop });
  }
  Object.assign(meta, options.metadata ?? {});
  return {
    irVersion,
    opsetImport: [{ domain: '', version: opset }],
    producerName: 'colorpipe',
    producerVersion: colorpipeVersion(),
    domain: 'colorpipe',
    modelVersion: 1,
    docString:
      'Iizuka, Simo-Serra and Ishikawa 2016, "Let there be Color!": automatic colorization (inference graph, ' +
      'batch norm folded into the convolutions)',
    graph,
    metadataProps: Object.entries(meta).map(([key, value]) => ({ key, value })),
  };
}

/**
 * The bytes of a .onnx file for a model.
 * @example
 * const m = await readModelFiles('runs/demo/model');
 * const bytes = exportOnnx({ config: m.config!, weights: m.weights }, { opset: 17, trainingScale: m.trainingScale });
 */
export function exportOnnx(model: ExportSource, options: ExportOptions = {}): Uint8Array {
  return encodeModel(onnxModel(model, options));
}

/** Writes a model's ONNX file to `path` atomically (temp file + fsync + rename). */
export async function writeOnnx(model: ExportSource, path: string, options: ExportOptions = {}): Promise<number> {
  const bytes = exportOnnx(model, options);
  await writeFileAtomic(path, bytes);
  return bytes.byteLength;
}
