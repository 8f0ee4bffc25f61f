/**
 * `pipe eval`: how good a colorization model is on a folder of colour photos, against two baselines.
 *
 * Every image is colorized from its own L (in memory, through the colorize graph's stages; no file written)
 * and compared with the original:
 * - PSNR over RGB, 20 log10(255 / RMSE) (the figure colorization papers report; an exact copy scores
 *   PSNR_CAP instead of infinity so that means stay finite);
 * - colourfulness (Hasler and Suesstrunk 2003, "Measuring colourfulness in natural images", eq. 2/3):
 *   rg = R - G, yb = (R + G) / 2 - B, M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2).
 * The same figures for the grayscale baseline (ab = 0: the L image) and the constant mean-ab baseline (every
 * pixel gets the mean a and b over all the evaluated originals), and the originals' colourfulness.
 * Means are over images.
 *
 * Bad inputs are reported (path and reason) and left out of the means.
 */
import { Reporter, type OnError } from '../core/errors.js';
import { pipeline } from '../core/pipeline.js';
import { rgbToLab } from '../color/lab.js';
import { composeRgb } from '../color/compose.js';
import { decodeSample, decodeSettings } from '../stages/decode.js';
import { listImageFiles } from '../stages/files.js';
import { promises as fsp } from 'node:fs';
import { lightness } from '../color/lightness.js';
import type { Resolution } from './image.js';
import type { BackendChoice, TfjsBackend } from '../tfjs/backend.js';
import type { ColorizeModel, Runtime } from './runner.js';
import type { OnnxDevice } from '../onnx/session.js';
import { colorizeStream } from './graph.js';
import { colourfulness, psnr } from '../color/metrics.js';

export interface Figures {
  /** Mean PSNR (dB) against the originals. */
  psnr: number;
  /** Mean colourfulness. */
  colourfulness: number;
}

export interface EvalSummary {
  images: number;
  failed: number;
  model: Figures;
  grayscale: Figures;
  meanAb: Figures & { a: number; b: number };
  original: { colourfulness: number };
  backend: string;
  seconds: number;
}

export interface EvaluateFolderOptions {
  /** A directory (recursive), a glob or one file of colour photos. */
  input: string;
  /** The model: a run directory, a model directory, a model.json, or a loaded model. */
  model: ColorizeModel;
  resolution?: Resolution;
  batch?: number;
  /** As colorize's: 'auto' (ONNX Runtime when it loads), 'onnx' or 'tfjs'; `device` for ONNX Runtime. */
  runtime?: Runtime;
  device?: OnnxDevice;
  backend?: BackendChoice;
  tfjsBackend?: TfjsBackend;
  onError?: OnError;
  /** Where bad-input lines go (default stderr; null: nowhere). */
  log?: ((line: string) => void) | null;
  signal?: AbortSignal;
  /** Called per image with its figures (for progress and reports). */
  onImage?: (r: { name: string; psnr: number; psnrGray: number; colourfulness: number }) => void;
}

/**
 * Evaluates a model on a folder (see the module comment). Two passes over the folder: the first colorizes
 * and measures the model and grayscale figures and the mean ab; the second decodes again for the mean-ab
 * baseline (nothing is held in memory between them but the sums).
 * @throws InvalidOptionError for a missing input or a wrong option; the engine's errors.
 */
