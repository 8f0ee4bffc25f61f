/**
 * `pipe bench train --engine onnx`: the ONNX Runtime training engine (src/onnx/train-engine.ts) against bare
 * PyTorch (bench/torch_model.py, /usr/bin/python3) and the tfjs engine on wasm, on the same network, batch and
 * threads, in alternating rounds of the same run (onnx, torch, tfjs, onnx, ...). Each measurement runs in its own
 * process under GNU time, which gives its peak resident memory.
 *
 *   node dist/bench/train.js --engine onnx [--config FILE | --size S --width W] [--batch B] [--classes K]
 *     [--steps N] [--warmup W] [--rounds R] [--threads T] [--frameworks onnx,torch,tfjs,tfjs1] [--tfjs-steps N]
 *     [--formulation WGRAD,ORDER,DGRAD]
 *
 * Rates are images per second over the steps after the warm-up ones (ONNX Runtime's arena grows during the
 * first two). The best round of each framework is the least disturbed one on a shared machine: ratios are taken
 * from the best rounds, and every round is listed. Prints one JSON object.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir, availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../src/config.js';
import { countParams, layerTable } from '../src/network/table.js';
import type { TrainEngine } from '../src/network/train-engine.js';
import type { Formulation } from '../src/onnx/train-ops.js';
import { syntheticBatch } from '../test/helpers/batches.js';
import { benchConfig, forEachArg, type BenchNetOptions } from './args.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
// tfjs1: tfjs-wasm on 1 thread, the tfjs engine's default (wasm threads wait on shared cores).
type Framework = 'onnx' | 'torch' | 'tfjs' | 'tfjs1';
const FRAMEWORKS: readonly Framework[] = ['onnx', 'torch', 'tfjs', 'tfjs1'];

export interface BenchOnnxOptions extends BenchNetOptions {
  steps?: number;
  tfjsSteps?: number;
  warmup?: number;
  rounds?: number;
  threads?: number;
  frameworks?: Framework[];
  formulation?: Formulation;
}

/** One engine's measurement, in this (child) process: ms per step after the warm-up. */
async function measure(framework: 'onnx' | 'tfjs', config: Config, steps: number, warmup: number, threads: number, formulation?: Formulation) {
  let engine: TrainEngine;
  if (framework === 'onnx') {
    const { onnxTrainEngine } = await import('../src/onnx/train-engine.js');
    engine = await onnxTrainEngine({ config, threads, ...(formulation ? { formulation } : {}) });
  } else {
    const { setupTfjs } = await import('../src/tfjs/backend.js');
    const { tfjsTrainEngine } = await import('../src/tfjs/train-engine.js');
    engine = tfjsTrainEngine(await setupTfjs({ backend: 'wasm', threads }), config);
  }
  const batch = syntheticBatch(7, config.train.batch, config.model.inputSize, config.model.numClasses);
  const losses: number[] = [];
  for (let i = 0; i < warmup; i++) losses.push((await engine.step(batch)).loss);
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) losses.push((await engine.step(batch)).loss);
  const ms = (performance.now() - t0) / steps;
  const describe = engine.describe;
  await engine.release();
  return { ms_per_step: ms, describe, losses: losses.map((l) => +l.toFixed(5)) };
}

