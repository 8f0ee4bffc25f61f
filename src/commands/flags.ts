/**
 * A command's flags, written once. Each command has one table (`FlagTable`): per flag, the API option it sets,
 * how its value is read (`Kind`: string, boolean, int, number, oneOf, each with its checks) and its help; the
 * usage text (`usage`), node:util parseArgs's options and the typed values (`parseFlags`) and FLAG_NAMES
 * (`flagNames`) all come from it.
 */
import { parseArgs } from 'node:util';
import { InvalidOptionError } from '../core/errors.js';
import { invalidOption } from '../core/validate.js';
import type { FlagNames } from './report.js';

/** What parseArgs holds for a flag: a string, true for a boolean, undefined when absent. */
export type Raw = string | boolean | undefined;

/** How a flag's value is read: parseArgs's type, and the typed value from the raw one. */
export interface Kind<T> {
  readonly type: 'string' | 'boolean';
  /** The allowed values of a oneOf: the flag's value name in the usage unless the entry gives one. */
  readonly values?: readonly string[];
  /** @throws InvalidOptionError naming `flag` (`--in`): a usage error (exit 2). */
  read(raw: Raw, flag: string, usage: string): T;
}

/** One flag of a command's table; the table's key is the flag's name without the dashes (`on-error`). */
export interface Flag<T = unknown> {
  readonly kind: Kind<T>;
  /**
   * The API option it sets (or several names the API gives it): the API's errors say `options.input`, the user
   * typed `--in` (FLAG_NAMES, see report.ts). None where no API error could name it.
   */
  readonly option?: string | readonly string[];
  /** The value's name in the usage (`DIR`, `N`); a oneOf's values when absent; none for a boolean. */
  readonly value?: string;
  /** One paragraph: the usage wraps it. */
  readonly help: string;
}

/** A command's flags, in the order its usage lists them. */
export type FlagTable = Readonly<Record<string, Flag>>;

/** The typed values `parseFlags` returns for a table. */
export type Values<F extends FlagTable> = { [K in keyof F]: F[K] extends Flag<infer T> ? T : never };

/** A boolean flag: true when given. */
export const boolean: Kind<boolean> = { type: 'boolean', read: (raw) => raw === true };

/** A string flag; `required`: absent or empty is `Missing --FLAG` with the usage. */
export function string(options: { required: true }): Kind<string>;
export function string(options?: { required?: false }): Kind<string | undefined>;
export function string({ required = false }: { required?: boolean } = {}): Kind<string | undefined> {
  return {
    type: 'string',
    read(raw, flag, usage) {
      if (required && (raw === undefined || raw === '')) throw new InvalidOptionError(`Missing ${flag}`, { usage });
      return typeof raw === 'string' ? raw : undefined;
    },
  };
}

interface Range {
  min?: number;
  max?: number;
}

/** An integer flag within [min, max]; `default` when absent (else undefined). */
export function int(options: Range & { default: number }): Kind<number>;
export function int(options?: Range): Kind<number | undefined>;
export function int(options: Range & { default?: number } = {}): Kind<number | undefined> {
  return numeric(true, options);
}

/** A number flag within [min, max]; `default` when absent (else undefined). */
export function number(options: Range & { default: number }): Kind<number>;
export function number(options?: Range): Kind<number | undefined>;
export function number(options: Range & { default?: number } = {}): Kind<number | undefined> {
  return numeric(false, options);
}

function numeric(integer: boolean, { min, max, default: dflt }: Range & { default?: number }): Kind<number | undefined> {
  const range = min !== undefined && max !== undefined ? ` in [${min}, ${max}]` : min !== undefined ? ` >= ${min}` : max !== undefined ? ` <= ${max}` : '';
  const expected = `${integer ? 'integer' : 'number'}${range}`;
  return {
    type: 'string',
    read(raw, flag) {
      if (raw === undefined) return dflt;
      const n = Number(raw);
      if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || (min !== undefined && n < min) || (max !== undefined && n > max)) {
        throw invalidOption(flag, expected, raw);
      }
      return n;
    },
  };
}

