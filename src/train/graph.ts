/**
 * trainGraph(): the training pipeline, composed from the stage library:
 *
 *   loader (N processes: shards -> decode (crop, flip) -> Lab + filter) -> shuffle -> batch -> prefetch
 *     -> train (engine; checkpoints, each validating) -> validateEvery (valEvery) -> logMetrics -> progress
 *
 * It owns the run directory: metrics.jsonl, checkpoints (model + state.json, atomically), samples/ and
 * report.html. Resume is exact: a checkpoint stores the loader's per-rank positions and the shuffle buffer
 * (positions, RNG state, samples emitted but not yet trained on); on --resume the loader replays those samples
 * first and continues after the positions (loaderResumeFrom, loader/resume.ts), so the resumed run sees the
 * same batches as an uninterrupted one. Validation (validation.ts) and the metrics log (metrics.ts) run between
 * steps and touch neither the data nor the weights.
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
import type { BackendChoice, TfjsBackend } from '../tfjs/backend.js';
import { checkpointOptimizer, checkpointWeights, latestCheckpoint, saveCheckpoint, type LoadedCheckpoint, type TrainState } from './checkpoint.js';
import type { TrainEngine } from '../network/train-engine.js';
import { createTrainEngine, type CreateEngineOptions, type EngineChoice } from './engines.js';
import { dataShare, dataState } from './ranks.js';
import type { RankPlace } from '../torch/engine.js';
import { writeReport } from './report.js';
import { loadValidation, validateEvery, writeValidation } from './validation.js';
import { logMetrics, RunTotals } from './metrics.js';
import { checkWritableDir, cleanTemps, withPath, writeFileAtomic } from '../core/atomic.js';
import { lockFolder } from '../core/lock.js';
import { expandShardSpec } from '../webdataset/spec.js';
import { checkClassCount } from './labels.js';

export interface TrainGraphOptions {
  shards: string | string[];
  config: Config;
  out: string;
  /** The training engine: tfjs, torch, onnx, or auto (engines.ts). Default auto. */
  engine?: EngineChoice | TrainEngine;
  /** tfjs's backend (engine tfjs). */
  backend?: BackendChoice;
  /** A tfjs backend already set up (benchmarks, tests): the tfjs engine runs on it. */
  tfjsBackend?: TfjsBackend;
  /** The torch engine's settings: Python, device, precision, threads, torch.compile, synchronized batch norm. */
  torch?: Pick<CreateEngineOptions, 'python' | 'device' | 'precision' | 'threads' | 'compile' | 'syncBn'>;
  /**
   * Data parallel (torch): this rank's place. Rank 0 writes the run directory (checkpoints with every rank's data
   * position, metrics, report); every rank reads it on --resume (it must be on a file system they share).
   */
  dist?: RankPlace & { localWorld: number };
  /** webgpu: accept a software adapter (EngineOptions.softwareGpu; default $COLORPIPE_SOFTWARE_GPU=1). */
  softwareGpu?: boolean;
  valShards?: string | string[];
  resume?: boolean;
  /** With resume: the checkpoint the caller already found and verified (latestCheckpoint), so it is not read twice. */
  checkpoint?: LoadedCheckpoint | null;
  /** Total steps; default the config's (the checkpoint's on resume). */
  steps?: number;
  /** Decode processes (0 = in-process); default config.loader.processes (0 there = one per core). */
  processes?: number;
  onError?: OnError;
  /** Aborting stops after the current step with a checkpoint (Ctrl-C). */
  stop?: AbortSignal;
  /** Hard abort (tests): stops at once, no checkpoint. */
  signal?: AbortSignal;
  /** No progress bar (bad inputs and notes are still reported, one line each). */
  quiet?: boolean;
  /** Write data-order.jsonl (the sample keys of every step): for exact-resume checks. */
  logKeys?: boolean;
  /** Called after every step. */
  onStep?: (r: StepRecord) => void;
  /** Called after every step with the batch it trained on (bench/fidelity.ts dumps them for PyTorch). */
  onBatch?: (b: LabBatch, step: number) => void;
  /** Progress bar label. */
  label?: string;
  /** The caller holds the run directory's lock (core/lock.ts lockFolder): pipe train and pipe demo take it first. */
  locked?: boolean;
}

export interface TrainResult {
  steps: number;
  runDir: string;
  lastLoss: number;
  meanImgPerS: number;
  meanDataStall: number;
  badInputs: ReturnType<Reporter['summary']>;
  /** The engine that trained (tfjs, torch, onnx) and its device (cpu, webgpu, cuda). */
  runtime: string;
  device: string;
  /** The engine's one-line description (TrainEngine.describe), e.g. naming an opted-in software adapter. */
  engine: string;
  stopped: boolean;
}

