/**
 * `pipe bench predict`: inference throughput (images/s) of the same network on three engines in one run:
 * ONNX Runtime CPU (this project's export, model/onnx), tfjs on wasm (the fallback engine) and PyTorch CPU
 * (bench/torch_model.py --predict-only, the same layer table and TF padding). Every engine runs the inference
 * graph colorize runs: local L and global L at S x S, the low-level features computed for each.
 *
 *   node dist/bench/predict.js                         (paper 224 batch 8 and tiny 64 px width 0.25 batch 8)
 *   node dist/bench/predict.js --rounds 3 --steps 4 --variants
 *
 * Rounds alternate the engines (ORT, tfjs, torch, ORT, ...) and each engine's best round is reported, so a
 * burst of other work on a shared machine does not decide a ratio; every round is kept in `rounds`.
 * `--variants` also times ONNX Runtime's knobs on the paper network: intra-op threads 1 vs all, graph
 * optimization basic vs all, fusion concat vs split (graph.ts). Prints one JSON object.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os, { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../src/config.js';
import { setupTfjs } from '../src/tfjs/backend.js';
import { buildColorizer, disposeColorizer, predictAb, type Colorizer, exportSourceOf } from '../src/tfjs/network.js';
import { layerTable } from '../src/network/table.js';
import { exportOnnx, type ExportOptions } from '../src/onnx/export.js';
import { loadOnnxColorizer, type OnnxEngineOptions } from '../src/onnx/session.js';
import { forEachArg } from './args.js';

/** `stepsScale`: the tiny net's batches take milliseconds, so it times more of them. */
interface Case { name: string; model: ModelConfig; batch: number; stepsScale: number }
const CASES: Case[] = [
  { name: 'paper_224', model: { inputSize: 224, width: 1, numClasses: 205 }, batch: 8, stepsScale: 1 },
  { name: 'tiny_64', model: { inputSize: 64, width: 0.25, numClasses: 0 }, batch: 8, stepsScale: 10 },
];

export interface BenchPredictOptions { rounds?: number; steps?: number; warmup?: number; variants?: boolean; python?: string; only?: string }

function input(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = 0.5 + 0.5 * Math.sin(i * 0.013 + seed);
  return a;
}

async function timeSteps(steps: number, warmup: number, batch: number, fn: () => Promise<void>): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await fn();
  return (batch * steps) / ((performance.now() - t0) / 1000);
}

async function onnxRate(c: Colorizer, b: number, o: Required<Pick<BenchPredictOptions, 'steps' | 'warmup'>>, exp: ExportOptions = {}, eng: OnnxEngineOptions = {}): Promise<number> {
  const S = c.config.inputSize;
  const m = await loadOnnxColorizer(exportOnnx(await exportSourceOf(c), exp), { device: 'cpu', ...eng });
  const local = input(b * S * S, 1);
  const global = input(b * S * S, 2);
  try {
    return await timeSteps(o.steps, o.warmup, b, async () => void (await m.predict({ local, global, batch: b, height: S, width: S })));
  } finally {
    await m.release();
  }
}

async function tfjsRate(c: Colorizer, b: number, o: Required<Pick<BenchPredictOptions, 'steps' | 'warmup'>>): Promise<number> {
  const S = c.config.inputSize;
  const local = input(b * S * S, 1);
  const global = input(b * S * S, 2);
  return timeSteps(o.steps, o.warmup, b, async () => {
    const l = tf.tensor4d(local, [b, S, S, 1]);
    const g = tf.tensor4d(global, [b, S, S, 1]);
    const { ab, logits } = predictAb(c, l, g);
    await ab.data();
    tf.dispose([l, g, ab, ...(logits ? [logits] : [])]);
  });
}

function torchRate(python: string, model: ModelConfig, b: number, o: Required<Pick<BenchPredictOptions, 'steps' | 'warmup'>>): number | { error: string } {
  const dir = mkdtempSync(join(tmpdir(), 'colorpipe-bench-'));
  try {
    const table = join(dir, 'table.json');
    writeFileSync(table, JSON.stringify(layerTable(model)));
    const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'torch_model.py');
    const r = spawnSync(python, [script, table, '--predict-only', '--batch', String(b), '--predict-steps', String(o.steps), '--warmup', String(o.warmup), '--threads', String(os.availableParallelism())], { encoding: 'utf8' });
    if (r.status !== 0) return { error: (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-2).join(' ') };
    return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { predict_img_s: number }).predict_img_s;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const round3 = (x: number) => +x.toFixed(3);

