/**
 * `pipe bench train --engine torch`: the whole training pipeline on the PyTorch engine (trainGraph, as
 * `pipe train --engine torch` runs it: shards -> decode processes -> Lab -> shuffle -> batch -> prefetch -> the
 * worker) against bare PyTorch on in-memory batches (bench/torch_model.py), the same network, batch, threads and
 * precision, in alternating rounds of the same run; and the batch channel alone (GB/s, ms per step).
 *
 *   node dist/bench/train.js --engine torch [--config FILE | --size S --width W] [--batch B] [--steps N]
 *     [--warmup W] [--rounds R] [--threads T] [--processes P] [--devices N] [--device cpu|cuda] [--precision P]
 *     [--photos DIR] [--python PATH]
 *
 * Rates are images per second over the steps after the warm-up ones (the workers' start, the first steps'
 * allocations excluded); --devices N counts every rank's images. Prints one JSON object.
 */
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyOverrides, loadConfig, makeConfig, type Config } from '../src/config.js';
import { countParams, layerTable } from '../src/network/table.js';
import { trainGraph } from '../src/train/graph.js';
import { pythonOf, probeTorch } from '../src/torch/python.js';
import { Ring, slotBytes } from '../src/torch/ring.js';
import { TorchWorker } from '../src/torch/worker.js';
import type { Precision, TorchDevice } from '../src/torch/engine.js';
import type { LabBatch } from '../src/types.js';
import { buildShards } from './loader.js';
import { forEachArg } from './args.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

export interface BenchTorchOptions {
  config?: string;
  size?: number;
  width?: number;
  batch?: number;
  classes?: number;
  steps?: number;
  warmup?: number;
  rounds?: number;
  threads?: number;
  processes?: number;
  devices?: number;
  device?: TorchDevice;
  precision?: Precision;
  photos?: string;
  python?: string;
}

function resolveConfig(o: BenchTorchOptions): Config {
  let c = o.config ? loadConfig(o.config) : makeConfig({ name: 'bench-tiny', model: { inputSize: 64, width: 0.25, numClasses: 0 }, train: { batch: 8 } });
  c = applyOverrides(c, { size: o.size, width: o.width, batch: o.batch });
  if (o.classes !== undefined) c.model.numClasses = o.classes;
  return c;
}

/** One `pipe train --engine torch` run: img/s and data stall over the steps after `warmup`. */
async function pipelineRound(o: BenchTorchOptions, config: Config, urls: string[], dir: string, steps: number, warmup: number): Promise<{ img_s: number; data_stall: number; engine: string }> {
  const total = warmup + steps + 1;
  const c: Config = { ...config, train: { ...config.train, steps: total, checkpointEvery: total, logEvery: total, valEvery: 0 } };
  const times: number[] = [];
  const stalls: number[] = [];
  const out = mkdtempSync(join(dir, 'run-'));
  // Several ranks are processes that the command starts (commands/launch.ts): measured through it.
  if ((o.devices ?? 1) > 1) return cliRound(o, c, urls, out, steps, warmup);
  const r = await trainGraph({
    shards: urls, config: c, out, engine: 'torch', quiet: true,
    torch: { device: o.device ?? 'auto', precision: o.precision ?? 'fp32', ...(o.threads ? { threads: o.threads } : {}), ...(o.python ? { python: o.python } : {}) },
    ...(o.processes !== undefined ? { processes: o.processes } : {}),
    onStep: (rec) => {
      times.push(performance.now());
      if (rec.step > warmup && rec.step <= warmup + steps) stalls.push(rec.dataStall);
    },
  });
  const span = (times[warmup + steps - 1]! - times[warmup - 1]!) / 1000;
  return { img_s: (steps * c.train.batch) / span, data_stall: stalls.reduce((a, b) => a + b, 0) / stalls.length, engine: r.engine };
}

