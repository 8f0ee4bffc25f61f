/**
 * `pipe bench loader|train|colorize|predict|fidelity|memory [options]`: runs one of the benchmarks in bench/ (compiled to dist/bench/),
 * each in its own Node process so engines and worker pools start fresh. Each prints JSON on stdout.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { InvalidOptionError } from '../core/errors.js';
import { interruptible } from './interrupt.js';

const BENCHES = ['loader', 'train', 'colorize', 'predict', 'fidelity', 'memory'] as const;

export async function run(argv: string[]): Promise<number> {
  const [which, ...rest] = argv;
  if (!which || which === '--help' || which === '-h') {
    process.stdout.write(`Usage: pipe bench ${BENCHES.join('|')} [options]   (prints JSON; see BENCHMARKS.md)\n`);
    return which ? 0 : 2; // no benchmark named: a usage error
  }
  if (!(BENCHES as readonly string[]).includes(which)) {
    throw new InvalidOptionError(`Expected one of ${BENCHES.join('|')} for the benchmark but received ${which}`);
  }
  const script = fileURLToPath(new URL(`../../bench/${which}.js`, import.meta.url));
  if (!existsSync(script)) {
    // The benchmarks need the repository (bench/, fixtures/, demo/): the npm package ships without them. A clone
    // has their sources (bench/NAME.ts beside dist/): it was not built yet.
    const clone = existsSync(fileURLToPath(new URL(`../../../bench/${which}.ts`, import.meta.url)));
    throw new InvalidOptionError(clone
      ? `Benchmark ${script} is not built: run 'npm run build' first`
      : "pipe bench runs in a clone of the colorpipe repository (git clone, then 'npm ci' and 'npm run build'): the installed package ships without the benchmarks and their fixtures");
  }
  // Ctrl-C: a terminal's reaches the benchmark too (one process group); a `kill -INT` of this process is passed on.
  return interruptible('stopping the benchmark', (stop) =>
    new Promise<number>((resolve, reject) => {
      const child = spawn(process.execPath, [script, ...rest], { stdio: 'inherit' });
      const forward = () => child.kill('SIGINT');
      stop.addEventListener('abort', forward, { once: true });
      child.once('error', reject);
      child.once('exit', (code, signal) => {
        stop.removeEventListener('abort', forward);
        resolve(code ?? (signal === 'SIGINT' ? 130 : 1));
      });
    }));
}
