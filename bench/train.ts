/**
 * `pipe bench train` core: training and prediction throughput of the colorization network on one engine,
 * against the same network in PyTorch (bench/torch_model.py) in the same run when /usr/bin/python3 has torch.
 *
 *   node dist/bench/train.js --config configs/tiny.json --size 64 --width 0.25 --batch 8 --backend wasm
 *   node dist/bench/train.js --size 224 --width 1 --batch 8 --classes 205 --steps 3 --warmup 1
 *
 * Prints one JSON object. Warm-up steps are excluded from every rate. With `--engine torch`: the PyTorch engine's
 * whole pipeline against bare PyTorch instead (bench/train-torch.ts); with `--engine onnx`: the ONNX Runtime engine
 * against bare PyTorch and tfjs-wasm (bench/train-onnx.ts). `--profile` adds the per-kernel time of
 * one training step (tf.profile), sorted, which is where the engine spends its time.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../src/config.js';
import { setupTfjs, type BackendChoice } from '../src/tfjs/backend.js';
import { buildColorizer, disposeColorizer } from '../src/tfjs/network.js';
import { countParams, layerTable } from '../src/network/table.js';
import { createTrainer } from '../src/tfjs/trainer.js';
import { wasmHeapBytes } from '../src/tfjs/memory.js';
import type { LabBatch } from '../src/types.js';
import { benchConfig, forEachArg } from './args.js';

export interface BenchTrainOptions {
  /** A config file (configs/*.json); default: tiny net of the issue (64px, width 1/4, no classes). */
  config?: string;
  size?: number;
  width?: number;
  batch?: number;
  /** Overrides the config's numClasses. */
  classes?: number;
  backend?: BackendChoice;
  threads?: number;
  /** Timed training steps (default 20) and predict batches (default: same). */
  steps?: number;
  predictSteps?: number;
  warmup?: number;
  /** Run the PyTorch baseline: true, false, or 'auto' (when /usr/bin/python3 imports torch). Default 'auto'. */
  torch?: boolean | 'auto';
  python?: string;
  /** Per-kernel breakdown of one training step. */
  profile?: boolean;
  /**
   * Measurement rounds, tfjs and torch alternating (default 1). On a machine shared with other work the best
   * round of each is the least disturbed one: rates and ratio are reported from the best rounds.
   */
  rounds?: number;
}

export interface KernelTime {
  kernel: string;
  ms: number;
  calls: number;
  share: number;
}

export interface BenchTrainResult {
  config: { size: number; width: number; batch: number; classes: number; params: number; optimizer: string };
  engine: { backend: string; describe: string };
  tfjs: { train_img_s: number; train_ms_per_step: number; train_cpu_ms_per_step: number; predict_img_s: number; peak_heap_mb?: number; losses: number[]; rounds_train_img_s?: number[] };
  torch?: Record<string, unknown> | { error: string };
  ratio?: { train: number; predict: number };
  profile?: { step_ms: number; kernels: KernelTime[] };
  command: string;
  /** 1-minute load average before and after (other processes compete for the same cores: rates are only
   * comparable within one run, and tfjs and torch run back to back in it). */
  load: [number, number];
}

function syntheticBatch(n: number, S: number, numClasses: number, seed: number): LabBatch {
  const L = new Float32Array(n * S * S);
  const ab = new Float32Array(n * S * S * 2);
  const cls = new Int32Array(n);
  let s = seed >>> 0 || 1;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (let i = 0; i < L.length; i++) L[i] = rnd();
  for (let i = 0; i < ab.length; i++) ab[i] = rnd();
  for (let i = 0; i < n; i++) cls[i] = numClasses > 0 ? i % numClasses : -1;
  return { size: n, height: S, width: S, L, ab, cls, keys: [], positions: [] };
}

function torchAvailable(python: string): boolean {
  const r = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' });
  return r.status === 0;
}