/** The same through `pipe train --devices N` (the ranks are processes): rates from its metrics.jsonl. */
function cliRound(o: BenchTorchOptions, c: Config, urls: string[], out: string, steps: number, warmup: number): { img_s: number; data_stall: number; engine: string } {
  const cfg = join(out, 'config.json');
  writeFileSync(cfg, JSON.stringify({ ...c, train: { ...c.train, logEvery: 1 } }));
  const args = [join(REPO, 'dist', 'src', 'cli.js'), 'train', '--shards', urls.join(','), '--config', cfg, '--out', join(out, 'run'), '--quiet',
    '--engine', 'torch', '--devices', String(o.devices), '--device', o.device ?? 'auto', '--precision', o.precision ?? 'fp32',
    ...(o.threads ? ['--threads', String(o.threads)] : []), ...(o.processes !== undefined ? ['--processes', String(o.processes)] : []),
    ...(o.python ? ['--python', o.python] : [])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pipe train --devices ${o.devices} failed: ${r.stderr.trim().split('\n').pop()}`);
  const lines = readFileSync(join(out, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n')
    .map((l) => JSON.parse(l) as { step: number; img_per_s: number; data_stall: number; type?: string }).filter((l) => !l.type && l.step > warmup && l.step <= warmup + steps);
  // Per-step rates over equal batches: the harmonic mean is the rate over the window.
  const img = lines.length / lines.reduce((a, l) => a + 1 / l.img_per_s, 0);
  return { img_s: img, data_stall: lines.reduce((a, l) => a + l.data_stall, 0) / lines.length, engine: `torch, ${o.devices} ranks` };
}

/** bench/torch_model.py: bare PyTorch training on one in-memory batch. */
function bareRound(o: BenchTorchOptions, config: Config, python: string, dir: string, steps: number, warmup: number, threads: number): Record<string, number> {
  const table = join(dir, 'table.json');
  writeFileSync(table, JSON.stringify(layerTable(config.model)));
  const r = spawnSync(python, [join(REPO, 'bench', 'torch_model.py'), table, '--batch', String(config.train.batch), '--steps', String(steps),
    '--warmup', String(warmup), '--predict-steps', '1', '--threads', String(threads), '--lr', String(config.train.lr), '--alpha', String(config.train.alpha),
    '--device', o.device ?? 'auto', ...(o.precision ? ['--precision', o.precision] : [])], { encoding: 'utf8', env: { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE' } });
  if (r.status !== 0) throw new Error(`torch_model.py failed: ${(r.stderr || '').trim().split('\n').pop()}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, number>;
}

/**
 * The photos at the size training data usually has (the short side a little above the training scale, as the
 * GPU host's loader probe used 320x256 crops): camera originals would make the benchmark one of JPEG decoding.
 */
async function smallPhotos(from: string, to: string, resize: number): Promise<string> {
  mkdirSync(to, { recursive: true });
  const side = Math.max(resize, Math.round(resize * 1.25));
  for (const f of readdirSync(from).filter((n) => /\.jpe?g$/i.test(n)).sort()) {
    await sharp(join(from, f)).rotate().resize(side, side, { fit: 'outside', withoutEnlargement: false }).jpeg({ quality: 90 }).toFile(join(to, f));
  }
  return to;
}

/** The batch channel alone: batches written into the ring and taken by a worker, as a step takes them. */
async function channel(python: string, device: TorchDevice, config: Config, reps: number): Promise<{ gb_s: number; ms_per_batch: number; mb_per_batch: number }> {
  const S = config.model.inputSize;
  const B = config.train.batch;
  const ring = await Ring.create(3, slotBytes(B, S));
  const worker = new TorchWorker(python, { OMP_WAIT_POLICY: 'PASSIVE' });
  try {
    const dev = device === 'auto' ? ((await probeTorch(python)).cuda ? 'cuda' : 'cpu') : device;
    await worker.request('channel', { ring: { path: ring.path, slots: ring.slots, slotBytes: ring.slotBytes }, device: dev });
    await ring.unlink();
    const b: LabBatch = { size: B, height: S, width: S, L: new Float32Array(B * S * S).fill(0.5), ab: new Float32Array(B * S * S * 2).fill(0.5), cls: new Int32Array(B), keys: [], positions: [] };
    const send = async (i: number) => {
      await ring.write(i % 3, b);
      await worker.request('channel', { slot: i % 3, n: B, h: S, w: S });
    };
    for (let i = 0; i < 3; i++) await send(i);
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) await send(i);
    const ms = (performance.now() - t0) / reps;
    const bytes = 4 * (3 * B * S * S + B);
    return { gb_s: bytes / (ms / 1000) / 1e9, ms_per_batch: ms, mb_per_batch: bytes / 1e6 };
  } finally {
    await worker.close();
    await ring.close();
  }
}

