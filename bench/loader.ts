/**
 * The loader benchmark (issue 2): images/s end to end into batches, shards -> decode (train crop) -> Lab ->
 * batch of 32, for each number of decode processes, against the simplest baseline in the same run: one
 * thread, sharp decode + crop, then a plain JS Lab loop on the main thread.
 *
 *   node dist/bench/loader.js [--processes 1,2] [--photos DIR] [--samples 2000] [--seconds 10]
 *                             [--warmup 3] [--shards DIR] [--batch 32] [--size 224] [--out FILE]
 *   (or `pipe bench loader ...`)
 *
 * Data: the JPEGs of --photos (default: the photo collection's images/ beside the repository) replicated to
 * --samples samples, written as WebDataset shards with the project's shard writer (32 shards, so up to 32
 * processes get one each; labels from MANIFEST.tsv's source_package when present), in a temp dir removed
 * afterwards, or in --shards DIR (kept, and reused when it already holds shards).
 *
 * Each configuration runs an endless loader (epochs: Infinity) and is measured over --seconds after
 * --warmup seconds (children starting, caches warming). Per configuration it reports images/s, the speedup
 * over the baseline, the scaling efficiency (img/s / (processes * img/s at 1 process)), the main thread's
 * busy share (event-loop utilization: frame parsing, dequantization, batching) and the whole machine's CPU
 * busy share (from os.cpus()), which together say what limits it.
 *
 * Prints one JSON object on stdout: { machine, baseline_img_s, results: [...], limit }.
 */
import os from 'node:os';
import { existsSync, mkdtempSync, promises as fsp, readFileSync, readdirSync, rmSync, symlinkSync, mkdirSync } from 'node:fs';
import { join, resolve, basename } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { pipeline, type Pipeline } from '../src/core/pipeline.js';
import { Reporter } from '../src/core/errors.js';
import { makeConfig, type Config } from '../src/config.js';
import { loader } from '../src/train/loader/index.js';
import { shards } from '../src/stages/shards.js';
import { decode } from '../src/stages/decode.js';
import { lab } from '../src/stages/lab.js';
import { batch } from '../src/stages/batch.js';
import { writeShards } from '../src/shard/graph.js';
import type { LabBatch } from '../src/types.js';

export interface BenchLoaderOptions {
  /** Decode process counts to measure (default [1, 2]). */
  processes?: number[];
  /** Folder of JPEGs (default: the photo collection's images/ beside the repository). */
  photos?: string;
  /** Samples in the benchmark dataset (default 2000). */
  samples?: number;
  /** Measured seconds per configuration (default 10). */
  seconds?: number;
  /** Unmeasured seconds before each measurement (default 3). */
  warmup?: number;
  /** Where to write (or find) the shards; a temp dir, removed afterwards, when absent. */
  shardsDir?: string;
  batch?: number;
  size?: number;
  /** Skip the baseline (e.g. when only scaling is of interest). */
  noBaseline?: boolean;
  log?: (line: string) => void;
}

export interface BenchLoaderResult {
  machine: { cores: number; cpu: string; node: string; sharp: string; libvips: string; loadavg_before: number[] };
  dataset: { samples: number; shards: number; photos: string; image: string };
  baseline_img_s: number | null;
  results: {
    processes: number;
    img_s: number;
    speedup_vs_baseline: number | null;
    scaling_efficiency: number | null;
    /** CPU time of the parent's main thread / wall time. */
    parent_busy_fraction: number;
    /** The busiest other thread of the parent (the loader's hub thread: pipes, merge, dequantization). */
    hub_busy_fraction: number | null;
    /** Cores' worth of CPU the whole parent process used. */
    parent_process_cores: number;
    machine_cpu_busy_fraction: number;
    batches: number;
  }[];
  limit: string;
}

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));

interface Window {
  img_s: number;
  parentBusy: number;
  hubBusy: number | null;
  parentCores: number;
  cpuBusy: number;
  batches: number;
}

