/**
 * `pipe bench fidelity [--engine tfjs|onnx|torch] [--json] [--steps N] [--full]`: does colorpipe train the network
 * *correctly*? Trains it (configs/demo.json; tfjs on wasm, or the engine named) and the same network in PyTorch
 * float64 (the PyTorch engine's, bench/torch_fidelity.py)
 * from the same initial weights on the same batches with the same optimizer and learning rates, and compares
 * the per-step losses (issue 12; target: within 1% over the first 50 steps; the first step, a forward pass on
 * identical weights and data, must agree to float noise).
 *
 *   1. shards of demo/photos (as `pipe demo` makes them); colorpipe's initial weights (buildColorizer with the
 *      config's seed) in colorpipe's names and layout, which torch_fidelity.py converts as the engine does; the
 *      engine under test starts from them (setWeights), whichever it is;
 *   2. colorpipe trains with trainGraph on that engine, the path `pipe train` and `pipe demo` run (loader processes, shuffle,
 *      batch, prefetch), and every batch it trains on is dumped (bench/fidelity-data.ts);
 *   3. without --full: the dumped batches are replayed through a second engine of the same kind from the same
 *      initial weights (its losses must equal trainGraph's bit for bit: the dump is exact, the engines
 *      deterministic) and its weights are saved after step 1 and step N; on tfjs, step 1's gradients too;
 *   4. PyTorch trains on the dump; per-step losses, weights after step 1 and N compared;
 *   5. --full (the demo's whole schedule): both final models colorize the 36 held-apart photos at the demo's
 *      resolution through colorpipe's own eval (src/eval.ts; the PyTorch weights loaded into a Colorizer), so
 *      only the training differs. Target: PSNR within 0.15 dB.
 *
 * Needs /usr/bin/python3 with torch (Debian: python3-torch). Prints one JSON object (--json: compact).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../src/config.js';
import { Reporter } from '../src/core/errors.js';
import { writeShards } from '../src/shard/graph.js';
import { setupTfjs, type TfjsBackend } from '../src/tfjs/backend.js';
import { buildColorizer, colorizerWeights, disposeColorizer, loadColorizer, saveColorizer, setColorizerWeights } from '../src/tfjs/network.js';
import { createTrainEngine, type CreateEngineOptions } from '../src/train/engines.js';
import type { StepLosses, TrainEngine } from '../src/network/train-engine.js';
import { createOptimizer, ColorpipeAdam, ColorpipeAdadelta } from '../src/tfjs/optimizers.js';
import type { NamedWeight } from '../src/network/weights.js';
import type { LabBatch } from '../src/types.js';
import type { Scalar, Tensor, Variable } from '@tensorflow/tfjs-core';
import { trainGraph } from '../src/train/graph.js';
import { evaluateFolder } from '../src/colorize/eval.js';
import { BatchDump, openBatchDump, readTensors, writeTensors } from './fidelity-data.js';
import { forEachArg, median } from './args.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TARGET_REL = 0.01;
const TARGET_DB = 0.15;

export type FidelityEngine = 'tfjs' | 'onnx' | 'torch';

export interface FidelityOptions {
  /** The engine under test (default tfjs, on wasm). */
  engine?: FidelityEngine;
  steps?: number;
  full?: boolean;
  /** Overrides the config's numClasses (the demo has none): exercises the classification loss too. */
  classes?: number;
  python?: string;
  threads?: number;
  config?: string;
  keep?: boolean;
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);

/**
 * Per tensor: ||a - b|| / ||b - base|| (L2), with `base` the initial weights: how far apart the two runs are
 * relative to how far training moved the weight. Without `base`: ||a - b|| / ||b|| (gradients).
 * Adam turns a gradient element near zero, where float rounding decides the sign, into a full +-lr step, so
 * an elementwise maximum says little; the L2 ratio weighs each difference by its size.
 */
