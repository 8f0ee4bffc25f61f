/** Shared command-line parsing: node:util parseArgs with one error style and typed number options. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InvalidOptionError } from '../core/errors.js';
import { invalidOption } from '../core/validate.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export type Values = Record<string, string | boolean | undefined>;

/** Parses argv strictly (unknown options are an error naming the usage); --help prints the usage and exits. */
export function parse(argv: string[], options: Options, usage: string): { values: Values; positionals: string[] } {
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true }) as { values: Values; positionals: string[] };
  } catch (err) {
    throw new InvalidOptionError(`${(err as Error).message}\n${usage}`);
  }
  if (parsed.values.help) {
    process.stdout.write(usage + '\n');
    process.exit(0);
  }
  return parsed;
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
  if (v === undefined || v === '') throw new InvalidOptionError(`Missing --${name}\n${usage}`);
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
 * Ctrl-C handling shared by the long-running commands: the first SIGINT prints `message` and aborts the
 * returned signal (the command finishes cleanly: checkpoint, whole files), a second one exits at once (130).
 * Call `dispose()` when the command is done.
 */
export function interruptible(message: string): { signal: AbortSignal; dispose: () => void } {
  const stop = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write(`\ncolorpipe: interrupted: ${message} (Ctrl-C again to quit now)\n`);
    stop.abort();
  };
  process.on('SIGINT', onSigint);
  return { signal: stop.signal, dispose: () => process.off('SIGINT', onSigint) };
}

/** `--resolution auto|full|N` (colorize, eval): 'auto' when absent. */
export function resolutionFlag(v: unknown): 'auto' | 'full' | number {
  if (v === undefined || v === 'auto' || v === 'full') return v ?? 'auto';
  return num(v, 'resolution', { int: true, min: 8 })!;
}