export async function benchTrain(o: BenchTrainOptions = {}): Promise<BenchTrainResult> {
  const config = benchConfig(o);
  const load0 = loadavg()[0]!;
  const steps = o.steps ?? 20;
  const predictSteps = o.predictSteps ?? steps;
  const warmup = o.warmup ?? 3;
  const engine = await setupTfjs({ backend: o.backend ?? 'wasm', threads: o.threads });
  const { tf } = engine;
  const S = config.model.inputSize;
  const B = config.train.batch;
  const colorizer = buildColorizer(config.model, { seed: 1 });
  const trainer = createTrainer(colorizer.train, config, tf);
  const batch = syntheticBatch(B, S, config.model.numClasses, 7);

  const losses: number[] = [];
  for (let i = 0; i < warmup; i++) losses.push((await trainer.step(batch)).loss);
  for (let i = 0; i < Math.max(1, Math.min(warmup, 2)); i++) await trainer.predict(batch);

  const python = o.python ?? '/usr/bin/python3';
  const wantTorch = o.torch ?? 'auto';
  const useTorch = wantTorch === true || (wantTorch === 'auto' && torchAvailable(python));
  const rounds = Math.max(1, o.rounds ?? 1);
  const tfjsRounds: Array<{ train_ms: number; cpu_ms: number; predict_ms: number }> = [];
  const torchRounds: Array<Record<string, number>> = [];
  let torchError: string | null = null;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < steps; i++) losses.push((await trainer.step(batch)).loss);
    const trainMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const t1 = performance.now();
    for (let i = 0; i < predictSteps; i++) await trainer.predict(batch);
    tfjsRounds.push({ train_ms: trainMs / steps, cpu_ms: (cpu.user + cpu.system) / 1000 / steps, predict_ms: (performance.now() - t1) / predictSteps });
    if (useTorch && torchError === null) {
      const t = runTorch(python, config, { steps, warmup, predictSteps });
      if ('error' in t) torchError = String(t.error);
      else torchRounds.push(t);
    }
  }
  const best = tfjsRounds.reduce((a, b) => (b.train_ms < a.train_ms ? b : a));
  const bestPredictMs = Math.min(...tfjsRounds.map((x) => x.predict_ms));

  let profile: BenchTrainResult['profile'];
  if (o.profile) {
    const p0 = performance.now();
    const info = await tf.profile(async () => {
      await trainer.step(batch);
    });
    const stepMs = performance.now() - p0;
    const by = new Map<string, { ms: number; calls: number }>();
    for (const k of info.kernels) {
      // '...__op' entries are tfjs ops with a custom gradient (fused conv/matmul) wrapping a kernel that is also
      // listed: counting both would count that time twice.
      if (k.name.endsWith('__op')) continue;
      const e = by.get(k.name) ?? { ms: 0, calls: 0 };
      e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
      e.calls++;
      by.set(k.name, e);
    }
    const total = [...by.values()].reduce((a, b) => a + b.ms, 0);
    profile = {
      step_ms: Math.round(stepMs),
      kernels: [...by.entries()]
        .map(([kernel, e]) => ({ kernel, ms: +e.ms.toFixed(2), calls: e.calls, share: +(e.ms / total).toFixed(3) }))
        .sort((a, b) => b.ms - a.ms),
    };
  }
  const heap = engine.name === 'wasm' ? wasmHeapBytes(tf.backend()) : null;
  trainer.dispose();
  disposeColorizer(colorizer);

  const result: BenchTrainResult = {
    config: {
      size: S,
      width: config.model.width,
      batch: B,
      classes: config.model.numClasses,
      params: countParams(config.model).total,
      optimizer: config.train.optimizer,
    },
    engine: { backend: engine.name, describe: engine.describe },
    tfjs: {
      train_img_s: +((B * 1000) / best.train_ms).toFixed(2),
      train_ms_per_step: +best.train_ms.toFixed(1),
      train_cpu_ms_per_step: +best.cpu_ms.toFixed(1),
      predict_img_s: +((B * 1000) / bestPredictMs).toFixed(2),
      ...(rounds > 1 ? { rounds_train_img_s: tfjsRounds.map((x) => +((B * 1000) / x.train_ms).toFixed(2)) } : {}),
      ...(heap ? { peak_heap_mb: Math.round(heap / 2 ** 20) } : {}),
      losses: losses.map((l) => +l.toFixed(5)),
    },
    load: [load0, load0],
    command: `node dist/bench/train.js --size ${S} --width ${config.model.width} --batch ${B} --classes ${config.model.numClasses} --backend ${engine.name}${o.threads ? ` --threads ${o.threads}` : ''} --steps ${steps} --warmup ${warmup}${rounds > 1 ? ` --rounds ${rounds}` : ''}`,
  };
  if (profile) result.profile = profile;

  if (torchError !== null) {
    result.torch = { error: torchError };
  } else if (torchRounds.length) {
    const t = { ...torchRounds[0]! };
    t['train_img_s'] = Math.max(...torchRounds.map((x) => x['train_img_s']!));
    t['predict_img_s'] = Math.max(...torchRounds.map((x) => x['predict_img_s']!));
    if (torchRounds.length > 1) (t as Record<string, unknown>)['rounds_train_img_s'] = torchRounds.map((x) => +x['train_img_s']!.toFixed(2));
    result.torch = t;
    result.ratio = {
      train: +(result.tfjs.train_img_s / t['train_img_s']!).toFixed(3),
      predict: +(result.tfjs.predict_img_s / t['predict_img_s']!).toFixed(3),
    };
  }
  result.load[1] = loadavg()[0]!;
  return result;
}