export function weightDiffs(a: NamedWeight[], b: NamedWeight[], base?: NamedWeight[]): Array<{ name: string; rel: number }> {
  const byName = new Map(b.map((w) => [w.name, w]));
  const baseByName = new Map((base ?? []).map((w) => [w.name, w]));
  return a.map((w) => {
    const o = byName.get(w.name);
    if (!o || o.data.length !== w.data.length) return { name: w.name, rel: Infinity };
    const z = baseByName.get(w.name)?.data;
    let d = 0;
    let m = 0;
    for (let i = 0; i < w.data.length; i++) {
      d += (w.data[i]! - o.data[i]!) ** 2;
      m += (o.data[i]! - (z ? z[i]! : 0)) ** 2;
    }
    return { name: w.name, rel: d === 0 ? 0 : Math.sqrt(d / Math.max(m, 1e-60)) };
  });
}

/** colorpipe's gradients of step 1's loss (trainer.ts's, on the initial weights), colorpipe's names and layout. */
async function initialGrads(engine: TfjsBackend, config: Config, b: LabBatch): Promise<NamedWeight[]> {
  const tf = engine.tf;
  const c = buildColorizer(config.model, { seed: config.train.seed });
  const slots = c.infer.layers.flatMap((l) => l.weights).filter((w) => w.trainable).map((w) => ({ name: w.originalName, shape: [...w.shape] as number[], variable: w.read() as Variable }));
  const S = config.model.inputSize;
  const n = b.size;
  const { grads, value } = tf.variableGrads(() => {
    const L = tf.tensor4d(b.L, [n, S, S, 1]);
    const target = tf.avgPool(tf.tensor4d(b.ab, [n, S, S, 2]), 2, 2, 'valid');
    const outs = c.train.apply(L, { training: true }) as Tensor | Tensor[];
    const [ab, logits] = Array.isArray(outs) ? outs : [outs];
    let loss = tf.mean(tf.squaredDifference(ab!, target));
    const labelled = Array.from(b.cls).filter((k) => k >= 0).length;
    if (logits && labelled > 0) {
      const mask = tf.tensor1d(Float32Array.from(b.cls, (k) => (k >= 0 ? 1 : 0)));
      const onehot = tf.oneHot(tf.tensor1d(Int32Array.from(b.cls, (k) => Math.max(k, 0)), 'int32'), config.model.numClasses);
      const nll = tf.neg(tf.sum(tf.mul(onehot, tf.logSoftmax(logits)), -1));
      loss = tf.add(loss, tf.mul(tf.div(tf.sum(tf.mul(nll, mask)), labelled), config.train.alpha));
    }
    return loss as Scalar;
  }, slots.map((w) => w.variable));
  const out: NamedWeight[] = [];
  for (const w of slots) {
    const g = grads[w.variable.name]!;
    out.push({ name: w.name, shape: w.shape, data: (await g.data()) as Float32Array });
  }
  tf.dispose([value, ...Object.values(grads)]);
  disposeColorizer(c);
  return out;
}

function worst(diffs: Array<{ name: string; rel: number }>, n = 5) {
  return [...diffs].sort((x, y) => y.rel - x.rel).slice(0, n);
}

async function demoShards(dir: string): Promise<{ train: string; heldout: string }> {
  const photos = join(ROOT, 'demo', 'photos');
  const train = join(dir, 'shards', 'train');
  const heldout = join(dir, 'shards', 'heldout');
  const reporter = new Reporter({ log: null });
  await writeShards({ input: join(photos, 'train'), output: train, maxcount: 64, labels: 'dirs', reporter });
  await writeShards({ input: join(photos, 'heldout'), output: heldout, maxcount: 64, labels: 'none', reporter });
  return { train: join(train, '*.tar'), heldout: join(heldout, '*.tar') };
}

function optimizerSettings(config: Config) {
  const o = createOptimizer(config.train);
  const lr: number[] = [];
  const at = (t: number) => config.train.lr * (o instanceof ColorpipeAdam || o instanceof ColorpipeAdadelta ? (o.lrSchedule ? o.lrSchedule(t) : 1) : 1);
  for (let t = 1; t <= config.train.steps; t++) lr.push(at(t));
  const settings =
    o instanceof ColorpipeAdam
      ? { type: 'adam', beta1: o.beta1, beta2: o.beta2, epsilon: o.epsilon }
      : { type: 'adadelta', rho: (o as ColorpipeAdadelta).rho, epsilon: (o as ColorpipeAdadelta).epsilon };
  o.dispose();
  return { settings, lr };
}

