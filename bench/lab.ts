/**
 * Where should sRGB -> Lab run? Measures, on the real photos at the training crop (224 of 256), per image:
 * - `js_inline`: sharp decode + crop to RGB, then src/color.ts's Lab on the main thread;
 * - `js_piscina`: the same, with the `lab` stage's piscina pool doing the conversion;
 * - `vips_lab`: sharp decode + crop + libvips' Lab (`.toColourspace('lab').raw({ depth: 'float' })`) on its
 *   threads, then quantization and the filter statistics in JS (decodeTrainLab: the loader's path);
 * plus `decode_only` (RGB, no Lab) as the floor. Reported: images/s, CPU ms per image (all threads of this
 * process: what decides throughput when every core runs a loader process) and main-thread ms per image (CPU
 * time of the main thread on Linux, event-loop busy time elsewhere). Median of --reps alternated runs.
 *
 *   node dist/bench/lab.js [--photos DIR] [--reps 3] [--concurrency N]
 */
import os from 'node:os';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { pipeline, drain } from '../src/core/pipeline.js';
import { Reporter } from '../src/core/errors.js';
import { median } from './args.js';
import { decode, decodeSettings, decodeTrainLab } from '../src/stages/decode.js';
import { lab } from '../src/stages/lab.js';
import { mapOrdered } from '../src/core/map-concurrent.js';
import type { Sample } from '../src/types.js';

export interface BenchLabResult {
  machine: { cores: number; node: string; libvips: string; loadavg_before: number[] };
  images: number;
  concurrency: number;
  paths: Record<string, { img_s: number; cpu_ms_per_img: number; main_thread_ms_per_img: number }>;
  choice: string;
}

function mainThreadMs(): number {
  if (process.platform === 'linux') {
    const st = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  }
  return performance.eventLoopUtilization().active;
}

export async function benchLab(o: { photos?: string; reps?: number; concurrency?: number } = {}): Promise<BenchLabResult> {
  const repo = resolve(fileURLToPath(new URL('../..', import.meta.url)));
  const dir = resolve(o.photos ?? join(repo, '..', 'shared', 'photos', 'images'));
  const samples: Sample[] = readdirSync(dir)
    .filter((f) => /\.jpe?g$/i.test(f))
    .sort()
    .map((f) => ({ key: f, url: f, image: readFileSync(join(dir, f)), fields: {} }));
  const reps = o.reps ?? 3;
  const concurrency = o.concurrency ?? os.availableParallelism();
  const settings = decodeSettings({ mode: 'train', resize: 256, crop: 224, seed: 1, concurrency });
  const quiet = () => ({ reporter: new Reporter({ log: null }) });
  const paths: Record<string, () => Promise<unknown>> = {
    decode_only: () => drain(pipeline(samples, decode(settings), quiet())),
    js_inline: () => drain(pipeline(samples, decode(settings), lab({ pool: 'inline' }), quiet())),
    js_piscina: () => drain(pipeline(samples, decode(settings), lab({ pool: 'piscina', threads: concurrency }), quiet())),
    vips_lab: async () => {
      for await (const _ of mapOrdered(samples, (s) => decodeTrainLab(s, settings), { concurrency }));
    },
  };
  const loadavg = os.loadavg();
  const runs: Record<string, { img_s: number; cpu: number; main: number }[]> = {};
  for (let rep = 0; rep <= reps; rep++) {
    for (const [name, run] of Object.entries(paths)) {
      const c0 = process.cpuUsage();
      const m0 = mainThreadMs();
      const t0 = performance.now();
      await run();
      const s = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      if (rep === 0) continue; // warm-up
      (runs[name] ??= []).push({
        img_s: samples.length / s,
        cpu: (c.user + c.system) / 1000 / samples.length,
        main: (mainThreadMs() - m0) / samples.length,
      });
    }
  }
  const r2 = (x: number) => Math.round(x * 100) / 100;
  const out: BenchLabResult['paths'] = {};
  for (const [name, rs] of Object.entries(runs)) {
    out[name] = {
      img_s: r2(median(rs.map((r) => r.img_s))),
      cpu_ms_per_img: r2(median(rs.map((r) => r.cpu))),
      main_thread_ms_per_img: r2(median(rs.map((r) => r.main))),
    };
  }
  const best = Object.entries(out)
    .filter(([k]) => k !== 'decode_only')
    .sort((a, b) => a[1].cpu_ms_per_img - b[1].cpu_ms_per_img)[0]!;
  return {
    machine: { cores: os.availableParallelism(), node: process.version, libvips: sharp.versions.vips, loadavg_before: loadavg.map(r2) },
    images: samples.length,
    concurrency,
    paths: out,
    choice: `${best[0]} costs the least CPU per image (${best[1].cpu_ms_per_img} ms)`,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  benchLab({
    photos: opt('--photos'),
    reps: opt('--reps') === undefined ? undefined : Number(opt('--reps')),
    concurrency: opt('--concurrency') === undefined ? undefined : Number(opt('--concurrency')),
  })
    .then((r) => process.stdout.write(JSON.stringify(r, null, 2) + '\n'))
    .catch((err) => {
      process.stderr.write(`bench lab: ${(err as Error).message}\n`);
      process.exit(1);
    });
}
