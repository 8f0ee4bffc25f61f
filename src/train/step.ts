/**
 * The training stage: the pipeline's last stage, the only one that touches the engine. It pulls batches
 * (prefetched upstream, so while the engine computes step k the loader prepares the next ones), runs one
 * optimizer step per batch, and yields one record per step with the time it waited for data and the time it
 * waited for the engine. The data-stall fraction (wait / (wait + compute)) is a first-class metric.
 *
 * An engine of depth d > 1 (one in another process, src/torch/) is handed up to d batches before the first of
 * them is back, so it never waits for this thread between steps. Nothing is in flight after a step whose
 * weights are read: a checkpoint (every `checkpointEvery` steps, at the end, after `stop` aborts) or a step
 * `syncAfter` names (validation).
 *
 * Checkpointing is a callback (`onCheckpoint`) called between steps: the graph that owns the loader state
 * decides what a checkpoint holds. Errors from the engine surface at the consumer's next await; a failed step
 * is not counted; steps in flight are awaited before the stage returns.
 */
import type { Stage } from '../core/pipeline.js';
import type { LabBatch } from '../types.js';
import { nonNegativeInt, positiveInt } from '../core/validate.js';
import type { StepLosses, TrainEngine } from '../network/train-engine.js';

export interface StepRecord {
  step: number;
  epoch: number;
  loss: number;
  mse: number;
  ce: number;
  batchSize: number;
  /** Time spent waiting for this batch while the engine had nothing to do (with depth 2, a wait during the previous
   *  step costs nothing), ms. */
  waitMs: number;
  /** Time the engine spent on this step (not counting an overlapping previous step), ms. */
  computeMs: number;
  /** Images per second over this step (wait + compute). */
  imgPerS: number;
  /** wait / (wait + compute) over this step. */
  dataStall: number;
  /** True when a checkpoint was written after this step. */
  checkpointed: boolean;
}

export interface TrainStageOptions {
  /** The engine (only `step` and `depth` are used here; depth defaults to 1). */
  engine: Pick<TrainEngine, 'step'> & Partial<Pick<TrainEngine, 'depth'>>;
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
  /** Aborting it stops cleanly after the steps in flight, with a checkpoint (SIGINT). */
  stop?: AbortSignal;
  /** Steps after which no later step may be in flight besides checkpoints (their weights are read: validation). */
  syncAfter?: (step: number) => boolean;
}

export function train(options: TrainStageOptions): Stage<LabBatch, StepRecord> {
  const { engine, steps, checkpointEvery, onCheckpoint, afterStep, stop, syncAfter } = options;
  positiveInt(steps, 'options.steps');
  positiveInt(checkpointEvery, 'options.checkpointEvery');
  const depth = positiveInt(engine.depth ?? 1, 'options.engine.depth');
  const startStep = nonNegativeInt(options.startStep ?? 0, 'options.startStep');
  /** Whether step s ends with nothing in flight after it. */
  const barrier = (s: number) => s % checkpointEvery === 0 || s >= steps || (syncAfter?.(s) ?? false) || (stop?.aborted ?? false);
  return async function* trainStage(source, ctx) {
    let step = startStep;
    let epoch = options.startEpoch ?? 0;
    if (step >= steps) return;
    const it = source[Symbol.asyncIterator]();
    // Per step: when its batch was waited for, when the engine was handed it, and when the engine finished it
    // (recorded as it happens: an engine that computes inside step() itself, as tfjs does, finishes before it is awaited).
    const inflight: Array<{ batch: LabBatch; waitStart: number; waitEnd: number; submitted: number; done: { at: number }; result: Promise<StepLosses> }> = [];
    let sourceDone = false;
    // When the engine finished the previous step: it was idle from then until it was handed the next batch.
    let lastDone = -Infinity;
    try {
      for (;;) {
        // Hand the engine batches until it holds `depth`, stopping after a barrier step.
        while (!sourceDone && !ctx.signal.aborted && inflight.length < depth && step + inflight.length < steps) {
          if (inflight.length > 0 && barrier(step + inflight.length)) break;
          const waitStart = performance.now();
          const r = await it.next();
          if (r.done) {
            sourceDone = true;
            break;
          }
          const waitEnd = performance.now();
          const done = { at: NaN };
          const result = engine.step(r.value);
          // Settled before it is awaited when an earlier step fails: never an unhandled rejection.
          result.then(() => (done.at = performance.now()), () => undefined);
          inflight.push({ batch: r.value, waitStart, waitEnd, submitted: waitEnd, done, result });
        }
        const head = inflight.shift();
        if (!head) break;
        const { loss, mse, ce } = await head.result;
        const finished = Number.isNaN(head.done.at) ? performance.now() : head.done.at;
        // The engine's time on this step, not counting the previous step's (depth 2 overlaps them), and the part of
        // the wait for this batch during which the engine had nothing to do: the data stall.
        const computeMs = finished - Math.max(head.submitted, lastDone);
        const waitMs = Math.max(0, head.waitEnd - Math.max(head.waitStart, lastDone));
        lastDone = finished;
        const batch = head.batch;
        step++;
        // The shuffle buffer mixes neighbouring epochs: the run's epoch is the newest one seen.
        for (const p of batch.positions) if (p && p.epoch > epoch) epoch = p.epoch;
        const record: StepRecord = {
          step, epoch, loss, mse, ce, batchSize: batch.size, waitMs, computeMs,
          imgPerS: (batch.size * 1000) / Math.max(1e-6, waitMs + computeMs),
          dataStall: waitMs / Math.max(1e-6, waitMs + computeMs),
          checkpointed: false,
        };
        afterStep?.(batch, record);
        // Stopping: after the steps in flight, so the checkpoint holds the weights of the step it names.
        const stopping = (stop?.aborted ?? false) && inflight.length === 0;
        const due = step % checkpointEvery === 0 || step === steps || stopping;
        if (due && onCheckpoint) {
          await onCheckpoint(step, epoch);
          record.checkpointed = true;
        }
        yield record;
        if (stopping || (ctx.signal.aborted && inflight.length === 0)) break;
      }
    } finally {
      // After an abort the engine may never answer (another rank is gone): its release ends the steps in flight.
      if (!ctx.signal.aborted) await Promise.allSettled(inflight.map((f) => f.result));
      await it.return?.();
    }
  };
}