/** The engine under test, from the initial weights (every engine starts where PyTorch does). */
async function engineFrom(options: CreateEngineOptions, init: NamedWeight[]): Promise<TrainEngine> {
  const e = await createTrainEngine(options);
  try {
    await e.setWeights(init);
  } catch (err) {
    await e.release();
    throw err;
  }
  return e;
}

/** Replays the dump through a fresh engine from the initial weights; weights saved after `snapshots`. */
async function replay(options: CreateEngineOptions, init: NamedWeight[], dumpDir: string, steps: number, snapshots: number[], out: string): Promise<StepLosses[]> {
  const e = await engineFrom(options, init);
  const dump = openBatchDump(dumpDir);
  const results: StepLosses[] = [];
  try {
    for (let i = 0; i < steps; i++) {
      results.push(await e.step(dump.batch(i)));
      if (snapshots.includes(i + 1)) writeTensors(join(out, `colorpipe_after_${i + 1}`), await e.weights());
    }
  } finally {
    dump.close();
    await e.release();
  }
  return results;
}

export async function benchFidelity(o: FidelityOptions = {}): Promise<Record<string, unknown>> {
  const t0 = performance.now();
  const log = (s: string) => process.stderr.write(`bench fidelity: ${s}\n`);
  let config = loadConfig(o.config ?? join(ROOT, 'configs', 'demo.json'));
  if (o.classes !== undefined) config = { ...config, model: { ...config.model, numClasses: o.classes } };
  const steps = o.full ? config.train.steps : Math.min(o.steps ?? 50, config.train.steps);
  const dir = mkdtempSync(join(tmpdir(), 'colorpipe-fidelity-'));
  try {
    const engine = await setupTfjs({ backend: 'wasm' });
    const shards = await demoShards(dir);
    const init = buildColorizer(config.model, { seed: config.train.seed });
    const initWeights = await colorizerWeights(init);
    writeTensors(join(dir, 'init'), initWeights);
    const table = init.table;
    disposeColorizer(init);

    // colorpipe: the real training graph on the engine under test, every batch dumped as it is trained on.
    const engineOptions: CreateEngineOptions = { engine: o.engine ?? 'tfjs', config, tfjsBackend: engine };
    if (o.engine === 'torch') engineOptions.python = o.python ?? '/usr/bin/python3';
    const trained = await engineFrom(engineOptions, initWeights);
    log(`colorpipe: ${steps} steps of ${config.name} (trainGraph, ${trained.describe})`);
    mkdirSync(join(dir, 'batches'));
    const dump = new BatchDump(join(dir, 'batches'), config.train.batch, config.model.inputSize);
    const graphSteps: StepLosses[] = [];
    const stop = new AbortController();
    const tTrain = performance.now();
    try {
      await trainGraph({
        shards: shards.train, valShards: shards.heldout, config, out: join(dir, 'run'), engine: trained, quiet: true,
        stop: stop.signal,
        onBatch: (b, step) => {
          if (step <= steps) dump.append(b);
        },
        onStep: (r) => {
          if (r.step <= steps) graphSteps.push({ loss: r.loss, mse: r.mse, ce: r.ce });
          if (r.step >= steps && steps < config.train.steps) stop.abort();
        },
      });
    } finally {
      dump.close();
      await trained.release();
    }
    const colorpipeSeconds = (performance.now() - tTrain) / 1000;
    const engineDescribe = trained.describe;

    const snapshots = o.full ? [steps] : [1, steps];
    let replayIdentical: boolean | undefined;
    const dumpDir = join(dir, 'batches');
    // Step 1's gradients: tfjs's (the other engines return updated weights, not gradients).
    const tfjsUnderTest = engineOptions.engine === 'tfjs';
    if (tfjsUnderTest) {
      const d = openBatchDump(dumpDir);
      writeTensors(join(dir, 'colorpipe_grad_1'), await initialGrads(engine, config, d.batch(0)));
      d.close();
    }
    if (!o.full) {
      log('colorpipe: replaying the dumped batches through a second engine');
      const again = await replay(engineOptions, initWeights, dumpDir, steps, snapshots, dir);
      replayIdentical = again.every((r, i) => r.loss === graphSteps[i]!.loss && r.mse === graphSteps[i]!.mse);
    }

    const { settings, lr } = optimizerSettings(config);
    writeFileSync(join(dir, 'run.json'), JSON.stringify({ table, steps, alpha: config.train.alpha, optimizer: settings, lr, snapshots }));
    log(`pytorch: ${steps} steps on the same batches`);
    const python = o.python ?? '/usr/bin/python3';
    // One thread by default: deterministic, and the machine's cores may be shared (threads only add waiting then).
    const args = [join(ROOT, 'bench', 'torch_fidelity.py'), dir, '--threads', String(o.threads ?? 1)];
    type TorchRun = { torch: string; threads: number; dtype: string; seconds: number; loss: number[]; mse: number[]; ce: number[] };
    const torchRun = (extra: string[]): TorchRun => {
      const r = spawnSync(python, [...args, ...extra], { encoding: 'utf8', maxBuffer: 64 << 20 });
      if (r.status !== 0) throw new Error(`torch_fidelity.py failed (${r.status}): ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as TorchRun;
    };
    // The reference: PyTorch in float64; the noise floor: PyTorch in float32 (its own rounding) against it.
    // --full swaps them (float64 convolutions on the CPU are ~15x slower): the model trained the whole schedule
    // is PyTorch's ordinary float32 one, and float64 runs the first 50 steps for the floor.
    const [refDtype, floorDtype] = o.full ? ['float32', 'float64'] : ['float64', 'float32'];
    const torch = torchRun(['--dtype', refDtype]);
    log(`pytorch again in ${floorDtype} (the float-noise floor)`);
    const torch1 = torchRun(['--dtype', floorDtype, '--tag', 'torchfloor', '--steps', String(o.full ? Math.min(50, steps) : steps)]);

    const per = graphSteps.map((c, i) => ({
      step: i + 1,
      colorpipe: c.loss,
      pytorch: torch.loss[i]!,
      rel: rel(c.loss, torch.loss[i]!),
      [`pytorch_${floorDtype}`]: torch1.loss[i],
      ...(config.model.numClasses > 0 ? { mse: [c.mse, torch.mse[i]!], ce: [c.ce, torch.ce[i]!] } : {}),
    }));
    const first = per.slice(0, 50);
    const maxRel = Math.max(...first.map((p) => p.rel));
    const floor = torch1.loss.slice(0, first.length).map((l, i) => rel(l, torch.loss[i]!));
    const grads = tfjsUnderTest ? weightDiffs(readTensors(join(dir, 'colorpipe_grad_1')), readTensors(join(dir, 'torch_grad_1'))) : null;
    const gradsFloor = weightDiffs(readTensors(join(dir, 'torchfloor_grad_1')), readTensors(join(dir, 'torch_grad_1')));
    const result: Record<string, unknown> = {
      config: { name: config.name, model: config.model, batch: config.train.batch, optimizer: settings, lr: config.train.lr, lrDecay: config.train.lrDecay, steps, alpha: config.train.alpha },
      engine: engineDescribe,
      torch: { version: torch.torch, threads: torch.threads, reference: refDtype, floor: floorDtype },
      step1_rel_loss_diff: per[0]!.rel,
      step1_grad_rel_l2: grads ? { max: Math.max(...grads.map((x) => x.rel)), worst: worst(grads, 3), [`pytorch_${floorDtype}`]: Math.max(...gradsFloor.map((x) => x.rel)) } : null,
      max_rel_loss_diff: maxRel,
      noise_floor_max_rel_loss_diff: Math.max(...floor),
      // One step's difference is chaotic once Adam has amplified rounding; the median says more than the maximum.
      median_rel_loss_diff: median(first.map((p) => p.rel)),
      noise_floor_median_rel_loss_diff: median(floor),
      max_rel_loss_diff_steps: first.length,
      target: TARGET_REL,
      verdict: maxRel <= TARGET_REL ? 'pass' : 'fail',
      // PyTorch's own float32 run strays this far from the float64 reference: below it, float32 cannot do better.
      within_float_noise_floor: maxRel <= Math.max(...floor),
      graph_replay_identical: replayIdentical,
      seconds: { colorpipe: colorpipeSeconds, pytorch: torch.seconds, [`pytorch_${floorDtype}`]: torch1.seconds },
    };
    if (o.full) {
      // The demo's own final checkpoint (trainGraph saves the model at the last step).
      const final = await loadColorizer(join(dir, 'run', 'model'));
      writeTensors(join(dir, `colorpipe_after_${steps}`), await colorizerWeights(final));
      disposeColorizer(final);
    }
    const initW = readTensors(join(dir, 'init'));
    for (const s of snapshots) {
      const d = weightDiffs(readTensors(join(dir, `colorpipe_after_${s}`)), readTensors(join(dir, `torch_after_${s}`)), initW);
      const floorFile = join(dir, `torchfloor_after_${s}`);
      const f = existsSync(`${floorFile}.json`) ? Math.max(...weightDiffs(readTensors(floorFile), readTensors(join(dir, `torch_after_${s}`)), initW).map((x) => x.rel)) : undefined;
      result[`weights_after_${s}`] = { max_rel_to_update: Math.max(...d.map((x) => x.rel)), worst: worst(d, 3), noise_floor: f };
    }
    if (o.full) {
      log('evaluating both models on the held-apart photos');
      const resolution = Math.max(8, Math.round((config.augment.resize * 4) / 3 / 8) * 8);
      const torchModel = buildColorizer(config.model, { seed: config.train.seed });
      setColorizerWeights(torchModel, readTensors(join(dir, `torch_after_${steps}`)), `torch_after_${steps}`);
      await saveColorizer(torchModel, join(dir, 'torch-model'));
      disposeColorizer(torchModel);
      const heldout = join(ROOT, 'demo', 'photos', 'heldout');
      const evalOf = async (model: string) => (await evaluateFolder({ input: heldout, model, tfjsBackend: engine, log: null, resolution })).model.psnr;
      const cp = await evalOf(join(dir, 'run', 'model'));
      const pt = await evalOf(join(dir, 'torch-model'));
      result['psnr'] = { resolution, images: 36, colorpipe: cp, pytorch: pt, diff_db: cp - pt, target_db: TARGET_DB, verdict: Math.abs(cp - pt) <= TARGET_DB ? 'pass' : 'fail' };
      result['final_loss'] = { colorpipe: per[per.length - 1]!.colorpipe, pytorch: per[per.length - 1]!.pytorch };
    }
    result['steps'] = o.full ? per.filter((p) => p.step <= 50 || p.step % 50 === 0) : per;
    result['seconds_total'] = (performance.now() - t0) / 1000;
    return result;
  } finally {
    if (o.keep) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

function parseArgs(argv: string[]): FidelityOptions & { json?: boolean } {
  const o: FidelityOptions & { json?: boolean } = {};
  forEachArg(argv, (a, next) => {
    switch (a) {
      case '--engine': {
        const e = next();
        if (e !== 'tfjs' && e !== 'onnx' && e !== 'torch') throw new Error(`--engine: tfjs, onnx or torch, not ${e}`);
        o.engine = e;
        break;
      }
      case '--steps': o.steps = Number(next()); break;
      case '--full': o.full = true; break;
      case '--json': o.json = true; break;
      case '--classes': o.classes = Number(next()); break;
      case '--python': o.python = next(); break;
      case '--threads': o.threads = Number(next()); break;
      case '--config': o.config = next(); break;
      case '--keep': o.keep = true; break;
      default: throw new Error(`unknown option ${a}`);
    }
  });
  return o;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const o = parseArgs(process.argv.slice(2));
  benchFidelity(o)
    .then((r) => process.stdout.write(JSON.stringify(r, null, o.json ? undefined : 2) + '\n'))
    .catch((err: unknown) => {
      process.stderr.write(`bench fidelity: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    });
}
