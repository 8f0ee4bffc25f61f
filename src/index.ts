/**
 * colorpipe's public API: the stage type and its composition, every stage, the training and colorizing
 * graphs, the network and its engines, configuration, checkpoints and errors. Everything else is internal.
 *
 * @example
 * import { pipeline, shards, decode, lab, shuffle, batch, prefetch } from 'colorpipe';
 * const p = pipeline(shards({ urls: 'data/*.tar', seed: 1 }), decode({ mode: 'train', resize: 256, crop: 224 }),
 *   lab(), shuffle({ size: 512, seed: 1 }), batch({ size: 32 }), prefetch(4));
 * for await (const b of p) console.log(b.size, b.L.length);
 */
export { pipeline, compose, collect, drain } from './core/pipeline.js';
export { sleep, throwIfAborted, abortErrorOf } from './core/abort.js';
export type { Stage, PassThroughStage, StageContext, Source, Pipeline, PipelineOptions } from './core/pipeline.js';
export type { Sample, ShardPosition, DecodedImage, LabSample, LabBatch } from './types.js';
export {
  ColorpipeError, InvalidOptionError, BadInputError, AbortError, OutOfMemoryError, EngineUnavailableError,
  WasmAllocationError, Reporter,
} from './core/errors.js';
export type { OnError, BadInputRecord, ErrorCode } from './core/errors.js';
export { makeConfig, loadConfig, applyOverrides, DEFAULT_CONFIG } from './config.js';
export type { Config, ModelConfig, TrainConfig, AugmentConfig, FilterConfig, LoaderConfig, Overrides } from './config.js';
export { Rng } from './core/rng.js';

// Stages
export { shards, readSamplesAt } from './stages/shards.js';
export { expandShardSpec } from './webdataset/spec.js';
export type { ShardsOptions, ShardSample } from './stages/shards.js';
export { files, listImageFiles } from './stages/files.js';
export { decode } from './stages/decode.js';
export type { DecodeOptions } from './stages/decode.js';
export { lab } from './stages/lab.js';
export type { LabOptions } from './stages/lab.js';
export { filter } from './stages/filter.js';
export { loader, loaderResumeFrom } from './train/loader/index.js';
export type { LoaderOptions, LoaderResume, LoaderSample } from './train/loader/index.js';
export { shuffle } from './stages/shuffle.js';
export type { ShuffleOptions, ShuffleState, ShuffleStage, ShuffleControls, PassThroughShuffleStage, Positioned } from './stages/shuffle.js';
export { batch } from './stages/batch.js';
export { prefetch } from './stages/prefetch.js';
export { parallelMap } from './stages/parallel-map.js';
export { progress } from './stages/progress.js';
export { train } from './train/step.js';
export type { StepRecord, TrainStageOptions } from './train/step.js';
export { prepare } from './colorize/prepare.js';
export { groupByShape } from './stages/group-by-shape.js';
export { admit } from './stages/admit.js';
export type { AdmitOptions, Leased } from './stages/admit.js';
export { ByteBudget } from './core/budget.js';
export type { Lease } from './core/budget.js';
export { predict } from './colorize/predict.js';
export { write } from './colorize/write.js';

// Graphs
export { trainGraph } from './train/graph.js';
export type { TrainGraphOptions, TrainResult } from './train/graph.js';
export { colorizeGraph, colorizeBuffers, colorizeStream } from './colorize/graph.js';
export type { ColorizeBuffersOptions, BufferInput, ColorizedBuffer } from './colorize/graph.js';
export type { ColorizeOptions, ColorizeSummary } from './colorize/options.js';
export { loadRunner, RUNTIMES } from './colorize/runner.js';
export type { ColorizeModel, Runtime, LoadRunnerOptions, Runner, RunShape, RunResult } from './colorize/runner.js';
export { evaluateFolder } from './colorize/eval.js';
export { psnr, colourfulness, PSNR_CAP } from './color/metrics.js';
export { writeShards } from './shard/graph.js';

// Model and engines
export { buildColorizer, loadColorizer, saveColorizer, predictAb } from './tfjs/network.js';
export { countParams, layerTable } from './network/table.js';
export type { Colorizer } from './tfjs/network.js';
export type { TrainingScale } from './types.js';
// tfjs custom layers: register them before tf.loadLayersModel opens a model.json saved by pipe train (browser too).
export { registerLayers } from './tfjs/layers.js';
export { setupTfjs, BACKENDS } from './tfjs/backend.js';
export type { TfjsBackend, TfjsBackendOptions, BackendChoice } from './tfjs/backend.js';
export { exportOnnx, writeOnnx } from './onnx/export.js';
export type { ExportOptions } from './onnx/export.js';
export { loadOnnxColorizer, ONNX_DEVICES } from './onnx/session.js';
export type { OnnxColorizer, OnnxDevice, OnnxEngineOptions, OnnxInput, OnnxPrediction } from './onnx/session.js';
// The ONNX Runtime training engine, for trainGraph({ engine }) on a device `pipe train` does not offer (webgpu).
export { onnxTrainEngine } from './onnx/train-engine.js';
export type { OnnxTrainEngine, OnnxTrainOptions, OnnxTrainDevice } from './onnx/train-engine.js';
export { createTrainer } from './tfjs/trainer.js';
export { saveCheckpoint, latestCheckpoint } from './train/checkpoint.js';
export { fileLoadHandler, fileSaveHandler } from './tfjs/io.js';
export type { TrainState } from './train/checkpoint.js';

// Colour
export { rgbToLab, labToRgb, splitLab, mergeLab } from './color/lab.js';
