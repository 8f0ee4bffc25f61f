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
