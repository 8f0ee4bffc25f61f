/**
 * `pipe bench memory`: the peak memory (max RSS of the whole process: engine, worker threads, sharp) of
 * `pipe colorize` on camera-sized photos, with its bounds against without them, in the same script:
 *
 *   node dist/bench/memory.js                          (12 photos of 6000x4000, the demo network)
 *   node dist/bench/memory.js --images 30 --paper      (the paper's network)
 *
 * Cases, each a fresh `pipe colorize` process, in alternating rounds (--repeat, default 1):
 * - `default`: N JPEGs of 6000x4000 (24 megapixels, resized from the JPEGs of --photos, default DEFAULT_PHOTOS) at
 *   default settings, the memory budget on (1 GiB) -- against `unbounded`: the same with a budget too large
 *   to bind (--memory-budget 1000000), what in-flight counts alone allowed before the budget;
 * - `full`: one of them at --resolution full in 1024 x 1024 windows (the default tile) -- against `one-pass`:
 *   --tile 65536, the whole 24 megapixels in one engine call;
 * - `huge-png`: an 8190 x 8190 PNG of a few hundred KB at default settings (a decompression-bomb-sized image
 *   under sharp's pixel limit).
 * Reported per case: max RSS (MB), wall seconds, images written, and the budget's peak estimate; ratios
 * bounded / unbounded. The bound: 1.5 GB for any number of 24-megapixel photos at default settings.
 *
 * Prints one JSON object.
 */
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { loadConfig } from '../src/config.js';
import { setupTfjs } from '../src/tfjs/backend.js';
import { buildColorizer, colorizerWeights, disposeColorizer } from '../src/tfjs/network.js';
import { saveCheckpoint } from '../src/train/checkpoint.js';
import { forEachArg } from './args.js';

const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));
const DEFAULT_PHOTOS = '/work/shared/photos/images';
/** Prints the process's max RSS (MB) as it exits: the whole process, its worker threads included. */
const RSS_HOOK = 'data:text/javascript,process.on("exit",()=>process.stderr.write("\\nmaxrss_kb "+process.resourceUsage().maxRSS+"\\n"))';

interface Options {
  images: number;
  width: number;
  height: number;
  paper: boolean;
  photos: string;
  repeat: number;
}

interface CaseResult {
  maxRssMB: number;
  seconds: number;
  written: number;
  failed: number;
  inFlightPeakMB: number;
}

function colorize(args: string[]): CaseResult {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [`--import=${RSS_HOOK}`, CLI, 'colorize', ...args, '--quiet', '--json', '--overwrite'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const seconds = (performance.now() - t0) / 1000;
  const rss = /maxrss_kb (\d+)/.exec(r.stderr);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !rss || !line.startsWith('{')) throw new Error(`pipe colorize ${args.join(' ')} failed (${r.status}): ${r.stderr.slice(-2000)}`);
  const s = JSON.parse(line) as { written: number; failed: number; timings: { inFlightPeakBytes: number } };
  return { maxRssMB: Math.round(Number(rss[1]) / 1024), seconds: +seconds.toFixed(1), written: s.written, failed: s.failed, inFlightPeakMB: Math.round(s.timings.inFlightPeakBytes / 2 ** 20) };
}