export async function trainGraph(o: TrainGraphOptions): Promise<TrainResult> {
  // Rank 0 writes the run directory, so it holds the directory's lock (core/lock.ts), unless its caller does.
  const lock = (o.dist?.rank ?? 0) === 0 && !o.locked ? await lockFolder(resolve(o.out), 'colorpipe training') : null;
  try {
    return await trainRun(o);
  } finally {
    await lock?.release();
  }
}

async function trainRun(o: TrainGraphOptions): Promise<TrainResult> {
  const runDir = resolve(o.out);
  const ranks = o.dist?.world ?? 1;
  const rank = o.dist?.rank ?? 0;
  // Rank 0 writes the run directory; the others only read it (a resume).
  const lead = rank === 0;
  if (lead) {
    // A run that cannot write its checkpoints fails now, naming the directory, not after the first steps.
    await checkWritableDir(runDir);
    await cleanTemps(runDir);
  }
  const urls = await expandShardSpec(o.shards);
  await checkClassCount(urls, o.config.model.numClasses);

  // Resume: config, step, data position and optimizer come from the checkpoint.
  const ck = o.resume ? (o.checkpoint !== undefined ? o.checkpoint : await latestCheckpoint(runDir)) : null;
  if (o.resume && !ck && lead) process.stderr.write(`colorpipe: no checkpoint in ${runDir}, starting from step 0\n`);
  // On resume the checkpoint's config wins (the model must match it), except the step count when given.
  const base: Config = ck ? ck.state.config : o.config;
  const config: Config = { ...base, train: { ...base.train, steps: o.steps ?? base.train.steps } };
  // Decode processes: the option, else the config (0 there = one per core, shared by the ranks of this machine).
  // The loader's world fixes the data order, so a resumed run keeps its checkpoint's whatever the process count.
  const processes = o.processes ?? (config.loader.processes || Math.max(1, Math.floor(os.availableParallelism() / (o.dist?.localWorld ?? 1))));
  const share = dataShare({ urls, processes, rank, ranks, config, data: ck?.state.data, runDir });
  const startStep = ck?.state.step ?? 0;

  const engine: TrainEngine = typeof o.engine === 'object'
    ? o.engine
    : await createTrainEngine({
      engine: o.engine ?? 'auto', config, backend: o.backend ?? 'auto', ...(o.torch ?? {}),
      ...(o.dist ? { dist: o.dist, localWorld: o.dist.localWorld } : {}),
      ...(o.tfjsBackend ? { tfjsBackend: o.tfjsBackend } : {}), ...(o.softwareGpu ? { softwareGpu: true } : {}),
    });
  // The engine's processes end with the run, whatever ends it.
  try {
    return await run();
  } finally {
    // An engine passed in belongs to the caller.
    if (typeof o.engine !== 'object') await engine.release();
  }

  async function run(): Promise<TrainResult> {
    // Saved with every checkpoint: colorize's default resolution is the scale the crops were cut at.
    const trainingScale = { shortSide: config.augment.resize, crop: config.augment.crop };
    if (ck) {
      await engine.setWeights(await checkpointWeights(ck));
      await engine.setOptimizerState(checkpointOptimizer(ck));
    }
    if (lead) await truncateLogs(runDir, startStep);
    // The run's first line: what trains, where (and the global batch of several ranks).
    if (lead) {
      const what = ranks > 1 ? `${ranks} ranks, global batch ${config.train.batch * ranks} (${config.train.batch} per rank); rank 0 on ` : '';
      process.stderr.write(`colorpipe: training ${config.name} from step ${startStep}: ${what}${engine.describe}\n`);
    }

    // quiet hides the progress bar only: each bad input still gets its line (`pipe train --help`).
    const reporter = new Reporter({ onError: o.onError ?? 'skip' });
    const sh = shuffle<LabSample & { rank?: number }>({ size: config.train.shuffleBuffer, seed: share.seed, restore: share.restore });
    const source = loader({
      urls,
      config,
      seed: config.train.seed,
      processes,
      world: share.world,
      ...(share.streams ? { ranks: share.streams } : {}),
      epochs: Infinity,
      resume: share.resume,
    });

    // Validation set (rank 0): held in memory, decoded once (deterministic crops, no flip).
    const val = lead ? await loadValidation(o.valShards !== undefined ? await expandShardSpec(o.valShards) : urls, config, o.valShards === undefined) : [];

    let samplesSeen = ck?.state.samplesSeen ?? 0;
    const metricsPath = join(runDir, 'metrics.jsonl');
    const keysPath = join(runDir, 'data-order.jsonl');
    let stopped = false;

    const checkpoint = async (step: number, epoch: number) => {
      // Every rank's data position: a collective, so every rank takes part; rank 0 writes.
      const mine = sh.state();
      const all = ranks > 1 ? ((await engine.gather!(JSON.stringify(mine)))?.map((t) => JSON.parse(t) as typeof mine) ?? null) : [mine];
      if (!lead || !all) return;
      const state: Omit<TrainState, 'checkpoint' | 'optimizer' | 'time'> & { optimizer: { type: string } } = {
        version: 1, step, epoch, samplesSeen, seed: config.train.seed, config, backend: backendOf(engine), engine: engine.runtime,
        data: dataState(share.world, all),
        optimizer: { type: config.train.optimizer },
      };
      const [weights, optimizer] = [await engine.weights(), await engine.optimizerState()];
      await saveCheckpoint({ runDir, weights, trainingScale, state, optimizer });
      if (val.length) await validate(step);
      await writeReport({ runDir, title: `colorpipe training: ${config.name} (${runDir})` });
    };

    const validate = async (step: number) => {
      await writeValidation({ engine, val, runDir, step, images: config.train.valImages });
    };

    // Several ranks stop after the same step, whichever rank was asked (engine.coordinateStop).
    const stopOf = ranks > 1 && engine.coordinateStop ? engine.coordinateStop(o.stop ?? new AbortController().signal, startStep) : null;
    const p = pipeline(
      source,
      sh,
      batch({ size: config.train.batch, dropLast: true }),
      prefetch<LabBatch>(config.train.prefetch),
      train({
        engine,
        steps: config.train.steps,
        syncAfter: (step) => (val.length > 0 && config.train.valEvery > 0 && step % config.train.valEvery === 0) || (stopOf?.syncAfter(step) ?? false),
        startStep,
        startEpoch: ck?.state.epoch ?? 0,
        checkpointEvery: config.train.checkpointEvery,
        onCheckpoint: checkpoint,
        stop: stopOf ? stopOf.stop : o.stop,
        afterStep: (b, r) => {
          // Acknowledge by position, not by count: samples the batch stage left out between the shuffle and this
          // step (a malformed sample, the short batch at a shape change) leave with the batch that followed them,
          // so the saved pending log never shifts.
          const last = b.positions[b.positions.length - 1];
          if (last) sh.ackThrough(last);
          else sh.ack(b.size);
          samplesSeen += b.size * ranks;
          // Synchronously, before the checkpoint of this step can be written: the key log never lags a checkpoint.
          if (o.logKeys && lead) {
            try {
              appendFileSync(keysPath, JSON.stringify({ step: r.step, keys: b.keys }) + '\n');
            } catch (err) {
              throw withPath(err, keysPath);
            }
          }
          o.onBatch?.(b, r.step);
        },
      }),
      // Between steps, while the train stage waits at its yield: validation and the metrics line of the step.
      validateEvery({ every: val.length ? config.train.valEvery : 0, run: validate }),
      // Rank 0 writes metrics.jsonl (the other ranks pass their records on).
      lead
        ? logMetrics({ path: metricsPath, every: config.train.logEvery, last: config.train.steps, backend: backendOf(engine), engine: engine.runtime, device: engine.device, ranks })
        : (records: AsyncIterable<StepRecord>) => records,
      progress<StepRecord>({
        total: config.train.steps - startStep,
        quiet: o.quiet || !lead,
        label: o.label ?? 'train',
        render: (r) => `step ${r.step} loss ${r.loss.toFixed(4)} ${(r.imgPerS * ranks).toFixed(1)} img/s stall ${(r.dataStall * 100).toFixed(0)}%`,
      }),
      { reporter, signal: o.signal },
    );

    const totals = new RunTotals();
    for await (const r of p) {
      totals.add(r);
      o.onStep?.(r);
      if ((stopOf ? stopOf.stop.aborted : o.stop?.aborted) && r.checkpointed) {
        stopped = true;
        break;
      }
    }
    return {
      steps: startStep + totals.steps,
      runDir,
      lastLoss: totals.lastLoss,
      meanImgPerS: totals.meanImgPerS * ranks,
      meanDataStall: totals.meanDataStall,
      badInputs: reporter.summary(),
      runtime: engine.runtime,
      device: engine.device,
      engine: engine.describe,
      stopped,
    };
  }
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

/** The backend (tfjs) or device (torch) name metrics.jsonl and state.json record as `backend`. */
function backendOf(engine: TrainEngine): string {
  return (engine as { backend?: string }).backend ?? engine.device;
}
