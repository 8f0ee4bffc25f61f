import { applyOverrides, loadConfig, makeConfig, type Config } from '../src/config.js';

/**
 * The benchmarks' command lines: each flag in order, with `next()` taking its value (an error naming the flag
 * when there is none). The switch over flags stays in each benchmark.
 */
export function forEachArg(argv: readonly string[], on: (flag: string, next: () => string) => void): void {
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    on(flag, () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    });
  }
}

/** The network and batch a training benchmark measures (benchConfig). */
export interface BenchNetOptions {
  /** A config file (configs/*.json); default: the tiny network of issue 3. */
  config?: string;
  size?: number;
  width?: number;
  batch?: number;
  /** Overrides the config's numClasses. */
  classes?: number;
}

/**
 * A benchmark's training config: a config file, or the tiny network of issue 3 (64 px, width 1/4, no classes,
 * batch 8), with the size, width, batch and class count given on the command line.
 */
export function benchConfig(o: BenchNetOptions): Config {
  let c = o.config ? loadConfig(o.config) : makeConfig({ name: 'bench-tiny', model: { inputSize: 64, width: 0.25, numClasses: 0 }, train: { batch: 8 } });
  c = applyOverrides(c, { size: o.size, width: o.width, batch: o.batch });
  if (o.classes !== undefined) c.model.numClasses = o.classes;
  return c;
}

/** The median of `xs` (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}
