/** A process's share of the inputs: --rank and --world, or a Slurm job array's or a Kubernetes Indexed Job's variables. */
import { InvalidOptionError } from '../core/errors.js';
import { invalidOption } from '../core/validate.js';
import { int, type FlagTable } from './flags.js';

/** A process's share of the inputs (items rank, rank + world, ...) and, when the environment gave it, from where. */
export interface Share {
  rank: number;
  world: number;
  /** The variables (and flags) it was taken from, for a notice line; null when both came from the flags. */
  from: string | null;
}

/** `--rank R --world W`, as a command's table takes them: the values `shareOf` is given, already integers in range. */
export const SHARE_FLAGS = {
  rank: {
    option: 'rank',
    kind: int({ min: 0 }),
    value: 'R',
    help:
      'with --world W: process only the files whose index % W == R (split a folder over W processes); when not given, ' +
      'taken from a Slurm job array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN) or a Kubernetes Indexed Job ' +
      '(JOB_COMPLETION_INDEX): a line says so, and the summary names the share (--rank 0 --world 1: every file)',
  },
  world: {
    option: 'world',
    kind: int({ min: 1 }),
    value: 'W',
    help:
      'the number of processes the files are split over; when not given, SLURM_ARRAY_TASK_COUNT (a Kubernetes ' +
      "Indexed Job's pods have no count: give --world, the Job's completions)",
  },
} satisfies FlagTable;

/**
 * `--rank R --world W` (as SHARE_FLAGS reads them), or when either is absent a scheduler's job-array variables; a
 * flag always wins over a variable, and a variable is read only when a flag is absent.
 * - Slurm (`#SBATCH --array=0-3`): the rank is SLURM_ARRAY_TASK_ID, less SLURM_ARRAY_TASK_MIN when set (an
 *   array may start at 1: `--array=1-4`), divided by SLURM_ARRAY_TASK_STEP when set (`--array=0-6:2`); the
 *   world is SLURM_ARRAY_TASK_COUNT.
 * - Kubernetes Indexed Job (`completionMode: Indexed`): the rank is JOB_COMPLETION_INDEX; the pod's
 *   environment has no count, so the world must be given with --world (the Job's `completions`).
 * Undefined when neither flags nor variables give a share (one process takes everything).
 * @throws InvalidOptionError (a usage error, exit 2) naming the flag or the variable: a variable that is not an
 *   integer in range, a rank outside [0, world - 1], a rank without a world.
 */
export function shareOf(flags: { rank?: number; world?: number }, env: NodeJS.ProcessEnv = process.env): Share | undefined {
  const { rank: flagRank, world: flagWorld } = flags;
  if (flagRank !== undefined && flagWorld !== undefined) return checkShare(flagRank, '--rank', flagWorld, '--world', null);
  const slurm = env.SLURM_ARRAY_TASK_ID !== undefined && env.SLURM_ARRAY_TASK_ID !== '';
  const indexed = !slurm && env.JOB_COMPLETION_INDEX !== undefined && env.JOB_COMPLETION_INDEX !== '';
  if (!slurm && !indexed) {
    if (flagRank !== undefined || flagWorld !== undefined) throw new InvalidOptionError('Expected --rank and --world together');
    return undefined;
  }
  const from: string[] = [];
  let rank = flagRank;
  let rankName = '--rank';
  if (rank === undefined && slurm) {
    const id = envInt(env, 'SLURM_ARRAY_TASK_ID', 0);
    const min = env.SLURM_ARRAY_TASK_MIN ? envInt(env, 'SLURM_ARRAY_TASK_MIN', 0) : 0;
    const step = env.SLURM_ARRAY_TASK_STEP ? envInt(env, 'SLURM_ARRAY_TASK_STEP', 1) : 1;
    rank = (id - min) / step;
    rankName = `SLURM_ARRAY_TASK_ID ${id}${min ? ` - SLURM_ARRAY_TASK_MIN ${min}` : ''}${step > 1 ? ` over SLURM_ARRAY_TASK_STEP ${step}` : ''}`;
    from.push(`SLURM_ARRAY_TASK_ID=${id}`, ...(min ? [`SLURM_ARRAY_TASK_MIN=${min}`] : []), ...(step > 1 ? [`SLURM_ARRAY_TASK_STEP=${step}`] : []));
  } else if (rank === undefined) {
    rank = envInt(env, 'JOB_COMPLETION_INDEX', 0);
    rankName = 'JOB_COMPLETION_INDEX';
    from.push(`JOB_COMPLETION_INDEX=${rank}`);
  } else {
    from.push(`--rank ${rank}`);
  }
  let world = flagWorld;
  let worldName = '--world';
  if (world === undefined && slurm) {
    if (!env.SLURM_ARRAY_TASK_COUNT) {
      throw new InvalidOptionError('SLURM_ARRAY_TASK_ID is set (a Slurm job array) but SLURM_ARRAY_TASK_COUNT is not: give --world (the number of array tasks)');
    }
    world = envInt(env, 'SLURM_ARRAY_TASK_COUNT', 1);
    worldName = 'SLURM_ARRAY_TASK_COUNT';
    from.push(`SLURM_ARRAY_TASK_COUNT=${world}`);
  } else if (world === undefined) {
    throw new InvalidOptionError(
      'JOB_COMPLETION_INDEX is set (a Kubernetes Indexed Job) but --world is not: give --world with the Job\'s completions ' +
        '(or --rank and --world both)',
    );
  } else {
    from.push(`--world ${world}`);
  }
  return checkShare(rank, rankName, world, worldName, `${from.join(', ')} (${slurm ? 'a Slurm job array' : 'a Kubernetes Indexed Job'})`);
}

/** A variable's value as an integer >= min, or a usage error naming the variable. */
function envInt(env: NodeJS.ProcessEnv, name: string, min: number): number {
  const raw = env[name];
  const n = raw !== undefined && /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw invalidOption(`${name} (in the environment)`, `integer >= ${min}`, raw);
  }
  return n;
}

function checkShare(rank: number, rankName: string, world: number, worldName: string, from: string | null): Share {
  if (!Number.isInteger(rank) || rank < 0 || rank >= world) {
    const of = worldName === '--world' && rankName === '--rank' ? '' : ` (the world, ${world}, from ${worldName})`;
    throw invalidOption(rankName === '--rank' ? '--rank' : `the rank from ${rankName}`, `integer in [0, ${world - 1}]${of}`, rank);
  }
  return { rank, world, from };
}

/**
 * The line that says a share came from the environment. Commands print it even with --quiet (which hides only a
 * progress bar): a job array's variables silently cutting a run to 1/W of its files is the failure it prevents.
 */
export function shareNotice(share: Share): string {
  return `colorpipe: rank ${share.rank} of ${share.world} from ${share.from}; --rank and --world override it`;
}
