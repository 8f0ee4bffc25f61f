/**
 * `pipe train`'s PyTorch and data-parallel flags, and the ranks a machine starts: under `--devices N` (with or
 * without `--nodes`) this process is its machine's first rank and starts N - 1 more `pipe train` processes, one
 * per device, each with its own loader share and PyTorch worker (src/torch/dist.ts says who is who).
 *
 * Supervision: a rank that fails or is killed ends the run on every rank of the machine (its peers' collectives
 * fail at once; this process aborts its own run and names the rank); the ranks this process started watch it
 * through their IPC channel and exit when it is gone. No rank outlives the command.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { ColorpipeError, InvalidOptionError } from '../core/errors.js';
import { PRECISIONS, TORCH_DEVICES, type RankPlace } from '../torch/engine.js';
import { freePort, localRankEnv, rankPlan } from '../torch/dist.js';
import { probeTorch, pythonOf } from '../torch/python.js';
import { boolean, int, oneOf, string, type FlagTable } from './flags.js';

export const TORCH_FLAGS = {
  threads: {
    option: 'threads',
    kind: int({ min: 1 }),
    value: 'T',
    help: "the engine's CPU threads (torch's, ONNX Runtime's or tfjs wasm's): default the cores (tfjs wasm: 1), shared among this machine's ranks",
  },
  python: { option: 'python', kind: string(), value: 'PATH', help: 'the Python with torch (--engine torch; default $COLORPIPE_PYTHON, else python3)' },
  device: { option: 'device', kind: oneOf(TORCH_DEVICES, 'auto'), value: 'D', help: 'torch: auto (default: cuda when torch sees a GPU)|cpu|cuda; onnx: cpu (auto)|cuda' },
  precision: {
    option: 'precision',
    kind: oneOf(PRECISIONS, 'fp32'),
    help: 'torch: fp32 (default), tf32 (TF32 matmuls and convolutions on CUDA), bf16 (bfloat16 autocast, float32 master weights)',
  },
  compile: { kind: boolean, help: 'torch >= 2: torch.compile the network (minutes of compiling first; then faster steps on GPUs)' },
  devices: {
    option: 'devices',
    kind: int({ min: 1 }),
    value: 'N',
    help:
      'data parallel on this machine: N ranks, one per GPU (NCCL), or N CPU ranks (gloo) on a machine without one; each ' +
      'rank reads its own shards, the global batch is --batch x ranks',
  },
  nodes: { kind: int({ min: 1 }), value: 'N', help: 'machines of a data-parallel run: the same command on each, with --node-rank and --master' },
  'node-rank': { kind: int({ min: 0 }), value: 'R', help: "this machine's index, 0 to --nodes - 1" },
  master: {
    kind: string(),
    value: 'HOST:PORT',
    help:
      "rank 0's machine and a free port there. Without these flags a process takes its place from torchrun's or a " +
      'PyTorchJob\'s RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, or from srun\'s SLURM_PROCID, SLURM_NTASKS, ' +
      'SLURM_LOCALID with MASTER_ADDR',
  },
  'sync-bn': { kind: boolean, help: 'batch norm statistics over every rank\'s batch (CUDA; default: each rank\'s own)' },
  'rank-timeout': {
    kind: int({ min: 10, default: 600 }),
    value: 'S',
    help: 'seconds a rank waits for the others in a collective before the run fails (a rank that hangs; default 600)',
  },
} satisfies FlagTable;

interface TorchValues {
  engine: string;
  python: string | undefined;
  device: (typeof TORCH_DEVICES)[number];
  precision: (typeof PRECISIONS)[number];
  threads: number | undefined;
  compile: boolean;
  devices: number | undefined;
  nodes: number | undefined;
  'node-rank': number | undefined;
  master: string | undefined;
  'sync-bn': boolean;
  'rank-timeout': number;
}

/** The torch engine's options from the flags. */
export function torchOptions(v: TorchValues) {
  return {
    ...(v.python !== undefined ? { python: v.python } : {}),
    ...(v.threads !== undefined ? { threads: v.threads } : {}),
    device: v.device,
    precision: v.precision,
    compile: v.compile,
    syncBn: v['sync-bn'],
  };
}

export interface Launch {
  /** This process's place in a data-parallel run, null for a run of one process. */
  dist: (RankPlace & { localWorld: number }) | null;
  /**
   * Runs this rank's `work` while watching the ranks this process started: one that fails aborts `work`'s signal
   * and the run ends with ColorpipeError 'ERR_RANK' naming it. Resolves once every started rank has exited.
   */
  supervise(stop: AbortSignal, work: (signal: AbortSignal) => Promise<number>): Promise<number>;
}

/**
 * This process's place (src/torch/dist.ts) and, under --devices, the ranks of this machine it starts.
 * @throws InvalidOptionError for data-parallel flags with --engine tfjs or onnx, or a place that is incomplete.
 */
export async function launchRanks(v: TorchValues, argv: string[]): Promise<Launch> {
  const plan = rankPlan({ devices: v.devices, nodes: v.nodes, nodeRank: v['node-rank'], master: v.master });
  if (!plan) return { dist: null, supervise: (_stop, work) => work(new AbortController().signal) };
  if (v.engine === 'tfjs' || v.engine === 'onnx') {
    throw new InvalidOptionError(`--engine ${v.engine} trains in one process; ${plan.world} ranks (${plan.from}) need --engine torch`);
  }
  // A rank started by its machine's first rank ends when that process is gone.
  if (process.env.COLORPIPE_RANK !== undefined && process.send) process.on('disconnect', () => process.exit(1));
  const port = plan.port || (await freePort());
  const dist = { rank: plan.rank, world: plan.world, localRank: plan.localRank, localWorld: plan.localWorld, addr: plan.addr, port, timeoutS: v['rank-timeout'] };
  if (plan.spawn.length === 0) return { dist, supervise: (_stop, work) => work(new AbortController().signal) };
  // A missing torch is said once, here, rather than by every rank started.
  await probeTorch(pythonOf(v.python));
  return {
    dist,
    async supervise(stop, work) {
      const failed = new AbortController();
      const ranks = plan.spawn.map((local) => {
        const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, 'train', ...argv], {
          env: { ...process.env, ...localRankEnv(plan, local, port) },
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        const exited = new Promise<void>((resolve) => child.on('close', (code, signal) => {
          // After a Ctrl-C every rank ends with 130 once its checkpoint is agreed: not a failure.
          const ok = code === 0 || (code === 130 && stop.aborted);
          if (!ok && !failed.signal.aborted) {
            const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
            failed.abort(new ColorpipeError('ERR_RANK', `rank ${plan.rank + local} (pid ${child.pid}) ${how}; the run stopped (the last checkpoint is intact: --resume continues)`));
          }
          resolve();
        }));
        return { child, exited };
      });
      try {
        const code = await work(failed.signal);
        await Promise.all(ranks.map((r) => r.exited));
        if (failed.signal.aborted) throw failed.signal.reason;
        return code;
      } catch (err) {
        throw failed.signal.aborted ? failed.signal.reason : err;
      } finally {
        await Promise.all(ranks.map((r) => stopChild(r.child, r.exited)));
      }
    },
  };
}

/** Ends a rank still running (SIGTERM, then SIGKILL after 3 s) and waits for it. */
async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
  await exited;
  clearTimeout(timer);
}
