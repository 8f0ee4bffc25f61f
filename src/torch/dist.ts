/**
 * Where a `pipe train --engine torch` process stands in a data-parallel run, from flags or from the launcher's
 * environment (a flag wins over a variable):
 *
 * - `--devices N` (one machine) or `--nodes N --node-rank R --master HOST:PORT --devices D` (the same command on
 *   each machine): this process is the machine's first rank and starts D - 1 more (`localRanks`); ranks are
 *   numbered node by node (global rank = R * D + local rank), as torchrun numbers them.
 * - torchrun / Kubernetes PyTorchJob: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT: one rank per process.
 * - Slurm (`srun`, one task per GPU): SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, with MASTER_ADDR (and
 *   MASTER_PORT, default 29500) exported by the batch script.
 * - COLORPIPE_RANK, COLORPIPE_WORLD, COLORPIPE_LOCAL_RANK, COLORPIPE_LOCAL_WORLD, COLORPIPE_MASTER: a rank
 *   started by the first rank of its machine (internal).
 *
 * Nothing of these: one process (null).
 */
import net from 'node:net';
import { InvalidOptionError } from '../core/errors.js';
import { invalidOption } from '../core/validate.js';

export interface DistFlags {
  devices?: number;
  nodes?: number;
  nodeRank?: number;
  /** HOST:PORT of rank 0's machine. */
  master?: string;
}

export interface RankPlan {
  rank: number;
  world: number;
  localRank: number;
  /** Ranks on this machine. */
  localWorld: number;
  addr: string;
  /** 0: pick a free port (one machine). */
  port: number;
  /** Local ranks this process starts (the first rank of its machine under --devices). */
  spawn: number[];
  /** What the place came from, for the run's first line. */
  from: string;
}

export const DEFAULT_MASTER_PORT = 29500;

function envInt(env: NodeJS.ProcessEnv, name: string, min: number): number {
  const raw = env[name];
  const n = raw !== undefined && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw invalidOption(`${name} (in the environment)`, `integer >= ${min}`, raw);
  return n;
}

/** `HOST:PORT` (IPv6 in brackets) as its parts. */
export function parseMaster(v: string, name: string): { addr: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) throw invalidOption(name, 'HOST:PORT', v);
  return { addr: m[1]!.replace(/^\[|\]$/g, ''), port };
}

function checkRank(rank: number, world: number, name: string): void {
  if (rank >= world) throw invalidOption(name, `integer in [0, ${world - 1}]`, rank);
}

/**
 * This process's place (see the module comment), or null for a run of one process.
 * @throws InvalidOptionError (a usage error) naming the flag or variable that is missing or out of range.
 */
export function rankPlan(flags: DistFlags, env: NodeJS.ProcessEnv = process.env): RankPlan | null {
  if (env.COLORPIPE_RANK !== undefined) {
    const world = envInt(env, 'COLORPIPE_WORLD', 2);
    const { addr, port } = parseMaster(env.COLORPIPE_MASTER ?? '', 'COLORPIPE_MASTER');
    return {
      rank: envInt(env, 'COLORPIPE_RANK', 0), world, localRank: envInt(env, 'COLORPIPE_LOCAL_RANK', 0),
      localWorld: envInt(env, 'COLORPIPE_LOCAL_WORLD', 1), addr, port, spawn: [], from: 'started by its machine\'s first rank',
    };
  }
  const multi = flags.nodes !== undefined || flags.nodeRank !== undefined || flags.master !== undefined;
  if (multi || (flags.devices ?? 1) > 1) {
    const nodes = flags.nodes ?? 1;
    const devices = flags.devices ?? 1;
    if (nodes > 1 && (flags.nodeRank === undefined || flags.master === undefined)) {
      throw new InvalidOptionError('--nodes needs --node-rank and --master HOST:PORT (the same --master on every machine)');
    }
    const nodeRank = flags.nodeRank ?? 0;
    checkRank(nodeRank, nodes, '--node-rank');
    const { addr, port } = flags.master ? parseMaster(flags.master, '--master') : { addr: '127.0.0.1', port: 0 };
    const world = nodes * devices;
    if (world === 1) return null;
    return {
      rank: nodeRank * devices, world, localRank: 0, localWorld: devices, addr, port,
      spawn: Array.from({ length: devices - 1 }, (_, i) => i + 1),
      from: nodes > 1 ? `--nodes ${nodes} --node-rank ${nodeRank} --devices ${devices}` : `--devices ${devices}`,
    };
  }
  if (env.RANK !== undefined && env.WORLD_SIZE !== undefined) {
    const world = envInt(env, 'WORLD_SIZE', 1);
    if (world === 1) return null;
    const rank = envInt(env, 'RANK', 0);
    checkRank(rank, world, 'RANK (in the environment)');
    if (!env.MASTER_ADDR) throw new InvalidOptionError('RANK and WORLD_SIZE are set (torchrun, PyTorchJob) but MASTER_ADDR is not');
    return {
      rank, world, localRank: env.LOCAL_RANK ? envInt(env, 'LOCAL_RANK', 0) : 0,
      localWorld: env.LOCAL_WORLD_SIZE ? envInt(env, 'LOCAL_WORLD_SIZE', 1) : 1,
      addr: env.MASTER_ADDR, port: env.MASTER_PORT ? envInt(env, 'MASTER_PORT', 1) : DEFAULT_MASTER_PORT, spawn: [],
      from: `RANK=${rank} WORLD_SIZE=${world}`,
    };
  }
  if (env.SLURM_PROCID !== undefined && env.SLURM_NTASKS !== undefined && env.SLURM_ARRAY_TASK_ID === undefined) {
    const world = envInt(env, 'SLURM_NTASKS', 1);
    if (world === 1) return null;
    const rank = envInt(env, 'SLURM_PROCID', 0);
    checkRank(rank, world, 'SLURM_PROCID (in the environment)');
    if (!env.MASTER_ADDR) {
      throw new InvalidOptionError('SLURM_NTASKS > 1 (srun) but MASTER_ADDR is not set: export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1) in the batch script');
    }
    return {
      rank, world, localRank: env.SLURM_LOCALID ? envInt(env, 'SLURM_LOCALID', 0) : 0,
      localWorld: env.SLURM_NTASKS_PER_NODE ? envInt(env, 'SLURM_NTASKS_PER_NODE', 1) : 1,
      addr: env.MASTER_ADDR, port: env.MASTER_PORT ? envInt(env, 'MASTER_PORT', 1) : DEFAULT_MASTER_PORT, spawn: [],
      from: `SLURM_PROCID=${rank} SLURM_NTASKS=${world}`,
    };
  }
  return null;
}

/** A TCP port free on this machine now (for a one-machine run's rendezvous). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** The environment of local rank `localRank` started by the first rank of its machine. */
export function localRankEnv(plan: RankPlan, localRank: number, port: number): NodeJS.ProcessEnv {
  return {
    COLORPIPE_RANK: String(plan.rank + localRank),
    COLORPIPE_WORLD: String(plan.world),
    COLORPIPE_LOCAL_RANK: String(localRank),
    COLORPIPE_LOCAL_WORLD: String(plan.localWorld),
    COLORPIPE_MASTER: `${plan.addr.includes(':') ? `[${plan.addr}]` : plan.addr}:${port}`,
  };
}