export async function benchTorch(o: BenchTorchOptions): Promise<Record<string, unknown>> {
  const config = resolveConfig(o);
  const python = pythonOf(o.python);
  const info = await probeTorch(python);
  const steps = o.steps ?? 10;
  const warmup = o.warmup ?? 2;
  const rounds = o.rounds ?? 2;
  const threads = o.threads ?? os.availableParallelism();
  const dir = mkdtempSync(join(os.tmpdir(), 'colorpipe-bench-torch-'));
  try {
    const photos = await smallPhotos(resolve(o.photos ?? join(REPO, '..', 'shared', 'photos', 'images')), join(dir, 'photos'), config.augment.resize);
    const urls = await buildShards(photos, Math.max(512, (warmup + steps + 2) * config.train.batch * (o.devices ?? 1) * 2), join(dir, 'shards'), () => undefined);
    const pipe: Array<{ img_s: number; data_stall: number; engine: string }> = [];
    const bare: Array<Record<string, number>> = [];
    for (let r = 0; r < rounds; r++) {
      pipe.push(await pipelineRound({ ...o, threads }, config, urls, dir, steps, warmup));
      bare.push(bareRound(o, config, python, dir, steps, warmup, threads));
      process.stderr.write(`bench train --engine torch: round ${r + 1}: pipeline ${pipe.at(-1)!.img_s.toFixed(2)} img/s, bare ${bare.at(-1)!['train_img_s']!.toFixed(2)} img/s\n`);
    }
    const best = Math.max(...pipe.map((p) => p.img_s));
    const bestBare = Math.max(...bare.map((b) => b['train_img_s']!));
    const ch = await channel(python, o.device ?? 'auto', config, 20);
    return {
      config: { size: config.model.inputSize, width: config.model.width, batch: config.train.batch, classes: config.model.numClasses, params: countParams(config.model).total, devices: o.devices ?? 1, threads, precision: o.precision ?? 'fp32' },
      torch: { version: info.torch, python, cuda: info.cuda, device: info.deviceName },
      engine: pipe[0]!.engine,
      pipeline: { img_s: +best.toFixed(2), data_stall: +Math.min(...pipe.map((p) => p.data_stall)).toFixed(4), rounds_img_s: pipe.map((p) => +p.img_s.toFixed(2)) },
      bare: { img_s: +bestBare.toFixed(2), rounds_img_s: bare.map((b) => +b['train_img_s']!.toFixed(2)) },
      ratio: +(best / (bestBare * (o.devices ?? 1))).toFixed(3),
      rounds_ratio: pipe.map((p, i) => +(p.img_s / (bare[i]!['train_img_s']! * (o.devices ?? 1))).toFixed(3)),
      channel: { ...ch, gb_s: +ch.gb_s.toFixed(2), ms_per_batch: +ch.ms_per_batch.toFixed(3) },
      load: os.loadavg().map((x) => +x.toFixed(2)),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function parseTorchArgs(argv: string[]): BenchTorchOptions {
  const o: BenchTorchOptions = {};
  forEachArg(argv, (a, next) => {
    switch (a) {
      case '--engine': if (next() !== 'torch') throw new Error('--engine: this benchmark is the torch engine\'s'); break;
      case '--config': o.config = next(); break;
      case '--size': o.size = Number(next()); break;
      case '--width': o.width = Number(next()); break;
      case '--batch': o.batch = Number(next()); break;
      case '--classes': o.classes = Number(next()); break;
      case '--steps': o.steps = Number(next()); break;
      case '--warmup': o.warmup = Number(next()); break;
      case '--rounds': o.rounds = Number(next()); break;
      case '--threads': o.threads = Number(next()); break;
      case '--processes': o.processes = Number(next()); break;
      case '--devices': o.devices = Number(next()); break;
      case '--device': o.device = next() as TorchDevice; break;
      case '--precision': o.precision = next() as Precision; break;
      case '--photos': o.photos = next(); break;
      case '--python': o.python = next(); break;
      default: throw new Error(`unknown option ${a}`);
    }
  });
  return o;
}