async function main(o: Options): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cp-bench-memory-'));
  try {
    // A model as `pipe train` writes it (untrained weights: memory does not depend on their values).
    const config = loadConfig(fileURLToPath(new URL(o.paper ? '../../configs/iizuka2016.json' : '../../configs/demo.json', import.meta.url)));
    await setupTfjs({ backend: 'cpu' });
    const net = buildColorizer(config.model, { seed: 1 });
    const runDir = path.join(dir, 'run');
    await saveCheckpoint({
      runDir, weights: await colorizerWeights(net), optimizer: { iterations: 0, slots: [] },
      state: { version: 1, step: 1, epoch: 0, samplesSeen: 1, seed: 0, config, backend: 'cpu', data: null, optimizer: { type: 'adam' } },
    });
    disposeColorizer(net);
    const names = (await readdir(o.photos)).filter((f) => /\.jpe?g$/i.test(f)).sort();
    const many = path.join(dir, 'photos');
    const one = path.join(dir, 'one');
    const huge = path.join(dir, 'huge');
    await Promise.all([mkdir(many), mkdir(one), mkdir(huge)]);
    for (let i = 0; i < o.images; i++) {
      await sharp(path.join(o.photos, names[(i * 7) % names.length]!)).resize(o.width, o.height, { fit: 'cover' }).jpeg({ quality: 92 }).toFile(path.join(many, `photo-${i}.jpg`));
    }
    await copyFile(path.join(many, 'photo-0.jpg'), path.join(one, 'photo-0.jpg'));
    await sharp({ create: { width: 8190, height: 8190, channels: 3, background: '#808080' } })
      .composite([{ input: { create: { width: 3000, height: 2000, channels: 3, background: '#aa3322' } }, left: 1000, top: 1000 }])
      .png({ compressionLevel: 9 }).toFile(path.join(huge, 'huge.png'));
    const model = ['--model', runDir];
    const cases: Record<string, string[]> = {
      default: ['--in', many, '--out', path.join(dir, 'o1'), ...model],
      unbounded: ['--in', many, '--out', path.join(dir, 'o2'), ...model, '--memory-budget', '1000000'],
      full: ['--in', one, '--out', path.join(dir, 'o3'), ...model, '--resolution', 'full'],
      'one-pass': ['--in', one, '--out', path.join(dir, 'o4'), ...model, '--resolution', 'full', '--tile', '65536'],
      'huge-png': ['--in', huge, '--out', path.join(dir, 'o5'), ...model],
    };
    const rounds: Record<string, CaseResult>[] = [];
    for (let r = 0; r < o.repeat; r++) {
      const round: Record<string, CaseResult> = {};
      // Alternating order, so a slow spell of the machine does not always fall on the same case.
      const order = r % 2 === 0 ? Object.keys(cases) : Object.keys(cases).reverse();
      for (const k of order) round[k] = colorize(cases[k]!);
      rounds.push(round);
    }
    const best = (k: string): CaseResult => rounds.map((r) => r[k]!).reduce((a, b) => (b.maxRssMB < a.maxRssMB ? b : a));
    const result = Object.fromEntries(Object.keys(cases).map((k) => [k, best(k)]));
    process.stdout.write(JSON.stringify({
      bench: 'memory',
      network: o.paper ? 'iizuka2016 (width 1)' : `demo (width ${config.model.width})`,
      photos: `${o.images} x ${o.width}x${o.height} JPEG`,
      cores: os.availableParallelism(),
      ...result,
      ratios: {
        rss_default_vs_unbounded: +(result.default!.maxRssMB / result.unbounded!.maxRssMB).toFixed(2),
        speed_default_vs_unbounded: +(result.unbounded!.seconds / result.default!.seconds).toFixed(2),
        rss_full_tiled_vs_one_pass: +(result.full!.maxRssMB / result['one-pass']!.maxRssMB).toFixed(2),
        speed_full_tiled_vs_one_pass: +(result['one-pass']!.seconds / result.full!.seconds).toFixed(2),
      },
      within_1_5_GB: Object.values(result).filter((_, i) => Object.keys(cases)[i] !== 'unbounded' && Object.keys(cases)[i] !== 'one-pass').every((c) => c.maxRssMB <= 1500),
      rounds,
    }, null, 1) + '\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const o: Options = { images: 12, width: 6000, height: 4000, paper: false, photos: DEFAULT_PHOTOS, repeat: 1 };
forEachArg(process.argv.slice(2), (flag, v) => {
  switch (flag) {
    case '--images': o.images = Number(v()); break;
    case '--size': [o.width, o.height] = v().split('x').map(Number) as [number, number]; break;
    case '--paper': o.paper = true; break;
    case '--photos': o.photos = v(); break;
    case '--repeat': o.repeat = Number(v()); break;
    default:
      process.stdout.write('Usage: node dist/bench/memory.js [--images N] [--size 6000x4000] [--paper] [--photos DIR] [--repeat N]\n');
      process.exit(flag === '--help' ? 0 : 2);
  }
});
await main(o);
