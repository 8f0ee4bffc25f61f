/**
 * The PyTorch training engine: the training engine contract (src/network/train-engine.ts) over a worker process per
 * device (worker.ts) fed through a shared-memory ring (ring.ts). The network is built in the worker from the same
 * layer table; weights and optimizer slots cross in colorpipe's names and layouts, so checkpoints are the tfjs
 * engine's format and a run moves between engines.
 *
 * Depth 2: the train stage hands the worker step k+1 while it runs step k, and the worker launches k+1 before it
 * reads k's loss, so a GPU never waits for Node between steps.
 *
 * Data parallel (`dist`): one engine per rank, each with its own worker; the workers form a torch.distributed
 * group (NCCL on CUDA, gloo on the CPU) and DistributedDataParallel averages the gradients. A stop (Ctrl-C) is
 * agreed between ranks (coordinateStop) so every rank checkpoints after the same step.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import type { Config } from '../config.js';
import type { LabBatch } from '../types.js';
import { InvalidOptionError } from '../core/errors.js';
import { layerTable } from '../network/table.js';
import { slotNames } from '../network/training.js';
import { floatCount, orderWeights, weightSpecs, type NamedWeight, type WeightSpec } from '../network/weights.js';
import { probeTorch, pythonOf, type TorchInfo } from './python.js';
import { Ring, ownedPath, shmDir, slotBytes } from './ring.js';
import { TorchWorker } from './worker.js';
import type { TrainEngine } from '../network/train-engine.js';

export type TorchDevice = 'auto' | 'cpu' | 'cuda';
export const TORCH_DEVICES: readonly TorchDevice[] = ['auto', 'cpu', 'cuda'];
export type Precision = 'fp32' | 'tf32' | 'bf16';
export const PRECISIONS: readonly Precision[] = ['fp32', 'tf32', 'bf16'];

/** Where a rank stands in a data-parallel run (src/torch/dist.ts works it out). */
export interface RankPlace {
  rank: number;
  world: number;
  /** The rank's index on its machine: its GPU. */
  localRank: number;
  /** The rendezvous: rank 0's machine and a free port there. */
  addr: string;
  port: number;
  /** Seconds a collective may wait for the other ranks before the run fails (a rank that hangs). */
  timeoutS: number;
}

export interface TorchEngineOptions {
  config: Config;
  /** The Python with torch (default: $COLORPIPE_PYTHON, else python3). */
  python?: string;
  device?: TorchDevice;
  precision?: Precision;
  /** torch's CPU threads (default: the cores, shared among the ranks on this machine). */
  threads?: number;
  /** torch.compile the network (torch >= 2). */
  compile?: boolean;
  /** Data parallel: this rank's place (absent: one process). */
  dist?: RankPlace;
  /** Ranks on this machine (for the thread default). */
  localWorld?: number;
  /** Synchronized batch norm across ranks (CUDA only). */
  syncBn?: boolean;
}

export interface TorchTrainEngine extends TrainEngine {
  readonly runtime: 'torch';
  readonly info: TorchInfo;
  /** The worker process's pid. */
  readonly pid: number | undefined;
  gather(text: string): Promise<string[] | null>;
  coordinateStop(local: AbortSignal, startStep: number): { stop: AbortSignal; syncAfter: (step: number) => boolean };
}

const DEPTH = 2;

/**
 * Starts a worker and builds the network in it.
 * @throws InvalidOptionError (exit 2) when torch is missing or too old, or a device or precision it cannot
 *   give; ColorpipeError 'ERR_TORCH_WORKER' when the worker fails to start.
 */
