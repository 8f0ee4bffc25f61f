/**
 * trainGraph(): the training pipeline, composed from the stage library:
 *
 *   loader (N processes: shards -> decode (crop, flip) -> Lab + filter) -> shuffle -> batch -> prefetch
 *     -> train (engine; checkpoints; metrics) -> progress
 *
 * It owns the run directory: metrics.jsonl, checkpoints (model + state.json, atomically), samples/ and
 * report.html. Resume is exact: a checkpoint stores the loader's per-rank positions and the shuffle buffer
 * (positions, RNG state, samples emitted but not yet trained on); on --resume the loader replays those samples
 * first and continues after the positions, so the resumed run sees the same batches as an uninterrupted one.
 */
import { appendFileSync, promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import os from 'node:os';
import type { Config } from '../config.js';
import { Reporter, type OnError } from '../core/errors.js';
import { pipeline } from '../core/pipeline.js';
import type { LabBatch, LabSample } from '../types.js';
import { shuffle, type ShuffleState } from '../stages/shuffle.js';
import { batch } from '../stages/batch.js';
import { prefetch } from '../stages/prefetch.js';
import { train, type StepRecord } from './step.js';
import { progress } from '../stages/progress.js';
import { loader, loaderResumeFrom } from './loader/index.js';
import { setupEngine, type BackendChoice, type Engine } from '../model/engine.js';
import { buildColorizer, type Colorizer } from '../model/network.js';
import { createTrainer } from '../model/trainer.js';
import { latestCheckpoint, optimizerTensors, saveCheckpoint, fileLoadHandler, type TrainState } from './checkpoint.js';
import { writeReport, makeGrid, type RgbImage } from './report.js';
import { mergeLab } from '../color/lab.js';
import { psnr } from '../color/metrics.js';
import { cleanTemps, writeFileAtomic } from '../core/atomic.js';
import { expandShardSpec } from '../stages/shards.js';

export interface TrainGraphOptions {
  shards: string | string[];
  config: Config;
  out: string;
  backend?: BackendChoice;
  valShards?: string | string[];
  resume?: boolean;
  /** Total steps; default the config's (the checkpoint's on resume). */
  steps?: number;
  /** Decode processes (0 = in-process); default config.loader.processes (0 there = one per core). */
  processes?: number;
  onError?: OnError;
  /** Aborting stops after the current step with a checkpoint (Ctrl-C). */
  stop?: AbortSignal;
  /** Hard abort (tests): stops at once, no checkpoint. */
  signal?: AbortSignal;
  quiet?: boolean;
  /** Write data-order.jsonl (the sample keys of every step): for exact-resume checks. */
  logKeys?: boolean;
  /** Called after every step. */
  onStep?: (r: StepRecord) => void;
  /** Engine already set up (benchmarks, demo). */
  engine?: Engine;
  /** Progress bar label. */
  label?: string;
}

export interface TrainResult {
  steps: number;
  runDir: string;
  lastLoss: number;
  meanImgPerS: number;
  meanDataStall: number;
  badInputs: ReturnType<Reporter['summary']>;
  backend: string;
  stopped: boolean;
}

interface DataState {
  world: number;
  shuffle: ShuffleState;
}

export async function trainGraph(o: TrainGraphOptions): Promise<TrainResult> {
  const runDir = resolve(o.out);
  await fsp.mkdir(runDir, { recursive: true });
  await cleanTemps(runDir);
  const urls = await expandShardSpec(o.shards);

  // Resume: config, step, data position and optimizer come from the checkpoint.
  const ck = o.resume ? await latestCheckpoint(runDir) : null;
  if (o.resume && !ck) process.stderr.write(`colorpipe: no checkpoint in ${runDir}, starting from step 0\n`);
  // On resume the checkpoint's config wins (the model must match it), except the step count when given.
  const base: Config = ck ? ck.state.config : o.config;
  const config: Config = { ...base, train: { ...base.train, steps: o.steps ?? base.train.steps } };
  const data = (ck?.state.data ?? null) as DataState | null;
  // Decode processes: the option, else the config (0 there = one per core). The rank split (world) fixes the
  // data order, so a resumed run keeps its checkpoint's world whatever the process count.
  const processes = o.processes ?? (config.loader.processes || os.availableParallelism());
  const world = data ? data.world : Math.max(1, Math.min(urls.length, processes));
  const startStep = ck?.state.step ?? 0;

  const engine = o.engine ?? (await setupEngine({ backend: o.backend ?? 'auto' }));
  const tf = engine.tf;
  const model: Colorizer = buildColorizer(config.model, { seed: config.train.seed });
  const trainer = createTrainer(model.train, config, tf);
  if (ck) {
    const { loadLayersModel } = await import('@tensorflow/tfjs-layers');
    const saved = await loadLayersModel(fileLoadHandler(ck.dir));
    model.infer.setWeights(saved.getWeights());
    saved.dispose();
    await trainer.setOptimizerWeights(optimizerTensors(ck));
  }
  await truncateLogs(runDir, startStep);

  const reporter = new Reporter({ onError: o.onError ?? 'skip', log: o.quiet ? null : undefined });
  const sh = shuffle<LabSample & { rank?: number }>({ size: config.train.shuffleBuffer, seed: config.train.seed, restore: data?.shuffle ?? null });
  const source = loader({
    urls,
    config,
    seed: config.train.seed,
    processes,
    world,
    epochs: Infinity,
    resume: data ? loaderResumeFrom(data.shuffle) : undefined,
  });

  // Validation set: held in memory, decoded once (deterministic crops, no flip).
  const val = await loadValidation(o.valShards ?? urls, config, o.valShards === undefined);

  let samplesSeen = ck?.state.samplesSeen ?? 0;
  const metricsPath = join(runDir, 'metrics.jsonl');
  const keysPath = join(runDir, 'data-order.jsonl');
  let stopped = false;

  const checkpoint = async (step: number, epoch: number) => {
    const state: Omit<TrainState, 'checkpoint' | 'optimizer' | 'time'> & { optimizer: { type: string } } = {
      version: 1, step, epoch, samplesSeen, seed: config.train.seed, config, backend: engine.name,
      data: { world, shuffle: sh.state() } satisfies DataState,
      optimizer: { type: config.train.optimizer },
    };
    const optimizerWeights = await trainer.getOptimizerWeights();
    await saveCheckpoint({ runDir, model: model.infer, state, optimizerWeights });
    if (val.length) await validate(step);
    await writeReport({ runDir, title: `colorpipe training: ${config.name} (${runDir})` });
  };

  const validate = async (step: number) => {
    const r = await evaluateBatches(engine, model, val, config);
    await fsp.appendFile(metricsPath, JSON.stringify({ type: 'val', step, loss: r.loss, psnr: r.psnr, psnr_gray: r.psnrGray }) + '\n');
    const grid = await makeGrid(r.triplets.slice(0, config.train.valImages));
    await writeFileAtomic(join(runDir, 'samples', `step-${String(step).padStart(8, '0')}.png`), grid);
  };

  const p = pipeline(
    source,
    sh,
    batch({ size: config.train.batch, dropLast: true }),
    prefetch<LabBatch>(config.train.prefetch),
    train({
      trainer,
      steps: config.train.steps,
      startStep,
      startEpoch: ck?.state.epoch ?? 0,
      checkpointEvery: config.train.checkpointEvery,
      onCheckpoint: checkpoint,
      stop: o.stop,
      afterStep: (b, r) => {
        sh.ack(b.size);
        samplesSeen += b.size;
        // Synchronously, before the checkpoint of this step can be written: the key log never lags a checkpoint.
        if (o.logKeys) appendFileSync(keysPath, JSON.stringify({ step: r.step, keys: b.keys }) + '\n');
      },
    }),
    progress<StepRecord>({
      total: config.train.steps - startStep,
      quiet: o.quiet,
      label: o.label ?? 'train',
      render: (r) => `step ${r.step} loss ${r.loss.toFixed(4)} ${r.imgPerS.toFixed(1)} img/s stall ${(r.dataStall * 100).toFixed(0)}%`,
    }),
    { reporter, signal: o.signal },
  );

  let n = 0, sumImg = 0, sumStall = 0, lastLoss = NaN;
  let windowWait = 0, windowCompute = 0, windowImgs = 0, windowLoss = 0, windowMse = 0, windowCe = 0, windowSteps = 0;
  for await (const r of p) {
    n++;
    sumImg += r.imgPerS;
    sumStall += r.dataStall;
    lastLoss = r.loss;
    windowWait += r.waitMs; windowCompute += r.computeMs; windowImgs += r.batchSize;
    windowLoss += r.loss; windowMse += r.mse; windowCe += r.ce; windowSteps++;
    if (r.step % config.train.logEvery === 0 || r.checkpointed || r.step === config.train.steps) {
      const line = {
        step: r.step, epoch: r.epoch,
        loss: windowLoss / windowSteps, mse: windowMse / windowSteps, ce: windowCe / windowSteps,
        img_per_s: (windowImgs * 1000) / Math.max(1e-6, windowWait + windowCompute),
        data_stall: windowWait / Math.max(1e-6, windowWait + windowCompute),
        backend: engine.name,
      };
      await fsp.appendFile(metricsPath, JSON.stringify(line) + '\n');
      windowWait = windowCompute = windowImgs = windowLoss = windowMse = windowCe = windowSteps = 0;
    }
    o.onStep?.(r);
    if (o.stop?.aborted && r.checkpointed) {
      stopped = true;
      break;
    }
  }
  model.train.dispose?.();
  return {
    steps: startStep + n,
    runDir,
    lastLoss,
    meanImgPerS: n ? sumImg / n : 0,
    meanDataStall: n ? sumStall / n : 0,
    badInputs: reporter.summary(),
    backend: engine.name,
    stopped,
  };
}

/** Drops metric and key-log lines past `step` (the part of a killed run after its last checkpoint). */
async function truncateLogs(runDir: string, step: number): Promise<void> {
  for (const name of ['metrics.jsonl', 'data-order.jsonl']) {
    const path = join(runDir, name);
    let text: string;
    try {
      text = await fsp.readFile(path, 'utf8');
    } catch {
      continue;
    }
    const kept = text.split('\n').filter((l) => {
      if (!l.trim()) return false;
      try {
        return (JSON.parse(l) as { step: number }).step <= step;
      } catch {
        return false;
      }
    });
    await writeFileAtomic(path, kept.map((l) => l + '\n').join(''));
  }
}

const VAL_MAX = 32;

/** Up to VAL_MAX validation samples (deterministic crops, no flip), in batches. */
async function loadValidation(urls: string | string[], config: Config, fromTraining: boolean): Promise<LabBatch[]> {
  const valConfig: Config = { ...config, augment: { ...config.augment, flip: false } };
  const reporter = new Reporter({ log: null });
  const samples: LabSample[] = [];
  const src = loader({ urls: await expandShardSpec(urls), config: valConfig, seed: config.train.seed + (fromTraining ? 1 : 0), processes: 0, epochs: 1 });
  const p = pipeline(src, { reporter });
  for await (const s of p) {
    samples.push(s);
    if (samples.length >= (fromTraining ? config.train.valImages : VAL_MAX)) break;
  }
  const out: LabBatch[] = [];
  const collectBatches = pipeline(samples, batch({ size: Math.max(1, Math.min(config.train.batch, 16)) }), { reporter });
  for await (const b of collectBatches) out.push(b);
  return out;
}

export interface EvalResult {
  loss: number;
  psnr: number;
  psnrGray: number;
  triplets: RgbImage[][];
}

/** Loss and PSNR of the model on batches at training size, and (gray | prediction | original) triplets. */
export async function evaluateBatches(engine: Engine, model: Colorizer, batches: LabBatch[], config: Config): Promise<EvalResult> {
  const tf = engine.tf;
  let lossSum = 0, psnrSum = 0, grayPsnrSum = 0, n = 0;
  const triplets: RgbImage[][] = [];
  for (const b of batches) {
    const { height: h, width: w, size } = b;
    const [abFull, mse] = tf.tidy(() => {
      const L = tf.tensor4d(b.L, [size, h, w, 1]);
      const out = model.train.predict(L);
      const ab = (Array.isArray(out) ? out[0]! : out) as import('@tensorflow/tfjs-core').Tensor4D;
      const target = tf.avgPool(tf.tensor4d(b.ab, [size, h, w, 2]), 2, 2, 'valid');
      const mse = tf.mean(tf.squaredDifference(ab, target));
      return [tf.image.resizeBilinear(ab, [h, w]), mse] as const;
    });
    const abData = (await abFull.data()) as Float32Array;
    lossSum += (await mse.data())[0]! * size;
    abFull.dispose();
    mse.dispose();
    const px = h * w;
    for (let i = 0; i < size; i++) {
      const L = b.L.subarray(i * px, (i + 1) * px);
      const pred = mergeLab(L, abData.subarray(i * px * 2, (i + 1) * px * 2));
      const orig = mergeLab(L, b.ab.subarray(i * px * 2, (i + 1) * px * 2));
      const gray = mergeLab(L, new Float32Array(px * 2).fill(128 / 255));
      psnrSum += psnr(pred, orig);
      grayPsnrSum += psnr(gray, orig);
      n++;
      triplets.push([{ width: w, height: h, rgb: gray }, { width: w, height: h, rgb: pred }, { width: w, height: h, rgb: orig }]);
    }
  }
  void config;
  return { loss: n ? lossSum / n : NaN, psnr: n ? psnrSum / n : NaN, psnrGray: n ? grayPsnrSum / n : NaN, triplets };
}