/** One run of bench/torch_model.py on the same layer table; its JSON, or the error it printed. */
function runTorch(python: string, config: Config, o: { steps: number; warmup: number; predictSteps: number }): Record<string, number> | { error: string } {
  const dir = mkdtempSync(join(tmpdir(), 'colorpipe-bench-'));
  try {
    const tablePath = join(dir, 'table.json');
    writeFileSync(tablePath, JSON.stringify(layerTable(config.model)));
    const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'torch_model.py');
    const r = spawnSync(
      python,
      [script, tablePath, '--batch', String(config.train.batch), '--steps', String(o.steps), '--warmup', String(o.warmup), '--predict-steps', String(o.predictSteps), '--lr', String(config.train.lr), '--alpha', String(config.train.alpha)],
      { encoding: 'utf8', maxBuffer: 1 << 24 },
    );
    if (r.status !== 0) return { error: (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-3).join(' ') };
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parseArgs(argv: string[]): BenchTrainOptions {
  const o: BenchTrainOptions = {};
  forEachArg(argv, (a, next) => {
    switch (a) {
      case '--config': o.config = next(); break;
      case '--size': o.size = Number(next()); break;
      case '--width': o.width = Number(next()); break;
      case '--batch': o.batch = Number(next()); break;
      case '--classes': o.classes = Number(next()); break;
      case '--backend': o.backend = next() as BackendChoice; break;
      case '--threads': o.threads = Number(next()); break;
      case '--steps': o.steps = Number(next()); break;
      case '--predict-steps': o.predictSteps = Number(next()); break;
      case '--warmup': o.warmup = Number(next()); break;
      case '--no-torch': o.torch = false; break;
      case '--torch': o.torch = true; break;
      case '--python': o.python = next(); break;
      case '--profile': o.profile = true; break;
      case '--rounds': o.rounds = Number(next()); break;
      default: throw new Error(`unknown option ${a}`);
    }
  });
  return o;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const argv = process.argv.slice(2);
  // `--engine torch`: the PyTorch engine's pipeline against bare PyTorch (train-torch.ts); `--engine onnx`: the
  // ONNX Runtime engine against bare PyTorch and tfjs-wasm (train-onnx.ts).
  const engine = argv.includes('--engine') ? argv[argv.indexOf('--engine') + 1] : undefined;
  (engine === 'torch' ? import('./train-torch.js').then((m) => m.benchTorch(m.parseTorchArgs(argv)))
    : engine === 'onnx' ? import('./train-onnx.js').then((m) => m.benchOnnx(m.parseOnnxArgs(argv))) : benchTrain(parseArgs(argv)))
    .then((r) => process.stdout.write(JSON.stringify(r, null, 2) + '\n'))
    .catch((err: unknown) => {
      process.stderr.write(`bench train: ${(err as Error).message}\n`);
      process.exit(1);
    });
}
