/** Shared command-line parsing: node:util parseArgs with one error style and typed number options. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InvalidOptionError, errorText, exitCodeOf, reasonOf } from '../core/errors.js';
import { invalidOption } from '../core/validate.js';
import { isAbortError } from '../core/abort.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export type Values = Record<string, string | boolean | undefined>;

/**
 * Parses argv strictly: an unknown option or any stray positional is an InvalidOptionError naming the usage
 * (no command takes positionals, and dropping them silently hides an unquoted glob the shell expanded:
 * `--shards data/*.tar` would train on the first shard only). --help prints the usage and exits.
 */
export function parse(argv: string[], options: Options, usage: string): { values: Values; positionals: string[] } {
  let parsed: { values: Values; positionals: string[]; tokens: ParsedToken[] };
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true, tokens: true }) as typeof parsed;
  } catch (err) {
    throw new InvalidOptionError((err as Error).message, { usage });
  }
  if (parsed.values.help) {
    process.stdout.write(usage + '\n');
    process.exit(0);
  }
  if (parsed.positionals.length > 0) throw new InvalidOptionError(strayMessage(parsed.tokens), { usage });
  return { values: parsed.values, positionals: parsed.positionals };
}

type ParsedToken =
  | { kind: 'option'; name: string; value?: string; index: number }
  | { kind: 'positional'; value: string; index: number }
  | { kind: 'option-terminator'; index: number };

/**
 * The message for stray positionals: which ones, and when they follow an option's value and look like file
 * names (a path separator or an extension), the likely cause: the shell expanded an unquoted glob.
 */
function strayMessage(tokens: ParsedToken[]): string {
  const stray = tokens.filter((t): t is Extract<ParsedToken, { kind: 'positional' }> => t.kind === 'positional');
  const names = stray.map((t) => JSON.stringify(t.value));
  const shown = names.length > 3 ? `${names.slice(0, 3).join(', ')} and ${names.length - 3} more` : names.join(', ');
  let msg = `Unexpected argument${stray.length > 1 ? 's' : ''} ${shown}: options take one value each`;
  const first = tokens.indexOf(stray[0]!);
  let prev: ParsedToken | undefined;
  for (let i = first - 1; i >= 0; i--) {
    if (tokens[i]!.kind === 'option') {
      prev = tokens[i];
      break;
    }
  }
  const looksLikeFiles = stray.every((t) => /[\\/]|\.[A-Za-z0-9]{1,5}$/.test(t.value));
  if (prev && prev.kind === 'option' && prev.value !== undefined && looksLikeFiles) {
    msg += `; if the shell expanded a glob, quote it: --${prev.name} '${globHint(prev.value)}'`;
  } else if (looksLikeFiles) {
    msg += `; if the shell expanded a glob, quote it ('data/*.tar')`;
  }
  return msg;
}

/** `data/x-000001.tar` -> `data/*.tar`: the pattern the user probably typed. */
function globHint(value: string): string {
  const slash = Math.max(value.lastIndexOf('/'), value.lastIndexOf('\\'));
  const dot = value.lastIndexOf('.');
  return `${value.slice(0, slash + 1)}*${dot > slash ? value.slice(dot) : ''}`;
}