/** CPU ticks of each thread of this process (Linux /proc; null elsewhere). Ticks are 1/100 s on Linux. */
function threadTicks(): Map<number, number> | null {
  if (process.platform !== 'linux') return null;
  const out = new Map<number, number>();
  for (const t of readdirSync('/proc/self/task')) {
    try {
      const st = readFileSync(`/proc/self/task/${t}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      out.set(Number(t), Number(f[11]) + Number(f[12]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}
const TICK_S = 0.01;

function cpuTimes(): { busy: number; total: number } {
  let busy = 0;
  let total = 0;
  for (const c of os.cpus()) {
    const t = c.times;
    busy += t.user + t.nice + t.sys + t.irq;
    total += t.user + t.nice + t.sys + t.irq + t.idle;
  }
  return { busy, total };
}

/** Pulls batches for warmup + seconds, measuring the second part; stops the pipeline (and its children). */
async function measure(p: Pipeline<LabBatch>, warmupS: number, seconds: number): Promise<Window> {
  const t0 = performance.now();
  let start = -1;
  let images = 0;
  let batches = 0;
  let elu0 = performance.eventLoopUtilization();
  let cpu0 = cpuTimes();
  let ticks0 = threadTicks();
  let usage0 = process.cpuUsage();
  let end: {
    elapsed: number;
    elu: ReturnType<typeof performance.eventLoopUtilization>;
    cpu: ReturnType<typeof cpuTimes>;
    ticks: ReturnType<typeof threadTicks>;
    usage: NodeJS.CpuUsage;
  } | null = null;
  for await (const b of p) {
    const now = performance.now();
    if (start < 0) {
      if (now - t0 >= warmupS * 1000) {
        start = now;
        elu0 = performance.eventLoopUtilization();
        cpu0 = cpuTimes();
        ticks0 = threadTicks();
        usage0 = process.cpuUsage();
      }
      continue;
    }
    images += b.size;
    batches++;
    if (now - start >= seconds * 1000) {
      // Read the counters before the break: stopping the loader ends its hub thread and children.
      end = { elapsed: (performance.now() - start) / 1000, elu: performance.eventLoopUtilization(elu0), cpu: cpuTimes(), ticks: threadTicks(), usage: process.cpuUsage(usage0) };
      break;
    }
  }
  if (end === null || batches === 0) throw new Error('the loader ended before the measurement ended: use more --samples or fewer --seconds');
  const { elapsed, elu, cpu: cpu1, ticks: ticks1, usage } = end;
  // The main thread's CPU share (its event-loop utilization where /proc is missing: that one also counts time
  // the thread waited for a core), and the busiest other thread's: the hub, when there is one.
  let parentBusy = elu.utilization;
  let hubBusy: number | null = null;
  if (ticks0 && ticks1) {
    parentBusy = ((ticks1.get(process.pid) ?? 0) - (ticks0.get(process.pid) ?? 0)) * TICK_S / elapsed;
    for (const [tid, t] of ticks1) {
      if (tid === process.pid) continue;
      const share = (t - (ticks0.get(tid) ?? 0)) * TICK_S / elapsed;
      hubBusy = Math.max(hubBusy ?? 0, share);
    }
  }
  return {
    img_s: images / elapsed,
    parentBusy,
    hubBusy,
    parentCores: (usage.user + usage.system) / 1e6 / elapsed,
    cpuBusy: (cpu1.busy - cpu0.busy) / Math.max(1, cpu1.total - cpu0.total),
    batches,
  };
}

/** Shards of `samples` replicas of the JPEGs of `photos` in `dir` (reused when `dir` already holds them). */
export async function buildShards(photos: string, samples: number, dir: string, log: (l: string) => void): Promise<string[]> {
  const existing = existsSync(dir) ? readdirSync(dir).filter((f) => /^bench-\d+\.tar$/.test(f)) : [];
  if (existing.length > 0) return existing.sort().map((f) => join(dir, f));
  const files = readdirSync(photos).filter((f) => /\.(jpe?g)$/i.test(f)).sort();
  if (files.length === 0) throw new Error(`no JPEGs in ${photos}`);
  const classOf = new Map<string, string>();
  const manifest = join(photos, '..', 'MANIFEST.tsv');
  if (existsSync(manifest)) {
    const [head, ...rows] = readFileSync(manifest, 'utf8').trim().split('\n');
    const cols = head!.split('\t');
    const fi = cols.indexOf('file');
    const ci = cols.indexOf('source_package');
    if (fi >= 0 && ci >= 0) for (const r of rows) classOf.set(r.split('\t')[fi]!, r.split('\t')[ci]!);
  }
  // Replicas as symlinks under class folders, then the project's shard writer (which checks each image).
  const input = join(dir, 'input');
  for (let i = 0; i < samples; i++) {
    const f = files[i % files.length]!;
    const cls = (classOf.get(f) ?? 'photos').replace(/[^\w.-]/g, '_');
    mkdirSync(join(input, cls), { recursive: true });
    symlinkSync(resolve(photos, f), join(input, cls, `${String(i).padStart(6, '0')}-${basename(f)}`));
  }
  log(`bench: writing ${samples} samples as shards in ${dir}`);
  const r = await writeShards({
    input,
    output: dir,
    prefix: 'bench',
    maxcount: Math.ceil(samples / 32),
    labels: 'dirs',
    reporter: new Reporter({ log: null }),
  });
  await fsp.rm(input, { recursive: true, force: true });
  return r.shards;
}

/**
 * Runs the benchmark.
 * @throws Error when the photos folder has no JPEGs or a configuration ends before its measurement.
 */
export async function benchLoader(o: BenchLoaderOptions = {}): Promise<BenchLoaderResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const processes = o.processes ?? [1, 2];
  const photos = resolve(o.photos ?? join(REPO, '..', 'shared', 'photos', 'images'));
  const samples = o.samples ?? 2000;
  const seconds = o.seconds ?? 10;
  const warmup = o.warmup ?? 3;
  const size = o.size ?? 224;
  const batchSize = o.batch ?? 32;
  const config: Config = makeConfig({ model: { inputSize: size } });
  const loadavg = os.loadavg();
  const temp = o.shardsDir === undefined;
  const dir = o.shardsDir ?? mkdtempSync(join(os.tmpdir(), 'colorpipe-bench-loader-'));
  try {
    mkdirSync(dir, { recursive: true });
    const urls = await buildShards(photos, samples, dir, log);
    const results: BenchLoaderResult['results'] = [];
    let baseline: number | null = null;
    if (!o.noBaseline) {
      // One thread: one image at a time through sharp (libvips with one thread), JS Lab on the main thread.
      const before = sharp.concurrency();
      sharp.concurrency(1);
      try {
        const p = pipeline(
          shards({ urls, seed: config.train.seed, epochs: Infinity }),
          decode({ mode: 'train', resize: config.augment.resize, crop: config.augment.crop, seed: config.train.seed, concurrency: 1 }),
          lab({ pool: 'inline', filter: config.filter }),
          batch({ size: batchSize }),
          { reporter: new Reporter({ log: null }) },
        );
        const w = await measure(p, warmup, seconds);
        baseline = w.img_s;
        log(`bench: baseline (1 thread, sharp + JS Lab) ${w.img_s.toFixed(1)} img/s`);
      } finally {
        sharp.concurrency(before);
      }
    }
    let one: number | null = null;
    for (const n of processes) {
      const p = pipeline(
        loader({ urls, config, processes: n, epochs: Infinity }),
        batch({ size: batchSize }),
        { reporter: new Reporter({ log: null }) },
      );
      const w = await measure(p, warmup, seconds);
      if (n === 1) one = w.img_s;
      results.push({
        processes: n,
        img_s: round(w.img_s),
        speedup_vs_baseline: baseline ? round(w.img_s / baseline, 2) : null,
        scaling_efficiency: one ? round(w.img_s / (n * one), 2) : null,
        parent_busy_fraction: round(w.parentBusy, 2),
        hub_busy_fraction: w.hubBusy === null ? null : round(w.hubBusy, 2),
        parent_process_cores: round(w.parentCores, 2),
        machine_cpu_busy_fraction: round(w.cpuBusy, 2),
        batches: w.batches,
      });
      log(
        `bench: ${n} process(es) ${w.img_s.toFixed(1)} img/s, main thread ${(100 * w.parentBusy).toFixed(0)}% busy, ` +
          `hub thread ${w.hubBusy === null ? '?' : (100 * w.hubBusy).toFixed(0)}%, machine CPU ${(100 * w.cpuBusy).toFixed(0)}%`,
      );
    }
    return {
      machine: {
        cores: os.availableParallelism(),
        cpu: os.cpus()[0]?.model ?? 'unknown',
        node: process.version,
        sharp: sharp.versions.sharp ?? 'unknown',
        libvips: sharp.versions.vips,
        loadavg_before: loadavg.map((x) => round(x, 2)),
      },
      dataset: { samples, shards: urls.length, photos, image: `${config.augment.crop}x${config.augment.crop} crop of ${config.augment.resize}` },
      baseline_img_s: baseline === null ? null : round(baseline),
      results,
      limit: limitOf(results, os.availableParallelism()),
    };
  } finally {
    if (temp) rmSync(dir, { recursive: true, force: true });
  }
}

/** What limits the largest configuration, read off its measurements. */
function limitOf(results: BenchLoaderResult['results'], cores: number): string {
  const last = results[results.length - 1];
  if (!last) return 'nothing measured';
  const cpu = `${Math.round(100 * last.machine_cpu_busy_fraction)}% of the machine's ${cores} cores busy`;
  const parent = `the parent's main thread ${Math.round(100 * last.parent_busy_fraction)}% busy`;
  const hub = last.hub_busy_fraction === null ? '' : `, its hub thread ${Math.round(100 * last.hub_busy_fraction)}%`;
  if (last.parent_busy_fraction > 0.85) {
    return `the parent's main thread (receiving samples, batching): ${parent}${hub}, ${cpu}`;
  }
  if (last.hub_busy_fraction !== null && last.hub_busy_fraction > 0.85) {
    return `the parent's hub thread (pipes, merge, dequantization): ${parent}${hub}, ${cpu}`;
  }
  if (last.machine_cpu_busy_fraction > 0.85) {
    return `CPU: ${cpu} (decode + Lab in the ${last.processes} processes), ${parent}${hub}` +
      (last.processes >= cores ? '' : `; more processes than ${last.processes} cannot help on this machine`);
  }
  return `neither CPU (${cpu}) nor the parent (${parent}${hub}) is saturated: latency between parent and children, or too few processes (${last.processes}) for ${cores} cores`;
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function parseArgs(argv: string[]): BenchLoaderOptions & { out?: string } {
  const o: BenchLoaderOptions & { out?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    const need = () => {
      if (v === undefined) throw new Error(`${a} needs a value`);
      i++;
      return v;
    };
    const num = () => {
      const x = Number(need());
      if (!Number.isFinite(x) || x <= 0) throw new Error(`Expected a positive number for ${a} but received ${v}`);
      return x;
    };
    switch (a) {
      case '--processes':
      case '--threads':
        o.processes = need().split(',').map((s) => {
          const n = Number(s);
          if (!Number.isInteger(n) || n < 0) throw new Error(`Expected a list of non-negative integers for ${a} but received ${v}`);
          return n;
        });
        break;
      case '--photos': o.photos = need(); break;
      case '--samples': o.samples = num(); break;
      case '--seconds': o.seconds = num(); break;
      case '--warmup': o.warmup = Number(need()); break;
      case '--shards': o.shardsDir = need(); break;
      case '--batch': o.batch = num(); break;
      case '--size': o.size = num(); break;
      case '--no-baseline': o.noBaseline = true; break;
      case '--out': o.out = need(); break;
      default: throw new Error(`Unknown option ${a}`);
    }
  }
  return o;
}

async function main(): Promise<void> {
  const { out, ...o } = parseArgs(process.argv.slice(2));
  const r = await benchLoader(o);
  const text = JSON.stringify(r, null, 2);
  process.stdout.write(text + '\n');
  if (out) await fsp.writeFile(out, text + '\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((err) => {
    process.stderr.write(`bench loader: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