export async function evaluateFolder(o: EvaluateFolderOptions): Promise<EvalSummary> {
  const t0 = performance.now();
  const reporter = new Reporter({ onError: o.onError ?? 'skip', log: o.log === undefined ? undefined : o.log });
  let n = 0;
  let sumPsnr = 0, sumCol = 0, sumGrayPsnr = 0, sumGrayCol = 0, sumOrigCol = 0;
  let sumA = 0, sumB = 0, px = 0;
  const stream = await colorizeStream({
    input: o.input,
    model: o.model,
    resolution: o.resolution,
    batch: o.batch,
    backend: o.backend,
    tfjsBackend: o.tfjsBackend,
    runtime: o.runtime,
    device: o.device,
    reporter,
    signal: o.signal,
    keepRgb: true,
    encode: false,
  });
  for await (const r of stream.results) {
    const src = r.source!;
    const orig = src.rgb!;
    const out = r.rgb!;
    const gray = composeRgb(src.L, src.width, src.height, new Float32Array(2).fill(128 / 255), 1, 1);
    const p = psnr(out, orig);
    const pg = psnr(gray, orig);
    const c = colourfulness(out);
    sumPsnr += p;
    sumGrayPsnr += pg;
    sumCol += c;
    sumGrayCol += colourfulness(gray);
    sumOrigCol += colourfulness(orig);
    const lab = rgbToLab(orig);
    for (let j = 0; j < lab.length; j += 3) {
      sumA += lab[j + 1]!;
      sumB += lab[j + 2]!;
    }
    px += orig.length / 3;
    n++;
    o.onImage?.({ name: r.relPath ?? r.key, psnr: p, psnrGray: pg, colourfulness: c });
  }
  const meanA = px ? sumA / px : 0;
  const meanB = px ? sumB / px : 0;

  // Second pass: the constant mean-ab image of each original.
  let sumMeanPsnr = 0, sumMeanCol = 0, m = 0;
  const abConst = Float32Array.of((meanA + 128) / 255, (meanB + 128) / 255);
  const settings = { ...decodeSettings({ mode: 'infer', minSide: 1, concurrency: 1 }) };
  const quiet = new Reporter({ log: null });
  const files = await listImageFiles(o.input);
  const p2 = pipeline(files, { reporter: quiet, signal: o.signal });
  for await (const f of p2) {
    let img;
    try {
      const bytes = await fsp.readFile(f.abs);
      img = await decodeSample({ key: f.relPath, url: f.abs, relPath: f.relPath, image: bytes, fields: {} }, settings);
    } catch {
      continue; // reported in the first pass
    }
    const L = lightness(img.rgb);
    const mean = composeRgb(L, img.width, img.height, abConst, 1, 1);
    sumMeanPsnr += psnr(mean, img.rgb);
    sumMeanCol += colourfulness(mean);
    m++;
  }
  const avg = (s: number, k: number) => (k ? s / k : NaN);
  return {
    images: n,
    failed: reporter.total,
    model: { psnr: avg(sumPsnr, n), colourfulness: avg(sumCol, n) },
    grayscale: { psnr: avg(sumGrayPsnr, n), colourfulness: avg(sumGrayCol, n) },
    meanAb: { psnr: avg(sumMeanPsnr, m), colourfulness: avg(sumMeanCol, m), a: meanA, b: meanB },
    original: { colourfulness: avg(sumOrigCol, n) },
    backend: stream.backend,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** The summary as a small table (what `pipe eval` prints). */
export function formatEvalTable(s: EvalSummary): string {
  const f = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '-').padStart(10);
  const rows = [
    `${'image'.padEnd(22)}${'PSNR (dB)'.padStart(10)}${'colourful'.padStart(10)}`,
    `${'model'.padEnd(22)}${f(s.model.psnr)}${f(s.model.colourfulness)}`,
    `${'grayscale (ab = 0)'.padEnd(22)}${f(s.grayscale.psnr)}${f(s.grayscale.colourfulness)}`,
    `${'mean ab'.padEnd(22)}${f(s.meanAb.psnr)}${f(s.meanAb.colourfulness)}`,
    `${'original'.padEnd(22)}${'-'.padStart(10)}${f(s.original.colourfulness)}`,
  ];
  return `${rows.join('\n')}\n${s.images} images${s.failed ? `, ${s.failed} failed` : ''}, mean ab = (${s.meanAb.a.toFixed(2)}, ${s.meanAb.b.toFixed(2)}), ${s.backend}, ${s.seconds.toFixed(1)} s`;
}
