/**
 * `pipe demo`: the first run for a new user, on the bundled photographs (demo/photos), with no GPU and no
 * network: builds the shards if missing, trains configs/demo.json within a time limit (a checkpoint and the
 * report are written when the limit is hit), colorizes the held-apart photos, evaluates them against the
 * grayscale and mean-ab baselines, and writes runs/demo/report.html. A rerun continues from the checkpoint.
 */
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { boolean, flagNames, int, number, parseFlags, string, usage, type FlagTable, type Values } from './flags.js';
import { interruptible } from './interrupt.js';
import { FLAGS as TRAIN_FLAGS } from './train.js';
import { loadConfig, applyOverrides, type Config } from '../config.js';
import { Reporter, type EngineUnavailableError } from '../core/errors.js';
import { writeShards } from '../shard/graph.js';
import { trainGraph } from '../train/graph.js';
import { colorizeGraph } from '../colorize/graph.js';
import { evaluateFolder, formatEvalTable, type EvalSummary } from '../colorize/eval.js';
import { setupTfjs } from '../tfjs/backend.js';
import { loadOrt } from '../onnx/session.js';
import { writeReport, makeGrid, type RgbImage } from '../train/report.js';
import { splitLab, mergeLab } from '../color/lab.js';
import { listImageFiles } from '../stages/files.js';
import { exists, writeFileAtomic } from '../core/atomic.js';
import { LOCK_FILE, lockFolder } from '../core/lock.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export const FLAGS = {
  out: { kind: string(), value: 'DIR', help: "the demo's run directory (default runs/demo)" },
  minutes: { kind: number({ min: 0.05, default: 10 }), value: 'M', help: 'training time limit (default 10); a checkpoint is written when it is reached' },
  steps: { kind: int({ min: 1 }), value: 'N', help: "training steps (default: the config's)" },
  backend: { ...TRAIN_FLAGS.backend, help: "tfjs's backend for colorizing, and for training when named (auto, the default, trains on ONNX Runtime): auto|tensorflow|webgpu|wasm|cpu" },
  fresh: { kind: boolean, help: 'start over instead of continuing an earlier demo run' },
  quiet: { kind: boolean, help: 'no progress bar' },
} satisfies FlagTable;

export const USAGE = usage(
  `Usage: pipe demo [--out runs/demo] [--minutes M] [--steps N] [--backend B]
  Trains configs/demo.json on the bundled photos (demo/photos/train), colorizes the held-apart ones
  (demo/photos/heldout), evaluates them and writes OUT/report.html. Under 15 minutes on 2 cores.`,
  FLAGS,
);
/** The API's option names, as this command's flags (for the API's errors). */
export const FLAG_NAMES = flagNames(FLAGS);

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(argv, FLAGS, USAGE);
  const out = resolve(v.out ?? 'runs/demo');
  const photos = join(ROOT, 'demo', 'photos');
  const config = applyOverrides(loadConfig(join(ROOT, 'configs', 'demo.json')), { steps: v.steps });
  const log = (s: string) => process.stderr.write(s + '\n');
  // The demo's run directory is one run's: locked (core/lock.ts) before --fresh clears it, until the demo ends.
  const lock = await lockFolder(out, 'pipe demo');
  try {
    return await demo(v, out, photos, config, log);
  } finally {
    await lock.release();
  }
}

