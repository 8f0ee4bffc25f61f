/**
 * What metrics.jsonl says about training steps: one line per logged step with the means over the steps since
 * the previous line (loss, mse, ce) and the window's throughput and data-stall fraction computed from its
 * summed times, not as a mean of per-step ratios (a slow step weighs by its time). Validation lines
 * (`type: "val"`) are written by validation.ts.
 */
import { promises as fsp } from 'node:fs';
import type { Stage } from '../core/pipeline.js';
import { withPath } from '../core/atomic.js';
import { positiveInt, string } from '../core/validate.js';
import type { StepRecord } from './step.js';

/** One logged step of metrics.jsonl. */
export interface MetricsLine {
  step: number;
  epoch: number;
  loss: number;
  mse: number;
  ce: number;
  img_per_s: number;
  data_stall: number;
  backend: string;
  /** The training engine (tfjs, torch, onnx) and its device (cpu, webgpu, cuda). */
  engine: string;
  device: string;
  /** Data parallel: the ranks and the global batch (img_per_s counts every rank's images). */
  ranks?: number;
  global_batch?: number;
}

/** The steps since the last logged line. */
export class MetricWindow {
  private wait = 0;
  private compute = 0;
  private imgs = 0;
  private loss = 0;
  private mse = 0;
  private ce = 0;
  private steps = 0;

  add(r: StepRecord): void {
    this.wait += r.waitMs;
    this.compute += r.computeMs;
    this.imgs += r.batchSize;
    this.loss += r.loss;
    this.mse += r.mse;
    this.ce += r.ce;
    this.steps++;
  }

  /** The line for the window ending at `r` (added already), and a fresh window. */
  take(r: StepRecord, engine: { backend: string; engine: string; device: string; ranks?: number }): MetricsLine {
    const ranks = engine.ranks ?? 1;
    const line: MetricsLine = {
      step: r.step,
      epoch: r.epoch,
      loss: this.loss / this.steps,
      mse: this.mse / this.steps,
      ce: this.ce / this.steps,
      img_per_s: (this.imgs * ranks * 1000) / Math.max(1e-6, this.wait + this.compute),
      data_stall: this.wait / Math.max(1e-6, this.wait + this.compute),
      backend: engine.backend,
      engine: engine.engine,
      device: engine.device,
      ...(ranks > 1 ? { ranks, global_batch: r.batchSize * ranks } : {}),
    };
    this.wait = this.compute = this.imgs = this.loss = this.mse = this.ce = this.steps = 0;
    return line;
  }
}

export interface MetricsOptions {
  /** metrics.jsonl (appended to). */
  path: string;
  /** Log every N steps (config.train.logEvery). */
  every: number;
  /** The run's last step, always logged. */
  last: number;
  backend: string;
  engine: string;
  device: string;
  /** Ranks of a data-parallel run (default 1): throughput counts them all. */
  ranks?: number;
}

/**
 * A pass-through stage after `train`: appends a MetricsLine every `every` steps, at checkpointed steps (so the
 * log never lags a checkpoint it could be truncated to) and at the last step, before passing the record on.
 * @throws InvalidOptionError at once for a bad option; a failed append surfaces at the consumer's next await,
 *   naming `path`.
 */
export function logMetrics(options: MetricsOptions): Stage<StepRecord, StepRecord> {
  const path = string(options.path, 'options.path');
  const every = positiveInt(options.every, 'options.every');
  const last = positiveInt(options.last, 'options.last');
  const { backend, engine, device } = options;
  const ranks = options.ranks ?? 1;
  return async function* metrics(source) {
    const window = new MetricWindow();
    for await (const r of source) {
      window.add(r);
      if (r.step % every === 0 || r.checkpointed || r.step === last) {
        // A write's ENOSPC names no file: this one names metrics.jsonl.
        await fsp.appendFile(path, JSON.stringify(window.take(r, { backend, engine, device, ranks })) + '\n').catch((err: unknown) => {
          throw withPath(err, path);
        });
      }
      yield r;
    }
  };
}

/** Whole-run figures for TrainResult: the last loss and per-step means of throughput and data stall. */
export class RunTotals {
  steps = 0;
  lastLoss = NaN;
  private img = 0;
  private stall = 0;

  add(r: StepRecord): void {
    this.steps++;
    this.img += r.imgPerS;
    this.stall += r.dataStall;
    this.lastLoss = r.loss;
  }

  get meanImgPerS(): number {
    return this.steps ? this.img / this.steps : 0;
  }

  get meanDataStall(): number {
    return this.steps ? this.stall / this.steps : 0;
  }
}