export async function benchPredict(opts: BenchPredictOptions = {}): Promise<Record<string, unknown>> {
  const base = { steps: opts.steps ?? 3, warmup: opts.warmup ?? 1 };
  const rounds = opts.rounds ?? 2;
  const python = opts.python ?? '/usr/bin/python3';
  const cores = os.availableParallelism();
  const engine = await setupTfjs({ backend: 'wasm', threads: cores });
  const result: Record<string, unknown> = {
    bench: 'predict', cores, load: [loadavg()[0]], tfjs: engine.describe, steps: base.steps, warmup: base.warmup,
  };
  for (const k of CASES.filter((k) => !opts.only || k.name === opts.only)) {
    const c = buildColorizer(k.model, { seed: 1 });
    const o = { steps: base.steps * k.stepsScale, warmup: base.warmup };
    const all: { onnx: number[]; tfjs: number[]; torch: (number | { error: string })[] } = { onnx: [], tfjs: [], torch: [] };
    for (let r = 0; r < rounds; r++) {
      all.onnx.push(await onnxRate(c, k.batch, o));
      all.tfjs.push(await tfjsRate(c, k.batch, o));
      all.torch.push(torchRate(python, k.model, k.batch, o));
    }
    const best = (xs: (number | { error: string })[]) => Math.max(...xs.filter((x): x is number => typeof x === 'number'), 0);
    const [onnx, tfjsR, torch] = [best(all.onnx), best(all.tfjs), best(all.torch)];
    const entry: Record<string, unknown> = {
      model: k.model, batch: k.batch,
      img_s: { onnx_cpu: round3(onnx), tfjs_wasm: round3(tfjsR), torch_cpu: torch ? round3(torch) : all.torch.find((x) => typeof x !== 'number') },
      ratio: { onnx_over_torch: torch ? round3(onnx / torch) : null, onnx_over_tfjs: round3(onnx / tfjsR) },
      rounds: { onnx: all.onnx.map(round3), tfjs: all.tfjs.map(round3), torch: all.torch.map((x) => (typeof x === 'number' ? round3(x) : x)) },
    };
    if (opts.variants && k.name === 'paper_224') {
      const v: Record<string, number> = {};
      v['threads_1'] = round3(await onnxRate(c, k.batch, o, {}, { threads: 1 }));
      v[`threads_${cores}`] = round3(await onnxRate(c, k.batch, o));
      v['optimization_basic'] = round3(await onnxRate(c, k.batch, o, {}, { graphOptimization: 'basic' }));
      v['optimization_disabled'] = round3(await onnxRate(c, k.batch, o, {}, { graphOptimization: 'disabled' }));
      v['fusion_concat'] = round3(await onnxRate(c, k.batch, o, { fusion: 'concat' }));
      entry['onnx_variants_img_s'] = v;
    }
    result[k.name] = entry;
    disposeColorizer(c);
  }
  (result.load as number[]).push(loadavg()[0]!);
  return result;
}

function parseArgs(argv: string[]): BenchPredictOptions {
  const o: BenchPredictOptions = {};
  forEachArg(argv, (a, next) => {
    switch (a) {
      case '--rounds': o.rounds = Number(next()); break;
      case '--steps': o.steps = Number(next()); break;
      case '--warmup': o.warmup = Number(next()); break;
      case '--variants': o.variants = true; break;
      case '--python': o.python = next(); break;
      case '--only': o.only = next(); break;
      default: throw new Error(`unknown option ${a} (--rounds N --steps N --warmup N --variants --python PATH --only paper_224|tiny_64)`);
    }
  });
  return o;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  benchPredict(parseArgs(process.argv.slice(2))).then(
    (r) => {
      process.stdout.write(JSON.stringify(r) + '\n');
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`bench predict: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