/** One of `values`; `dflt` when absent. */
export function oneOf<T extends string>(values: readonly T[], dflt: T): Kind<T> {
  return {
    type: 'string',
    values,
    read(raw, flag) {
      if (raw === undefined) return dflt;
      if (!values.includes(raw as T)) throw invalidOption(flag, `one of ${values.join('|')}`, raw);
      return raw as T;
    },
  };
}

/** `--on-error skip|fail`, as train, colorize and shard take it. */
export const ON_ERROR = {
  option: 'onError',
  kind: oneOf(['skip', 'fail'] as const, 'skip'),
  help: 'skip and report bad inputs (default) or stop at the first',
} satisfies Flag;

/** Where the help column starts at the least, and the width the help is wrapped to. */
const LABEL_WIDTH = 20;
const LINE_WIDTH = 120;

/** `--in DIR`: the flag and its value's name. */
function label(name: string, f: Flag): string {
  const value = f.value ?? f.kind.values?.join('|');
  return f.kind.type === 'boolean' || value === undefined ? `--${name}` : `--${name} ${value}`;
}

/**
 * The usage: `head` (the synopsis and any description), then a line per flag in the table's order: the flag
 * and its value's name, then its help, wrapped and aligned in one column.
 */
export function usage(head: string, flags: FlagTable): string {
  const rows = Object.entries(flags).map(([name, f]) => [label(name, f), f.help] as const);
  const column = 2 + Math.max(LABEL_WIDTH, ...rows.map(([l]) => l.length)) + 1;
  const lines = [head];
  for (const [l, help] of rows) {
    const wrapped = wrap(help, LINE_WIDTH - column);
    lines.push(`  ${l.padEnd(column - 3)} ${wrapped[0]}`, ...wrapped.slice(1).map((w) => ' '.repeat(column) + w));
  }
  return lines.join('\n');
}

/** `text` in lines of at most `width` characters, broken at spaces (a longer word gets a line of its own). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  return [...lines, line];
}

/** The API's option names and the flags that set them (`{ input: '--in' }`), from the table's `option`s. */
export function flagNames(flags: FlagTable): FlagNames {
  const names: Record<string, string> = {};
  for (const [name, f] of Object.entries(flags)) for (const option of [f.option ?? []].flat()) names[option] = `--${name}`;
  return names;
}

/**
 * Parses argv against a table: strictly (see `parse`), then each flag's value read by its kind, in the table's
 * order. --help prints `usageText` and exits.
 * @throws InvalidOptionError (a usage error) naming the flag: an unknown flag, a stray argument, a bad value.
 */
export function parseFlags<F extends FlagTable>(argv: string[], flags: F, usageText: string): Values<F> {
  const options = Object.fromEntries(Object.entries(flags).map(([name, f]) => [name, { type: f.kind.type }]));
  const raw = parse(argv, options, usageText);
  return Object.fromEntries(Object.entries(flags).map(([name, f]) => [name, f.kind.read(raw[name], `--${name}`, usageText)])) as Values<F>;
}

/**
 * Parses argv strictly: an unknown option or any stray positional is an InvalidOptionError naming the usage
 * (no command takes positionals, and dropping them silently hides an unquoted glob the shell expanded:
 * `--shards data/*.tar` would train on the first shard only). --help prints the usage and exits.
 */
function parse(argv: string[], options: Record<string, { type: 'string' | 'boolean' }>, usageText: string): Record<string, Raw> {
  let parsed: { values: Record<string, Raw>; positionals: string[]; tokens: ParsedToken[] };
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true, tokens: true }) as typeof parsed;
  } catch (err) {
    throw new InvalidOptionError((err as Error).message, { usage: usageText });
  }
  if (parsed.values.help) {
    process.stdout.write(usageText + '\n');
    process.exit(0);
  }
  if (parsed.positionals.length > 0) throw new InvalidOptionError(strayMessage(parsed.tokens), { usage: usageText });
  return parsed.values;
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
