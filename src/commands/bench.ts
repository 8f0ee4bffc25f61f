/**
 * `pipe bench loader|train|colorize|predict|fidelity [options]`: runs one of the benchmarks in bench/ (compiled to dist/bench/),
 * each in its own Node process so engines and worker pools start fresh. Each prints JSON on stdout.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { InvalidOptionError } from '../core/errors.js';

const BENCHES = ['loader', 'train', 'colorize', 'predict', 'fidelity'] as const;

export async function run(argv: string[]): Promise<number> {
  const [which, ...rest] = argv;
  if (!which || which === '--help' || which === '-h') {
    process.stdout.write(`Usage: pipe bench ${BENCHES.join('|')} [options]   (prints JSON; see BENCHMARKS.md)\n`);
    return which ? 0 : 1;
  }
  if (!(BENCHES as readonly string[]).includes(which)) {
    throw new InvalidOptionError(`Expected one of ${BENCHES.join('|')} for the benchmark but received ${which}`);
  }
  const script = fileURLToPath(new URL(`../../bench/${which}.js`, import.meta.url));
  if (!existsSync(script)) throw new InvalidOptionError(`Benchmark ${script} is missing: run 'npm run build' first`);
  const r = spawnSync(process.execPath, [script, ...rest], { stdio: 'inherit' });
  return r.status ?? 1;
}
