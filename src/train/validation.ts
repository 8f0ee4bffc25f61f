/**
 * Validation during training: a small set held in memory (decoded once, deterministic crops, no flip), and
 * its loss and PSNR under the current weights, written to metrics.jsonl as `{type: "val", step, loss, psnr,
 * psnr_gray}` with a grid of (gray | prediction | original) images in samples/. It runs at every checkpoint
 * and, when config.train.valEvery > 0, every valEvery steps (validateEvery).
 *
 * Validation never changes training: its set comes from its own loader (another seed when it is read from
 * the training shards, in this process, before training starts), it draws on no training RNG, and the model
 * predicts in inference mode (no weight, optimizer or batch-norm statistic changes). A run with valEvery
 * trains on the same batches to the same weights as one without (tested).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { Reporter } from '../core/errors.js';
import { pipeline, type Stage } from '../core/pipeline.js';
import { nonNegativeInt } from '../core/validate.js';
import { withPath, writeFileAtomic } from '../core/atomic.js';
import type { LabBatch, LabSample } from '../types.js';
import { batch } from '../stages/batch.js';
import { composeRgb } from '../color/compose.js';
import { mergeLab } from '../color/lab.js';
import { psnr } from '../color/metrics.js';
import { loader } from './loader/index.js';
import { makeGrid, type RgbImage } from './report.js';
import type { StepRecord } from './step.js';
import type { TrainEngine } from '../network/train-engine.js';

/** Validation samples when --val-shards is given (from the training shards: config.train.valImages). */
export const VAL_MAX = 32;

/** Up to VAL_MAX validation samples (deterministic crops at the nominal scale, no flip or scale jitter), in batches. */
export async function loadValidation(urls: string[], config: Config, fromTraining: boolean): Promise<LabBatch[]> {
  const valConfig: Config = { ...config, augment: { ...config.augment, flip: false, scaleJitter: null } };
  const reporter = new Reporter({ log: null });
  const samples: LabSample[] = [];
  const src = loader({ urls, config: valConfig, seed: config.train.seed + (fromTraining ? 1 : 0), processes: 0, epochs: 1 });
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

export interface ValidationResult {
  /** Mean loss (mse + alpha * ce) per image. */
  loss: number;
  /** Mean PSNR (dB, RGB) of the predictions and of the grayscale images (ab = 0) against the originals. */
  psnr: number;
  psnrGray: number;
  triplets: RgbImage[][];
}

/**
 * Loss and PSNR of the engine's model on batches at training size, and (gray | prediction | original) triplets.
 * The prediction joins the batch's L with the predicted ab upsampled as colorize does it (composeRgb).
 */
export async function evaluateBatches(engine: Pick<TrainEngine, 'evaluate'>, batches: LabBatch[]): Promise<ValidationResult> {
  let lossSum = 0, psnrSum = 0, grayPsnrSum = 0, n = 0;
  const triplets: RgbImage[][] = [];
  for (const b of batches) {
    const { height: h, width: w, size } = b;
    const e = await engine.evaluate(b);
    lossSum += e.loss * size;
    const px = h * w;
    const abPx = (h / 2) * (w / 2) * 2;
    for (let i = 0; i < size; i++) {
      const L = b.L.subarray(i * px, (i + 1) * px);
      const pred = composeRgb(L, w, h, e.ab.subarray(i * abPx, (i + 1) * abPx), w / 2, h / 2);
      const orig = mergeLab(L, b.ab.subarray(i * px * 2, (i + 1) * px * 2));
      const gray = mergeLab(L, new Float32Array(px * 2).fill(128 / 255));
      psnrSum += psnr(pred, orig);
      grayPsnrSum += psnr(gray, orig);
      n++;
      triplets.push([{ width: w, height: h, rgb: gray }, { width: w, height: h, rgb: pred }, { width: w, height: h, rgb: orig }]);
    }
  }
  return { loss: n ? lossSum / n : NaN, psnr: n ? psnrSum / n : NaN, psnrGray: n ? grayPsnrSum / n : NaN, triplets };
}

export interface WriteValidationOptions {
  engine: Pick<TrainEngine, 'evaluate'>;
  val: LabBatch[];
  runDir: string;
  step: number;
  /** Rows of the image grid (config.train.valImages). */
  images: number;
}

/** Evaluates the validation set; appends its line to metrics.jsonl and writes samples/step-NNNNNNNN.png. */
export async function writeValidation(o: WriteValidationOptions): Promise<ValidationResult> {
  const r = await evaluateBatches(o.engine, o.val);
  const metrics = join(o.runDir, 'metrics.jsonl');
  await fsp.appendFile(metrics, JSON.stringify({ type: 'val', step: o.step, loss: r.loss, psnr: r.psnr, psnr_gray: r.psnrGray }) + '\n').catch((err: unknown) => {
    throw withPath(err, metrics);
  });
  const grid = await makeGrid(r.triplets.slice(0, o.images));
  await writeFileAtomic(join(o.runDir, 'samples', `step-${String(o.step).padStart(8, '0')}.png`), grid);
  return r;
}

export interface ValidateEveryOptions {
  /** Steps between validations; 0 = none (checkpoints validate on their own). */
  every: number;
  /** Validates at `step`. */
  run: (step: number) => Promise<void>;
}

/**
 * A pass-through stage after `train`: every `every` steps, before the step's record goes on, awaits
 * run(step), except at a checkpointed step (the checkpoint has validated already). With every = 0 it passes
 * records through and calls nothing.
 * @throws InvalidOptionError at once for a bad `every`; run's errors surface at the consumer's next await.
 */
export function validateEvery(options: ValidateEveryOptions): Stage<StepRecord, StepRecord> {
  const every = nonNegativeInt(options.every, 'options.every');
  const { run } = options;
  return async function* validateStage(source) {
    for await (const r of source) {
      if (every > 0 && r.step % every === 0 && !r.checkpointed) await run(r.step);
      yield r;
    }
  };
}