/** Runs `argv` under GNU time: its last JSON line and its peak RSS (MiB). */
function timed(argv: string[]): Record<string, unknown> {
  const r = spawnSync('/usr/bin/time', ['-f', 'maxrss_kb=%M', ...argv], { encoding: 'utf8', maxBuffer: 1 << 24, cwd: REPO });
  const rss = /maxrss_kb=(\d+)/.exec(r.stderr ?? '');
  if (r.status !== 0) return { error: (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').filter((l) => !l.startsWith('maxrss_kb=')).slice(-3).join(' ') };
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  return { ...out, peak_rss_mb: rss ? Math.round(Number(rss[1]) / 1024) : null };
}

function round(framework: Framework, config: Config, o: Required<Pick<BenchOnnxOptions, 'steps' | 'warmup' | 'threads'>> & BenchOnnxOptions, dir: string): Record<string, unknown> {
  const B = config.train.batch;
  if (framework === 'torch') {
    const table = join(dir, 'table.json');
    writeFileSync(table, JSON.stringify(layerTable(config.model)));
    const r = timed(['/usr/bin/python3', join(REPO, 'bench', 'torch_model.py'), table, '--batch', String(B), '--steps', String(o.steps), '--warmup', String(o.warmup),
      '--predict-steps', '1', '--threads', String(o.threads), '--lr', String(config.train.lr), '--alpha', String(config.train.alpha)]);
    return 'error' in r ? r : { img_s: r['train_img_s'], ms_per_step: r['train_ms_per_step'], describe: `torch ${String(r['torch'])} cpu, ${String(r['threads'])} threads`, peak_rss_mb: r['peak_rss_mb'] };
  }
  const tfjs = framework === 'tfjs' || framework === 'tfjs1';
  const steps = tfjs ? (o.tfjsSteps ?? o.steps) : o.steps;
  const child = { framework: tfjs ? 'tfjs' : framework, config, steps, warmup: o.warmup, threads: framework === 'tfjs1' ? 1 : o.threads, formulation: o.formulation ?? null };
  const r = timed([process.execPath, fileURLToPath(import.meta.url), '--child', JSON.stringify(child)]);
  return 'error' in r ? r : { img_s: (B * 1000) / (r['ms_per_step'] as number), ...r };
}

export async function benchOnnx(o: BenchOnnxOptions = {}): Promise<Record<string, unknown>> {
  const config = benchConfig(o);
  const opts = { ...o, steps: o.steps ?? 10, warmup: o.warmup ?? 2, threads: o.threads ?? availableParallelism() };
  const frameworks = o.frameworks ?? ['onnx', 'torch', 'tfjs'];
  const rounds = Math.max(1, o.rounds ?? 2);
  const load0 = loadavg()[0]!;
  const dir = mkdtempSync(join(tmpdir(), 'colorpipe-bench-onnx-'));
  const all: Record<string, Array<Record<string, unknown>>> = Object.fromEntries(frameworks.map((f) => [f, []]));
  try {
    for (let r = 0; r < rounds; r++) for (const f of frameworks) all[f]!.push(round(f, config, opts, dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const best: Record<string, Record<string, unknown>> = {};
  for (const f of frameworks) {
    const ok = all[f]!.filter((x) => typeof x['img_s'] === 'number');
    if (!ok.length) {
      best[f] = all[f]![0]!;
      continue;
    }
    const top = ok.reduce((a, b) => ((b['img_s'] as number) > (a['img_s'] as number) ? b : a));
    best[f] = {
      img_s: +(top['img_s'] as number).toFixed(3),
      ms_per_step: Math.round(top['ms_per_step'] as number),
      rounds_img_s: all[f]!.map((x) => (typeof x['img_s'] === 'number' ? +(x['img_s'] as number).toFixed(3) : String(x['error']))),
      peak_rss_mb: Math.max(...ok.map((x) => (x['peak_rss_mb'] as number) ?? 0)),
      describe: top['describe'],
      ...(f !== 'torch' ? { losses: top['losses'] } : {}),
    };
  }
  const rate = (f: Framework) => best[f]?.['img_s'] as number | undefined;
  const ratio = (a: Framework, b: Framework) => (rate(a) && rate(b) ? +(rate(a)! / rate(b)!).toFixed(3) : undefined);
  return {
    config: { size: config.model.inputSize, width: config.model.width, batch: config.train.batch, classes: config.model.numClasses, params: countParams(config.model).total },
    threads: opts.threads,
    steps: opts.steps,
    warmup: opts.warmup,
    rounds,
    ...best,
    ratio: { onnx_vs_torch: ratio('onnx', 'torch'), onnx_vs_tfjs: ratio('onnx', 'tfjs'), onnx_vs_tfjs1: ratio('onnx', 'tfjs1'), torch_vs_tfjs: ratio('torch', 'tfjs') },
    load: [load0, loadavg()[0]!],
  };
}

/** Numeric flags and the options they set. */
const NUMBERS = {
  '--size': 'size', '--width': 'width', '--batch': 'batch', '--classes': 'classes', '--steps': 'steps',
  '--tfjs-steps': 'tfjsSteps', '--warmup': 'warmup', '--rounds': 'rounds', '--threads': 'threads',
} as const;

export function parseOnnxArgs(argv: string[]): BenchOnnxOptions {
  const o: BenchOnnxOptions = {};
  forEachArg(argv, (a, next) => {
    if (a in NUMBERS) o[NUMBERS[a as keyof typeof NUMBERS]] = Number(next());
    else if (a === '--config') o.config = next();
    else if (a === '--frameworks') {
      o.frameworks = next().split(',') as Framework[];
      const bad = o.frameworks.filter((f) => !FRAMEWORKS.includes(f));
      if (bad.length) throw new Error(`--frameworks: ${bad.join(', ')} (known: ${FRAMEWORKS.join(', ')})`);
    }
    else if (a === '--formulation') {
      const [wgrad, order, dgrad] = next().split(',');
      o.formulation = { wgrad, order, dgrad } as Formulation;
    } else if (a === '--engine') next();
    else throw new Error(`unknown option ${a}`);
  });
  return o;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.argv[2] === '--child') {
  const c = JSON.parse(process.argv[3]!) as { framework: 'onnx' | 'tfjs'; config: Config; steps: number; warmup: number; threads: number; formulation: Formulation | null };
  measure(c.framework, c.config, c.steps, c.warmup, c.threads, c.formulation ?? undefined)
    .then((r) => process.stdout.write(JSON.stringify(r) + '\n'))
    .catch((err: unknown) => {
      process.stderr.write(`bench train-onnx: ${(err as Error).message}\n`);
      process.exit(1);
    });
}
