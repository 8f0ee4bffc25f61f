/** Shared command-line parsing: node:util parseArgs with one error style and typed number options. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InvalidOptionError } from '../core/errors.js';
import { invalidOption } from '../core/validate.js';

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

/** `--resolution auto|full|N` (colorize, eval): 'auto' when absent. */
export function resolutionFlag(v: unknown): 'auto' | 'full' | number {
  if (v === undefined || v === 'auto' || v === 'full') return v ?? 'auto';
  return num(v, 'resolution', { int: true, min: 8 })!;
}
