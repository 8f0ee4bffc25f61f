/**
 * Running the built CLI (dist/src/cli.js) in a child process: at once to the end (`pipe`), or with a SIGINT sent
 * once its output shows the run is under way (`interruptWhen`: waits on output, not on time).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';

export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

export interface CliResult {
  /** The exit status; null when a signal ended the process. */
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `pipe ARGS...` to the end; `env` is added to this process's environment (a value of undefined removes one). */
export function pipe(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: timeoutMs, env: withEnv(env) });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** `pipe ARGS...` to the end, in the background (several can run at once). */
export function pipeAsync(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<CliResult> {
  return interruptWhen(args, () => false, { env, timeoutMs });
}

/**
 * `pipe ARGS...`, sent SIGINT once `when(stdout, stderr)` holds (checked on every chunk of output), and a second
 * time once `again` holds after that, when given. A process that outlives `timeoutMs` is killed (SIGKILL: the
 * result says so).
 */
export function interruptWhen(
  args: string[],
  when: (stdout: string, stderr: string) => boolean,
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; again?: (stdout: string, stderr: string) => boolean } = {},
): Promise<CliResult & { interrupted: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: withEnv(options.env ?? {}) });
    let stdout = '';
    let stderr = '';
    let interrupted = 0;
    const check = () => {
      if (interrupted === 0 ? when(stdout, stderr) : interrupted === 1 && options.again?.(stdout, stderr)) {
        interrupted++;
        child.kill('SIGINT');
      }
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => ((stdout += d), check()));
    child.stderr.setEncoding('utf8').on('data', (d: string) => ((stderr += d), check()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, interrupted });
    });
  });
}

function withEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env };
  // A job array the tests themselves run in must not split the tests' own runs.
  for (const name of ['SLURM_ARRAY_TASK_ID', 'SLURM_ARRAY_TASK_MIN', 'SLURM_ARRAY_TASK_STEP', 'SLURM_ARRAY_TASK_COUNT', 'JOB_COMPLETION_INDEX']) delete out[name];
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** No line of `stderr` looks like a stack frame. */
export function noStack(stderr: string): void {
  assert.ok(!/^\s+at /m.test(stderr), `a stack trace: ${stderr}`);
}

/** Every temp file (`.tmp-*`, `*.tmp-PID`) under `dir`, recursively, as paths relative to it. */
export function tempFilesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (/\.tmp-/.test(e.name)) out.push(p);
      if (e.isDirectory()) walk(p);
    }
  };
  walk('');
  return out;
}