async function demo(v: Values<typeof FLAGS>, out: string, photos: string, config: Config, log: (s: string) => void): Promise<number> {
  const t0 = performance.now();
  const { minutes, backend } = v;
  log(`colorpipe demo: ${config.train.steps} training steps of the paper's network (width ${config.model.width}, ${config.model.inputSize}x${config.model.inputSize})`);
  log(`  on the ${await countFiles(join(photos, 'train'))} bundled training photos, then colorizes and evaluates the ${await countFiles(join(photos, 'heldout'))} held-apart ones.`);
  log(`  Takes about ${Math.ceil(minutes + 2)} minutes on 2 cores (training stops at ${minutes} min with a checkpoint); output in ${out}`);
  if (v.fresh) {
    for (const name of await fsp.readdir(out)) if (name !== LOCK_FILE) await fsp.rm(join(out, name), { recursive: true, force: true });
  }

  // Ctrl-C as in every command: stop after the current shard, training step (with a checkpoint) or file, then
  // exit 130; a rerun continues.
  return interruptible('stopping (while training: after this step, with a checkpoint); a rerun continues', async (stop) => {
    // 1. Shards (once). The training shards' classes.json, written last, says both sets are whole.
    const trainShards = join(out, 'shards', 'train');
    const heldShards = join(out, 'shards', 'heldout');
    const quiet = new Reporter({ log: null });
    if (!(await exists(join(trainShards, 'classes.json')))) {
      log('[1/4] building shards from demo/photos');
      await writeShards({ input: join(photos, 'heldout'), output: heldShards, maxcount: 64, labels: 'none', reporter: quiet, signal: stop });
      await writeShards({ input: join(photos, 'train'), output: trainShards, maxcount: 64, labels: 'dirs', reporter: quiet, signal: stop });
    } else {
      log('[1/4] shards already built');
    }

    // 2. Train, within the time limit (continues an earlier demo run): on ONNX Runtime, the fastest CPU engine
    // (BENCHMARKS.md), or on tfjs when its --backend is named or onnxruntime-node does not load here. The engine
    // is pinned, not auto's: a CUDA GPU would otherwise change the demo's numbers.
    log('[2/4] training');
    const engine = await setupTfjs({ backend });
    let trainOn: 'onnx' | 'tfjs' = backend === 'auto' ? 'onnx' : 'tfjs';
    if (trainOn === 'onnx') {
      await loadOrt().catch((err: unknown) => {
        trainOn = 'tfjs';
        log(`      note: training on tfjs (${(err as EngineUnavailableError).short ?? 'onnxruntime-node unavailable'})`);
      });
    }
    const limit = new AbortController();
    const timer = setTimeout(() => limit.abort(), minutes * 60_000);
    const onStop = () => limit.abort();
    stop.addEventListener('abort', onStop, { once: true });
    let trained;
    try {
      trained = await trainGraph({
        shards: join(trainShards, '*.tar'), valShards: join(heldShards, '*.tar'), config, out, engine: trainOn, tfjsBackend: engine,
        resume: true, steps: config.train.steps, stop: limit.signal, quiet: v.quiet, label: 'demo: train', locked: true,
      });
    } finally {
      clearTimeout(timer);
      stop.removeEventListener('abort', onStop);
    }
    log(`      step ${trained.steps}, loss ${trained.lastLoss.toFixed(5)}, ${trained.meanImgPerS.toFixed(1)} img/s on ${trained.engine}`);
    if (stop.aborted) {
      log(`colorpipe demo: stopped at step ${trained.steps}, checkpoint written; 'pipe demo' continues from it`);
      return 0;
    }

    // The paper colorizes at any resolution, but a network sees objects best at the scale it trained on: the model
    // records that scale (crops of photos whose short side was scaled to augment.resize), and colorize's default
    // resolution ('auto') uses it for the local path; the ab it predicts is upsampled onto the full-size L.
    // 3. Colorize the held-apart photos, as `pipe colorize --model runs/demo` would: no resolution given.
    log(`[3/4] colorizing the held-apart photos (local path at the training scale: short side ${config.augment.resize} px; output at full size)`);
    const colorized = join(out, 'colorized');
    const summary = await colorizeGraph({ input: join(photos, 'heldout'), out: colorized, model: join(out, 'model'), tfjsBackend: engine, overwrite: true, quiet: true, stop });
    if (stop.aborted) return 0;

    // 4. Evaluate and report.
    log('[4/4] evaluating');
    const ev = await evaluateFolder({ input: join(photos, 'heldout'), model: join(out, 'model'), tfjsBackend: engine, log: null, signal: stop });
    const grid = await heldoutGrid(join(photos, 'heldout'), colorized, 12);
    await writeFileAtomic(join(out, 'heldout.png'), grid);
    await writeReport({ runDir: out, title: 'colorpipe demo', extraHtml: demoHtml(ev, summary.written) });
    log('\n' + formatEvalTable(ev));
    log(`\ncolorpipe demo: done in ${((performance.now() - t0) / 60000).toFixed(1)} min.`);
    log(`  report:      ${join(out, 'report.html')}`);
    log(`  colorized:   ${colorized}/`);
    log(`  model:       ${join(out, 'model', 'model.json')}`);
    return 0;
  });
}

async function countFiles(dir: string): Promise<number> {
  return (await listImageFiles(dir)).length;
}

async function rgbOf(path: string): Promise<RgbImage> {
  const { data, info } = await sharp(path).rotate().removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, rgb: new Uint8Array(data.buffer, data.byteOffset, data.length) };
}

/** Rows of (grayscale input | colorized | original) for the first `n` held-apart photos. */
export async function heldoutGrid(inputDir: string, colorizedDir: string, n: number): Promise<Buffer> {
  const rows: RgbImage[][] = [];
  for (const f of (await listImageFiles(inputDir)).slice(0, n)) {
    const orig = await rgbOf(f.abs);
    const colPath = join(colorizedDir, f.relPath);
    if (!(await exists(colPath))) continue;
    const col = await rgbOf(colPath);
    const { L } = splitLab(orig.rgb);
    const gray = mergeLab(L, new Float32Array(L.length * 2).fill(128 / 255));
    rows.push([{ ...orig, rgb: gray }, col, orig]);
  }
  return makeGrid(rows, 160);
}

function demoHtml(ev: EvalSummary, written: number): string {
  const row = (name: string, f: { psnr?: number; colourfulness: number }) =>
    `<tr><th style="text-align:left">${name}</th><td>${f.psnr !== undefined ? f.psnr.toFixed(2) : ''}</td><td>${f.colourfulness.toFixed(2)}</td></tr>`;
  return `<h2>Held-apart photos (${ev.images} evaluated, ${written} colorized)</h2>
<table><tr><th></th><th>PSNR (dB, RGB)</th><th>colourfulness</th></tr>
${row('model', ev.model)}${row('grayscale (ab = 0)', ev.grayscale)}${row(`constant mean ab (${ev.meanAb.a.toFixed(1)}, ${ev.meanAb.b.toFixed(1)})`, ev.meanAb)}${row('original', { colourfulness: ev.original.colourfulness })}</table>
<figure><figcaption>grayscale input | colorized | original</figcaption><img src="heldout.png" alt="held-apart photos"></figure>`;
}
