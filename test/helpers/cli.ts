/**
 * Running the built CLI (dist/src/cli.js) as a user runs it, in a child process under a time limit: waited for
 * (`pipe`), in the background (`run`; `start` and `finish` for a test that acts on the process meanwhile), or sent
 * a SIGINT once its output shows the run is under way (`interruptWhen`: waits on output, not on time). And the
 * checks runs share: its exit (`exited`), no stack trace, its output lines, no temp file left, what it wrote.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempWriterPid } from '../../src/core/atomic.js';

export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** `pipe` blocks the test's event loop, so node:test's own timeout cannot end it: this limit is its hang guard. */
const SYNC_TIMEOUT_MS = 60_000;
const ASYNC_TIMEOUT_MS = 120_000;

export interface CliResult {
  /** The exit status; null when a signal ended the process. */
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Killed for running past `timeoutMs`. */
  timedOut: boolean;
  ms: number;
}

export interface RunOptions {
  cwd?: string;
  /** Added to this process's environment (a value of undefined removes one). */
  env?: NodeJS.ProcessEnv;
  /** Killed after this long (`pipe`: SIGTERM, default 60 s; the others: SIGKILL, default 120 s), `timedOut` set. */
  timeoutMs?: number;
  /** The cli.js to run (default CLI: this checkout's build; a copy stands for an installed package). */
  cli?: string;
}

/** `pipe ARGS...` waited for. */
export function pipe(args: string[], o: RunOptions = {}): CliResult {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [o.cli ?? CLI, ...args], { cwd: o.cwd, env: withEnv(o.env), encoding: 'utf8', timeout: o.timeoutMs ?? SYNC_TIMEOUT_MS });
  const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
  if (r.error && !timedOut) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr, timedOut, ms: Date.now() - t0 };
}

/**
 * Starts `pipe ARGS...` (stdout and stderr piped) without waiting for it; `finish` collects it. `detached`: in a
 * process group of its own, as a terminal starts a command (a signal to -pid reaches every process of it).
 */
export function start(args: string[], o: Omit<RunOptions, 'timeoutMs'> & { detached?: boolean } = {}): ChildProcess {
  return spawn(process.execPath, [o.cli ?? CLI, ...args], { cwd: o.cwd, env: withEnv(o.env), stdio: ['ignore', 'pipe', 'pipe'], detached: o.detached ?? false });
}

/**
 * The output and exit of a started `pipe`, SIGKILLed if it runs past `timeoutMs`. `onOutput` sees all the output so
 * far on every chunk of it.
 */
export function finish(
  p: ChildProcess,
  timeoutMs = ASYNC_TIMEOUT_MS,
  onOutput: (stdout: string, stderr: string) => void = () => undefined,
): Promise<CliResult> {
  const t0 = Date.now();
  let stdout = '';
  let stderr = '';
  p.stdout?.setEncoding('utf8').on('data', (c: string) => ((stdout += c), onOutput(stdout, stderr)));
  p.stderr?.setEncoding('utf8').on('data', (c: string) => ((stderr += c), onOutput(stdout, stderr)));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    p.kill('SIGKILL');
  }, timeoutMs);
  return new Promise((resolve, reject) => {
    p.on('error', reject);
    p.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, timedOut, ms: Date.now() - t0 });
    });
  });
}

/** `pipe ARGS...` run to its end (or killed at `timeoutMs`) without blocking the test's event loop: several can run at once. */
export function run(args: string[], o: RunOptions = {}): Promise<CliResult> {
  return finish(start(args, o), o.timeoutMs);
}

/**
 * `pipe ARGS...`, sent SIGINT once `when(stdout, stderr)` holds (checked on every chunk of output), and a second
 * time once `again` holds after that, when given. `interrupted` counts the SIGINTs sent.
 */
export async function interruptWhen(
  args: string[],
  when: (stdout: string, stderr: string) => boolean,
  o: RunOptions & { again?: (stdout: string, stderr: string) => boolean } = {},
): Promise<CliResult & { interrupted: number }> {
  const p = start(args, o);
  let interrupted = 0;
  const r = await finish(p, o.timeoutMs, (stdout, stderr) => {
    if (interrupted === 0 ? when(stdout, stderr) : interrupted === 1 && o.again?.(stdout, stderr)) {
      interrupted++;
      p.kill('SIGINT');
    }
  });
  return { ...r, interrupted };
}

function withEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env };
  // A job array the tests themselves run in must not split the tests' own runs.
  for (const name of ['SLURM_ARRAY_TASK_ID', 'SLURM_ARRAY_TASK_MIN', 'SLURM_ARRAY_TASK_STEP', 'SLURM_ARRAY_TASK_COUNT', 'JOB_COMPLETION_INDEX']) delete out[name];
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** The run ended by itself (no hang) with `status`; `stderr` is shown when it did not. */
export function exited(r: CliResult, status: number): void {
  assert.ok(!r.timedOut, `still running after ${r.ms} ms (killed): ${r.stderr}`);
  assert.equal(r.status, status, r.stderr);
}

/** No line of `stderr` looks like a stack frame. */
export function noStack(stderr: string): void {
  assert.ok(!/^\s+at /m.test(stderr), `a stack trace: ${stderr}`);
}

/** The lines of `text` that match `re`. */
export function linesMatching(text: string, re: RegExp): string[] {
  return text.split('\n').filter((l) => re.test(l));
}

/** The last line of stdout as JSON (`--json` summaries). */
export function lastJson<T>(stdout: string): T {
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as T;
}

/**
 * Temp files and directories under `dir` (recursively, links not followed; a missing or unreadable folder has
 * none) named as colorpipe names them: src/core/atomic.ts tempWriterPid's names (tempPathFor's
 * `.tmp-PID-COUNTER-RANDOM`, the older `.tmp-TARGET-PID-COUNTER` and the shard writer's `NAME.tar.tmp-PID`), and
 * any other `.tmp-*` (what cleanTemps removes) or `NAME.tmp-PID`. Not names that merely contain `.tmp-`.
 */
export function tempLeftovers(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (tempWriterPid(e.name) !== null || /\.tmp-\d+$/.test(e.name) || e.name.startsWith('.tmp-')) out.push(join(d, e.name));
      else if (e.isDirectory()) walk(join(d, e.name));
    }
  };
  walk(dir);
  return out;
}

/** Every plain file under `dir` (relative paths, sorted), links not followed. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name), join(rel, e.name));
      else if (e.isFile()) out.push(join(rel, e.name));
    }
  };
  if (existsSync(dir)) walk(dir, '');
  return out.sort();
}
