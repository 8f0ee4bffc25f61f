/** `pipe train`: see the usage text. Ctrl-C once: checkpoint, then exit 130; twice: exit 130 at once. */
import { existsSync, rmdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { ON_ERROR, boolean, flagNames, int, number, oneOf, parseFlags, string, usage, type FlagTable } from './flags.js';
import { interruptible } from './interrupt.js';
import { withFlagNames } from './report.js';
import { applyOverrides, loadConfig, makeConfig, resumeConflicts } from '../config.js';
import { BACKENDS } from '../tfjs/backend.js';
import { trainGraph } from '../train/graph.js';
import { ENGINES, checkEngineFlags } from '../train/engines.js';
import { TORCH_FLAGS, torchOptions, launchRanks } from './launch.js';
import { InvalidOptionError, printable } from '../core/errors.js';
import { lockFolder } from '../core/lock.js';
import { latestCheckpoint } from '../train/checkpoint.js';
import { expandShardSpec } from '../webdataset/spec.js';

export const FLAGS = {
  shards: {
    // `options.urls` is the shard list's name in the shards stage and the loader.
    option: ['shards', 'urls'],
    kind: string({ required: true }),
    value: 'GLOB',
    help: 'training shards: globs, brace ranges (data-{000000..000009}.tar), comma-separated lists',
  },
  out: { option: 'out', kind: string({ required: true }), value: 'DIR', help: 'run directory (model/, state.json, metrics.jsonl, report.html)' },
  config: {
    option: 'config',
    kind: string(),
    value: 'FILE',
    help:
      "configuration (default: the paper's network at 224 px, no class head, Adam, batch 32; configs/ has " +
      "iizuka2016.json (the paper's recipe), tiny.json (seconds), demo.json)",
  },
  steps: { option: 'steps', kind: int({ min: 1 }), value: 'N', help: "training steps (overrides the config's train.steps)" },
  batch: { kind: int({ min: 1 }), value: 'B', help: 'images per step (overrides train.batch)' },
  size: { kind: int({ min: 8 }), value: 'S', help: "the network's input side in pixels, a multiple of 8 (overrides model.inputSize and the crop)" },
  width: { kind: number({ min: 0.001 }), value: 'W', help: "the network's channel-width multiplier (overrides model.width)" },
  lr: { kind: number({ min: 0 }), value: 'LR', help: 'learning rate (overrides train.lr)' },
  seed: { option: 'seed', kind: int(), value: 'S', help: 'random seed (overrides train.seed)' },
  'checkpoint-every': {
    option: 'checkpointEvery',
    kind: int({ min: 1 }),
    value: 'N',
    help: 'checkpoint interval in steps (a checkpoint is also written at the end and on Ctrl-C)',
  },
  engine: {
    option: 'engine',
    kind: oneOf(ENGINES, 'auto'),
    value: 'E',
    help:
      'auto (default: torch when its Python has torch and it sees a CUDA GPU, else onnx, else tfjs)|tfjs (pure JavaScript, ' +
      'this process)|torch (a PyTorch worker per device, fed by this pipeline)|onnx (a training graph on ONNX Runtime, ' +
      'this process: CPU, or --device cuda where its CUDA provider is installed)',
  },
  backend: { option: 'backend', kind: oneOf(BACKENDS, 'auto'), value: 'B', help: "tfjs's backend: auto|tensorflow|webgpu|wasm|cpu (default auto)" },
  'software-gpu': {
    kind: boolean,
    help: "with --backend webgpu: accept a software adapter (Mesa's lavapipe), for correctness checks only (slower than wasm); the same as COLORPIPE_SOFTWARE_GPU=1",
  },
  // Checked here first, under its own name (see run).
  ...TORCH_FLAGS,
  'val-shards': { option: 'valShards', kind: string(), value: 'GLOB', help: 'validation shards: loss and PSNR at each checkpoint, sample grids in report.html' },
  resume: { kind: boolean, help: "continue from the run's last checkpoint (exactly: same data order, no step lost)" },
  processes: { option: 'processes', kind: int({ min: 0 }), value: 'P', help: 'decode processes (default: config.loader.processes; 0 there = one per core)' },
  'on-error': ON_ERROR,
  'log-keys': { kind: boolean, help: 'write data-order.jsonl (the sample keys of every step)' },
  quiet: { kind: boolean, help: 'no progress bar' },
} satisfies FlagTable;

export const USAGE = usage(`Usage: pipe train --shards 'data/*.tar' --out runs/NAME [options]`, FLAGS);
/** The API's option names, as this command's flags (for the API's errors). */
export const FLAG_NAMES = flagNames(FLAGS);

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(argv, FLAGS, USAGE);
  const { shards, out } = v;
  // Checked before the run directory is made: a wrong --config, --size or --val-shards leaves no folder behind.
  // (With --resume the base config is the checkpoint's, read once the run is locked.)
  const fromFile = v.config ? loadConfig(v.config) : null;
  const overrides = { steps: v.steps, batch: v.batch, size: v.size, width: v.width, lr: v.lr, seed: v.seed, checkpointEvery: v['checkpoint-every'] };
  const fresh = v.resume ? null : applyOverrides(fromFile ?? makeConfig({ name: 'default' }), overrides);
  const { backend, 'on-error': onError, 'val-shards': valShards } = v;
  // Flags of another engine: refused before ranks start or a folder is made.
  if (v.engine !== 'auto') checkEngineFlags(v.engine, { backend, softwareGpu: v['software-gpu'], ...torchOptions(v) });
  if (valShards !== undefined) {
    // Expanded again by the training graph; checked here so that nothing matching is said of --val-shards.
    await expandShardSpec(valShards).catch((err: unknown) => {
      throw withFlagNames(err, { urls: '--val-shards' });
    });
  }
  // Data parallel: this process's place, and the ranks of this machine it starts (launch.ts).
  const launch = await launchRanks(v, argv);
  // Rank 0 writes the run directory: it holds the directory's lock (core/lock.ts) from before --resume reads it
  // (another run's retention could be removing checkpoints) to the end.
  const existed = existsSync(resolve(out));
  const lock = (launch.dist?.rank ?? 0) === 0 ? await lockFolder(resolve(out), 'pipe train') : null;
  try {
    // On --resume without --config, the checkpoint's config is the base the flags change.
    // Found (and verified: a damaged newest one is reported here, once) before anything else, and handed on.
    const saved = v.resume ? await latestCheckpoint(resolve(out)) : null;
    const config = fresh ?? applyOverrides(fromFile ?? (saved ? saved.state.config : makeConfig({ name: 'default' })), overrides);
    if (saved) {
      const changes = resumeConflicts(saved.state.config, config);
      if (changes.length > 0) {
        throw new InvalidOptionError(
          `--resume continues ${out} with the model and schedule it was trained with, but ${changes.length === 1 ? 'this differs' : 'these differ'}: ` +
            `${changes.join('; ')} (drop the flag or use the run's config, or train into a new --out; --steps may change)`,
        );
      }
    }
    return await interruptible('writing a checkpoint after this step', (stop) => launch.supervise(stop, async (signal) => {
      const r = await trainGraph({
        shards,
        config, out, backend, onError, valShards,
        engine: launch.dist ? 'torch' : v.engine,
        torch: torchOptions(v),
        ...(launch.dist ? { dist: launch.dist } : {}),
        signal,
        resume: v.resume,
        ...(v.resume ? { checkpoint: saved } : {}),
        steps: v.steps,
        processes: v.processes,
        stop,
        quiet: v.quiet,
        logKeys: v['log-keys'],
        ...(v['software-gpu'] ? { softwareGpu: true } : {}),
        locked: true,
      });
      if (launch.dist && launch.dist.rank > 0) return 0;
      const bad = r.badInputs.total ? `, ${r.badInputs.total} inputs skipped (${Object.entries(r.badInputs.byStage).map(([k, n]) => `${k}: ${n}`).join(', ')})` : '';
      process.stderr.write(
        `colorpipe: ${r.stopped ? 'stopped' : 'done'} at step ${r.steps} on ${r.engine}: loss ${r.lastLoss.toFixed(5)}, ` +
        `${r.meanImgPerS.toFixed(1)} img/s, data stall ${(r.meanDataStall * 100).toFixed(1)}%${bad}\n` +
        `  model:  ${printable(resolve(out, 'model', 'model.json'))}\n  report: ${printable(resolve(out, 'report.html'))}\n`,
      );
      // Interrupted: the checkpoint is written, and interruptible makes the status 130, as in every command.
      return 0;
    }));
  } finally {
    await lock?.release();
    // A run that failed before writing anything (an engine that cannot start) leaves no empty folder behind.
    if (lock && !existed) {
      try {
        rmdirSync(resolve(out));
      } catch {
        // Not empty (the run wrote something), or gone: nothing to tidy.
      }
    }
  }
}