/** A string option's value (undefined when absent). */
export function str(v: string | boolean | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function num(v: unknown, name: string, opts: { int?: boolean; min?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || (opts.int && !Number.isInteger(n)) || (opts.min !== undefined && n < opts.min)) {
    throw invalidOption(`--${name}`, `${opts.int ? 'integer' : 'number'}${opts.min !== undefined ? ` >= ${opts.min}` : ''}`, v);
  }
  return n;
}

export function required<T>(v: T | undefined, name: string, usage: string): T {
  if (v === undefined || v === '') throw new InvalidOptionError(`Missing --${name}`, { usage });
  return v;
}

export function oneOf<T extends string>(v: unknown, name: string, allowed: readonly T[], dflt: T): T {
  if (v === undefined) return dflt;
  if (!allowed.includes(v as T)) {
    throw invalidOption(`--${name}`, `one of ${allowed.join('|')}`, v);
  }
  return v as T;
}

/**
 * Ctrl-C, the same in every command: the first SIGINT prints one line (`message`: what the command finishes
 * before it stops) and aborts the signal handed to `work`, which then finishes cleanly (a checkpoint, whole
 * files, no temp file left) and the command exits 130, whether `work` returned or threw on the abort; a second
 * SIGINT exits 130 at once. An error other than the abort's, thrown after the first SIGINT, is thrown on as an
 * Interrupted that carries it: cli.ts reports it as it reports any error (`reportFailure`: flags named, one
 * line), and the status stays 130.
 */
export async function interruptible(message: string, work: (stop: AbortSignal) => Promise<number>): Promise<number> {
  const stop = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    if (++interrupts > 1) return process.exit(130);
    process.stderr.write(`\ncolorpipe: interrupted: ${message} (Ctrl-C again to quit now)\n`);
    stop.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    const code = await work(stop.signal);
    return stop.signal.aborted ? 130 : code;
  } catch (err) {
    if (!stop.signal.aborted) throw err;
    if (isAbortError(err, stop.signal)) return 130;
    throw new Interrupted(err);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** An error that ended a command after its first Ctrl-C (`error`): reported like any other, with exit status 130. */
export class Interrupted extends Error {
  constructor(readonly error: unknown) {
    super(`interrupted, then: ${reasonOf(error)}`, { cause: error });
    this.name = 'Interrupted';
  }
}

/**
 * The one way an error that ends a command is reported, whatever path it took (thrown by the command, or after
 * Ctrl-C through interruptible): the API's option names become the command's flags (`withFlagNames` with its
 * FLAG_NAMES), then one line on stderr (errorText: a usage error adds the usage; a stack trace only with
 * COLORPIPE_DEBUG=1). Returns the exit status: 130 after Ctrl-C, else 2 for a usage error and 1 for the rest.
 */
export function reportFailure(err: unknown, names: FlagNames | undefined): number {
  const interrupted = err instanceof Interrupted;
  const e = withFlagNames(interrupted ? err.error : err, names);
  process.stderr.write(`colorpipe: ${errorText(e, process.env.COLORPIPE_DEBUG === '1')}\n`);
  return interrupted ? 130 : exitCodeOf(e);
}

/**
 * A command's API option names and the flags that set them (`{ input: '--in' }`): the API's errors say
 * `options.input`, a CLI user typed `--in`. Each command exports its table as FLAG_NAMES; cli.ts rewords the
 * InvalidOptionError that ends a command with `withFlagNames`, in one place (`reportFailure`).
 */
export type FlagNames = Readonly<Record<string, string>>;

/**
 * `err` with every `options.NAME` that `names` maps replaced by its flag (`options.input` -> `--in`); a
 * nested name (`options.resumeAfter.epoch`) and names the table lacks stay as they are. Other errors are
 * returned unchanged.
 */
export function withFlagNames(err: unknown, names: FlagNames | undefined): unknown {
  if (!names || !(err instanceof InvalidOptionError)) return err;
  const brief = err.brief.replace(/\boptions\.([A-Za-z][A-Za-z0-9]*)(?![A-Za-z0-9]|\.[A-Za-z])/g, (all, name: string) =>
    Object.hasOwn(names, name) ? names[name]! : all);
  return brief === err.brief ? err : new InvalidOptionError(brief, { usage: err.usage });
}

/** A process's share of the inputs (items rank, rank + world, ...) and, when the environment gave it, from where. */
export interface Share {
  rank: number;
  world: number;
  /** The variables (and flags) it was taken from, for a notice line; null when both came from the flags. */
  from: string | null;
}

/**
 * `--rank R --world W`, or when either is absent a scheduler's job-array variables; a flag always wins over a
 * variable, and a variable is read only when a flag is absent.
 * - Slurm (`#SBATCH --array=0-3`): the rank is SLURM_ARRAY_TASK_ID, less SLURM_ARRAY_TASK_MIN when set (an
 *   array may start at 1: `--array=1-4`), divided by SLURM_ARRAY_TASK_STEP when set (`--array=0-6:2`); the
 *   world is SLURM_ARRAY_TASK_COUNT.
 * - Kubernetes Indexed Job (`completionMode: Indexed`): the rank is JOB_COMPLETION_INDEX; the pod's
 *   environment has no count, so the world must be given with --world (the Job's `completions`).
 * Undefined when neither flags nor variables give a share (one process takes everything).
 * @throws InvalidOptionError (a usage error, exit 2) naming the flag or the variable: a value that is not an
 *   integer in range, a rank outside [0, world - 1], a rank without a world.
 */
export function shareOf(v: Values, env: NodeJS.ProcessEnv = process.env): Share | undefined {
  const flagWorld = num(v.world, 'world', { int: true, min: 1 });
  const flagRank = num(v.rank, 'rank', { int: true, min: 0 });
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

/** `--resolution auto|full|N` (colorize, eval): 'auto' when absent. */
export function resolutionFlag(v: unknown): 'auto' | 'full' | number {
  if (v === undefined || v === 'auto' || v === 'full') return v ?? 'auto';
  return num(v, 'resolution', { int: true, min: 8 })!;
}
