/**
 * One option checker for every factory and command, in the manner of sharp's lib/is.js: each check returns
 * the value (typed) or throws an InvalidOptionError worded one way,
 * `Expected <what> for <name> but received <actual>`, where `name` is what the caller wrote (an API option
 * such as `options.size`, or a CLI flag such as `--batch`). Checks run when a factory is called, never later
 * inside the stream.
 */
import { InvalidOptionError } from './errors.js';

/** A short, single-line rendering of any value for an error message. */
export function describe(actual: unknown): string {
  if (actual === undefined) return 'undefined';
  if (actual === null) return 'null';
  if (typeof actual === 'string') return JSON.stringify(actual.length > 80 ? actual.slice(0, 77) + '...' : actual);
  if (typeof actual === 'function') return 'a function';
  if (Array.isArray(actual)) return `an array of ${actual.length}`;
  if (typeof actual === 'object') return 'an object';
  return String(actual);
}

/** The error every check throws: `Expected EXPECTED for NAME but received ACTUAL`. */
export function invalidOption(name: string, expected: string, actual: unknown): InvalidOptionError {
  return new InvalidOptionError(`Expected ${expected} for ${name} but received ${describe(actual)}`);
}

/** An integer >= 1. */
export function positiveInt(v: unknown, name: string): number {
  if (!Number.isInteger(v) || (v as number) < 1) throw invalidOption(name, 'positive integer', v);
  return v as number;
}

/** An integer >= 0. */
export function nonNegativeInt(v: unknown, name: string): number {
  if (!Number.isInteger(v) || (v as number) < 0) throw invalidOption(name, 'non-negative integer', v);
  return v as number;
}

/** A finite number > 0. */
export function positiveNumber(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw invalidOption(name, 'positive number', v);
  return v;
}

/** A finite number, within [min, max] when given. */
export function finiteNumber(v: unknown, name: string, range: { min?: number; max?: number } = {}): number {
  const { min, max } = range;
  const ok = typeof v === 'number' && Number.isFinite(v) && (min === undefined || v >= min) && (max === undefined || v <= max);
  if (!ok) {
    const bounds = min !== undefined && max !== undefined ? ` in [${min}, ${max}]` : min !== undefined ? ` >= ${min}` : max !== undefined ? ` <= ${max}` : '';
    throw invalidOption(name, `finite number${bounds}`, v);
  }
  return v as number;
}

/**
 * A short-side range for train-mode scale jitter: null (no jitter), or [min, max] integers with
 * crop <= min <= max.
 */
export function scaleRange(v: unknown, name: string, crop: number): [number, number] | null {
  if (v === null) return null;
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => Number.isInteger(x) && x > 0)) {
    throw invalidOption(name, 'null or [min, max], two positive integers', v);
  }
  const [min, max] = v as [number, number];
  if (min < crop || min > max) throw invalidOption(name, `[min, max] with ${crop} (the crop) <= min <= max`, v);
  return [min, max];
}

export function bool(v: unknown, name: string): boolean {
  if (typeof v !== 'boolean') throw invalidOption(name, 'boolean', v);
  return v;
}

export function string(v: unknown, name: string): string {
  if (typeof v !== 'string' || v.length === 0) throw invalidOption(name, 'non-empty string', v);
  return v;
}

// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
export function fn<F extends Function>(v: unknown, name: string): F {
  if (typeof v !== 'function') throw invalidOption(name, 'function', v);
  return v as F;
}

/** A plain object (not null, not an array). */
export function object<T extends object>(v: unknown, name: string): T {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw invalidOption(name, 'object', v);
  return v as T;
}

/** One of the listed values. */
export function oneOf<T extends string | number | boolean>(v: unknown, name: string, values: readonly T[]): T {
  if (!values.includes(v as T)) throw invalidOption(name, `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, v);
  return v as T;
}

/** `check(v, name)` when v is not undefined, else the default. */
export function optional<T>(v: unknown, name: string, check: (v: unknown, name: string) => T, fallback: T): T {
  return v === undefined ? fallback : check(v, name);
}

/**
 * options.rank and options.world (defaults 0 and 1), validated: this process takes items rank, rank + world, ...
 * @throws InvalidOptionError unless world is a positive integer and rank an integer in [0, world - 1].
 */
export function rankAndWorld(options: { rank?: number; world?: number }): { rank: number; world: number } {
  const world = options.world === undefined ? 1 : positiveInt(options.world, 'options.world');
  const rank = options.rank ?? 0;
  if (!Number.isInteger(rank) || rank < 0 || rank >= world) throw invalidOption('options.rank', `integer in [0, ${world - 1}]`, rank);
  return { rank, world };
}
