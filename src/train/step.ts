/**
 * The training stage: the pipeline's last stage, the only one that touches the engine. It pulls batches
 * (prefetched upstream, so while the engine computes step k the loader prepares the next ones), runs one
 * optimizer step per batch, and yields one record per step with the time it waited for data and the time the
 * engine computed. The data-stall fraction (wait / (wait + compute)) is a first-class metric.
 *
 * Checkpointing is a callback (`onCheckpoint`) called between steps, every `checkpointEvery` steps, at the
 * end, and when `stop` aborts (Ctrl-C): the graph that owns the loader state decides what a checkpoint holds.
 * Errors from the engine surface at the consumer's next await; a failed step is not counted.
 */
import type { Stage } from '../core/pipeline.js';
import type { LabBatch } from '../types.js';
import { nonNegativeInt, positiveInt } from '../core/validate.js';

/** What the stage needs of a trainer (src/model/trainer.ts provides it). */
export interface StepTrainer {
  step(batch: LabBatch): Promise<{ loss: number; mse: number; ce: number }>;
}

export interface StepRecord {
  step: number;
  epoch: number;
  loss: number;
  mse: number;
  ce: number;
  batchSize: number;
  /** Time spent waiting for this batch, ms. */
  waitMs: number;
  /** Time the engine spent on this step, ms. */
  computeMs: number;
  /** Images per second over this step (wait + compute). */
  imgPerS: number;
  /** wait / (wait + compute) over this step. */
  dataStall: number;
  /** True when a checkpoint was written after this step. */
  checkpointed: boolean;
}

export interface TrainStageOptions {
  trainer: StepTrainer;
  /** Total steps of the run (the stage stops after step `steps`). */
  steps: number;
  /** The step already done (resume); the first step of this run is startStep + 1. */
  startStep?: number;
  /** The epoch reached before (resume). */
  startEpoch?: number;
  checkpointEvery: number;
  /** Called after step `step` when a checkpoint is due; the stage waits for it. */
  onCheckpoint?: (step: number, epoch: number) => Promise<void>;
  /** Called after each step, before the record is yielded (e.g. to ack consumed samples). */
  afterStep?: (batch: LabBatch, record: StepRecord) => void;
  /** Aborting it stops cleanly after the current step, with a checkpoint (SIGINT). */
  stop?: AbortSignal;
}

export function train(options: TrainStageOptions): Stage<LabBatch, StepRecord> {
  const { trainer, steps, checkpointEvery, onCheckpoint, afterStep, stop } = options;
  positiveInt(steps, 'options.steps');
  positiveInt(checkpointEvery, 'options.checkpointEvery');
  const startStep = nonNegativeInt(options.startStep ?? 0, 'options.startStep');
  return async function* trainStage(source, ctx) {
    let step = startStep;
    let epoch = options.startEpoch ?? 0;
    if (step >= steps) return;
    const it = source[Symbol.asyncIterator]();
    try {
      while (step < steps && !ctx.signal.aborted) {
        const t0 = performance.now();
        const r = await it.next();
        if (r.done) break;
        const batch = r.value;
        const t1 = performance.now();
        const { loss, mse, ce } = await trainer.step(batch);
        const t2 = performance.now();
        step++;
        // The shuffle buffer mixes neighbouring epochs: the run's epoch is the newest one seen.
        for (const p of batch.positions) if (p && p.epoch > epoch) epoch = p.epoch;
        const waitMs = t1 - t0;
        const computeMs = t2 - t1;
        const record: StepRecord = {
          step, epoch, loss, mse, ce, batchSize: batch.size, waitMs, computeMs,
          imgPerS: (batch.size * 1000) / Math.max(1e-6, waitMs + computeMs),
          dataStall: waitMs / Math.max(1e-6, waitMs + computeMs),
          checkpointed: false,
        };
        afterStep?.(batch, record);
        const stopping = stop?.aborted ?? false;
        const due = step % checkpointEvery === 0 || step === steps || stopping;
        if (due && onCheckpoint) {
          await onCheckpoint(step, epoch);
          record.checkpointed = true;
        }
        yield record;
        if (stopping) break;
      }
    } finally {
      await it.return?.();
    }
  };
}
