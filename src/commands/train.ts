/** `pipe train`: see the usage text. Ctrl-C once: checkpoint, then exit 130; twice: exit 130 at once. */
import { resolve } from 'node:path';
import { parse, num, required, oneOf, str } from './flags.js';
import { interruptible } from './interrupt.js';
import { withFlagNames, type FlagNames } from './report.js';
import { applyOverrides, loadConfig, makeConfig, resumeConflicts } from '../config.js';
import { BACKENDS, type BackendChoice } from '../tfjs/backend.js';
import { trainGraph } from '../train/graph.js';
import { InvalidOptionError, printable } from '../core/errors.js';
import { latestCheckpoint } from '../train/checkpoint.js';
import { expandShardSpec } from '../webdataset/spec.js';

const USAGE = `Usage: pipe train --shards 'data/*.tar' --out runs/NAME [options]
  --shards GLOB        training shards: globs, brace ranges (data-{000000..000009}.tar), comma-separated lists
  --out DIR            run directory (model/, state.json, metrics.jsonl, report.html)
  --config FILE        configuration (default: the paper's network at 224 px, no class head, Adam, batch 32;
                       configs/ has iizuka2016.json (the paper's recipe), tiny.json (seconds), demo.json)
  --steps N  --batch B  --size S  --width W  --lr LR  --seed S     override the config
  --checkpoint-every N checkpoint interval in steps (a checkpoint is also written at the end and on Ctrl-C)
  --backend B          auto|tensorflow|webgpu|wasm|cpu (default auto)
  --software-gpu       with --backend webgpu: accept a software adapter (Mesa's lavapipe), for correctness
                       checks only (slower than wasm); the same as COLORPIPE_SOFTWARE_GPU=1
  --val-shards GLOB    validation shards: loss and PSNR at each checkpoint, sample grids in report.html
  --resume             continue from the run's last checkpoint (exactly: same data order, no step lost)
  --processes P        decode processes (default: config.loader.processes; 0 there = one per core)
  --on-error skip|fail skip and report bad inputs (default) or stop at the first
  --log-keys           write data-order.jsonl (the sample keys of every step)
  --quiet              no progress bar`;

/**
 * The API's option names, as this command's flags (for the API's errors). `options.urls` is the shard list's
 * name in the shards stage and the loader: --shards; --val-shards is checked here first, under its own name.
 */
export const FLAG_NAMES: FlagNames = {
  shards: '--shards', urls: '--shards', out: '--out', config: '--config', steps: '--steps', backend: '--backend',
  valShards: '--val-shards', processes: '--processes', onError: '--on-error', checkpointEvery: '--checkpoint-every', seed: '--seed',
};

export async function run(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, {
    shards: { type: 'string' }, out: { type: 'string' }, config: { type: 'string' },
    steps: { type: 'string' }, batch: { type: 'string' }, size: { type: 'string' }, width: { type: 'string' },
    lr: { type: 'string' }, seed: { type: 'string' }, backend: { type: 'string' }, 'val-shards': { type: 'string' },
    resume: { type: 'boolean' }, 'checkpoint-every': { type: 'string' }, processes: { type: 'string' }, 'on-error': { type: 'string' },
    'log-keys': { type: 'boolean' }, quiet: { type: 'boolean' }, 'software-gpu': { type: 'boolean' },
  }, USAGE);
  const shards = required(str(v.shards), 'shards', USAGE);
  const out = required(str(v.out), 'out', USAGE);
  // On --resume without --config, the checkpoint's config is the base the flags change.
  // Found (and verified: a damaged newest one is reported here, once) before anything else, and handed on.
  const saved = v.resume ? await latestCheckpoint(resolve(out)) : null;
  const base = v.config ? loadConfig(str(v.config)!) : saved ? saved.state.config : makeConfig({ name: 'default' });
  const config = applyOverrides(base, {
    steps: num(v.steps, 'steps', { int: true, min: 1 }),
    batch: num(v.batch, 'batch', { int: true, min: 1 }),
    size: num(v.size, 'size', { int: true, min: 8 }),
    width: num(v.width, 'width', { min: 0.001 }),
    lr: num(v.lr, 'lr', { min: 0 }),
    seed: num(v.seed, 'seed', { int: true }),
    checkpointEvery: num(v['checkpoint-every'], 'checkpoint-every', { int: true, min: 1 }),
  });
  if (saved) {
    const changes = resumeConflicts(saved.state.config, config);
    if (changes.length > 0) {
      throw new InvalidOptionError(
        `--resume continues ${out} with the model and schedule it was trained with, but ${changes.length === 1 ? 'this differs' : 'these differ'}: ` +
          `${changes.join('; ')} (drop the flag or use the run's config, or train into a new --out; --steps may change)`,
      );
    }
  }
  const backend = oneOf<BackendChoice>(v.backend, 'backend', BACKENDS, 'auto');
  const onError = oneOf(v['on-error'], 'on-error', ['skip', 'fail'] as const, 'skip');

  const valShards = str(v['val-shards']);
  if (valShards !== undefined) {
    // Expanded again by the training graph; checked here so that nothing matching is said of --val-shards.
    await expandShardSpec(valShards).catch((err: unknown) => {
      throw withFlagNames(err, { urls: '--val-shards' });
    });
  }

  return interruptible('writing a checkpoint after this step', async (stop) => {
    const r = await trainGraph({
      shards,
      config, out, backend, onError, valShards,
      resume: Boolean(v.resume),
      ...(v.resume ? { checkpoint: saved } : {}),
      steps: num(v.steps, 'steps', { int: true, min: 1 }),
      processes: num(v.processes, 'processes', { int: true, min: 0 }),
      stop,
      quiet: Boolean(v.quiet),
      logKeys: Boolean(v['log-keys']),
      ...(v['software-gpu'] ? { softwareGpu: true } : {}),
    });
    const bad = r.badInputs.total ? `, ${r.badInputs.total} inputs skipped (${Object.entries(r.badInputs.byStage).map(([k, n]) => `${k}: ${n}`).join(', ')})` : '';
    process.stderr.write(
      `colorpipe: ${r.stopped ? 'stopped' : 'done'} at step ${r.steps} on ${r.engine}: loss ${r.lastLoss.toFixed(5)}, ` +
      `${r.meanImgPerS.toFixed(1)} img/s, data stall ${(r.meanDataStall * 100).toFixed(1)}%${bad}\n` +
      `  model:  ${printable(resolve(out, 'model', 'model.json'))}\n  report: ${printable(resolve(out, 'report.html'))}\n`,
    );
    // Interrupted: the checkpoint is written, and interruptible makes the status 130, as in every command.
    return 0;
  });
}