export async function torchTrainEngine(o: TorchEngineOptions): Promise<TorchTrainEngine> {
  const info = await probeTorch(pythonOf(o.python));
  const want = o.device ?? 'auto';
  if (want === 'cuda' && !info.cuda) throw new InvalidOptionError(`--device cuda: torch ${info.torch} (${info.python}) sees no CUDA device`);
  const device = want === 'auto' ? (info.cuda ? 'cuda' : 'cpu') : want;
  const precision = o.precision ?? 'fp32';
  if (o.syncBn && device !== 'cuda') throw new InvalidOptionError('--sync-bn needs CUDA (torch\'s SyncBatchNorm runs on GPUs only); drop it on the CPU');
  const { config } = o;
  const table = layerTable(config.model);
  const specs = weightSpecs(table);
  const trainable = specs.filter((s) => s.trainable);
  const threads = o.threads ?? (device === 'cpu' ? Math.max(1, Math.floor(os.availableParallelism() / (o.localWorld ?? 1))) : 0);
  const S = config.model.inputSize;
  const ring = await Ring.create(DEPTH + 1, slotBytes(Math.max(config.train.batch, 16), S));
  // OpenMP's threads sleep rather than spin while they wait: on cores shared with the decode processes (or other
  // work), spinning threads made steps 10 to 20 times slower. A user's own setting wins.
  const env: NodeJS.ProcessEnv = { OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE' };
  if (threads > 0) env.OMP_NUM_THREADS = String(threads);
  const worker = new TorchWorker(info.python, env);
  let started: Record<string, unknown>;
  try {
    started = await worker.request('init', {
      table,
      train: { optimizer: config.train.optimizer, lr: config.train.lr, lrDecay: config.train.lrDecay, steps: config.train.steps, alpha: config.train.alpha, seed: config.train.seed },
      specs: specs.map((s) => ({ name: s.name, shape: s.shape, trainable: s.trainable })),
      device, precision, threads, compile: Boolean(o.compile), syncBn: Boolean(o.syncBn),
      dist: o.dist ? { rank: o.dist.rank, world: o.dist.world, localRank: o.dist.localRank, addr: o.dist.addr, port: o.dist.port, timeout: o.dist.timeoutS } : null,
      ring: { path: ring.path, slots: ring.slots, slotBytes: ring.slotBytes },
    });
  } catch (err) {
    await worker.close();
    await ring.close();
    throw err;
  } finally {
    await ring.unlink();
  }

  const world = o.dist?.world ?? 1;
  const rank = o.dist?.rank ?? 0;
  const devName = device === 'cuda' ? `cuda (${String(started.cuda ?? info.deviceName)})` : `cpu, ${String(started.threads)} thread${started.threads === 1 ? '' : 's'}`;
  const describe = `torch ${info.torch} ${devName}, ${precision}${o.compile ? ', compiled' : ''}` +
    (world > 1 ? `, rank ${rank} of ${world} (${device === 'cuda' ? 'nccl' : 'gloo'})` : '');
  const free = Array.from({ length: ring.slots }, (_, i) => i);
  // Writes and requests go out in call order, whatever order the writes finish in.
  let sendChain: Promise<unknown> = Promise.resolve();
  let localStop: AbortSignal | null = null;
  let completed = 0;
  let stopTarget: number | null = null;
  const agreed = new AbortController();
  let stepBase = 0;
  let released = false;

  const labelled = (b: LabBatch) => {
    let n = 0;
    for (let i = 0; i < b.size; i++) if (b.cls[i]! >= 0) n++;
    return n;
  };
  const send = <T extends Record<string, unknown>>(b: LabBatch, op: string, extra: Record<string, unknown>) => {
    const slot = free.shift();
    if (slot === undefined) throw new Error(`torch engine: more than ${ring.slots} batches in flight`);
    const reply = sendChain.then(async () => {
      await ring.write(slot, b);
      return worker.request<T>(op, { slot, n: b.size, h: b.height, w: b.width, labelled: labelled(b), ...extra });
    });
    sendChain = reply.catch(() => undefined);
    return { slot, reply };
  };
  const tempFile = (what: string) => ownedPath(shmDir(), what);
  const readFloats = async (path: string) => {
    const b = await fsp.readFile(path);
    const out = new Float32Array(b.byteLength / 4);
    new Uint8Array(out.buffer).set(b);
    return out;
  };
  const split = (data: Float32Array, list: Array<{ name: string; shape: number[] }>): NamedWeight[] => {
    if (data.length !== floatCount(list)) throw new Error(`torch engine: the worker wrote ${data.length} floats, ${floatCount(list)} expected`);
    let at = 0;
    return list.map((s) => {
      const n = floatCount([s]);
      const w = { name: s.name, shape: [...s.shape], data: data.subarray(at, at + n) };
      at += n;
      return w;
    });
  };
  const viaFile = async <T>(what: string, write: Float32Array[] | null, f: (path: string) => Promise<T>): Promise<T> => {
    const path = tempFile(what);
    try {
      if (write) await fsp.writeFile(path, Buffer.concat(write.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength))));
      return await f(path);
    } finally {
      await fsp.rm(path, { force: true });
    }
  };
  const [s0, s1] = slotNames(config.train.optimizer);
  const slotSpecs: Array<Pick<WeightSpec, 'name' | 'shape'>> = [s0, s1].flatMap((sfx) => trainable.map((s) => ({ name: `${s.name}/${sfx}`, shape: s.shape })));

  return {
    runtime: 'torch',
    device,
    describe,
    world,
    rank,
    depth: DEPTH,
    info,
    pid: worker.pid,
    async step(b) {
      const { slot, reply } = send<{ loss: number; mse: number; ce: number; stop: boolean }>(b, 'step', { stop: localStop?.aborted ?? false });
      const r = await reply.finally(() => free.push(slot));
      completed++;
      if (r.stop && stopTarget === null) stopTarget = stepBase + completed + 1;
      if (stopTarget !== null && stepBase + completed >= stopTarget) agreed.abort();
      return { loss: r.loss, mse: r.mse, ce: r.ce };
    },
    async evaluate(b) {
      const px = b.size * b.height * b.width;
      const { slot, reply } = send<{ loss: number; mse: number; ce: number }>(b, 'evaluate', { outOffset: 4 * (3 * px + b.size) });
      try {
        const r = await reply;
        const ab = await ring.read(slot, 4 * (3 * px + b.size), px / 2);
        return { loss: r.loss, mse: r.mse, ce: r.ce, ab };
      } finally {
        free.push(slot);
      }
    },
    weights: () => viaFile('weights', null, async (path) => {
      await worker.request('weights', { path });
      return split(await readFloats(path), specs);
    }),
    async setWeights(weights) {
      const ordered = orderWeights(table, weights, 'the weights given');
      await viaFile('weights', ordered.map((w) => w.data), (path) => worker.request('setWeights', { path }));
    },
    optimizerState: () => viaFile('optimizer', null, async (path) => {
      const r = await worker.request<{ iterations: number }>('optimizer', { path });
      return { iterations: r.iterations, slots: split(await readFloats(path), slotSpecs) };
    }),
    async setOptimizerState(state) {
      const byName = new Map(state.slots.map((s) => [s.name, s]));
      const data = slotSpecs.map((s) => {
        const got = byName.get(s.name);
        if (!got || got.data.length !== floatCount([s])) {
          throw new InvalidOptionError(`The checkpoint's optimizer state has no ${s.name} of shape [${s.shape.join(', ')}] (${config.train.optimizer})`);
        }
        return got.data;
      });
      await viaFile('optimizer', data, (path) => worker.request('setOptimizer', { path, iterations: state.iterations }));
    },
    async gather(text) {
      const r = await worker.request<{ texts: string[] | null }>('gather', { text });
      return r.texts;
    },
    coordinateStop(local, startStep) {
      localStop = local;
      stepBase = startStep;
      return { stop: agreed.signal, syncAfter: (s) => s === stopTarget };
    },
    async release() {
      if (released) return;
      released = true;
      await worker.close();
      await ring.close();
    },
  };
}
