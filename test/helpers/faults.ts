/**
 * The fault suite's helpers (test/faults, issue 11): the CLI run as a user runs it (a child process, under a
 * time limit), the checks every case shares (no stack trace, no temp file left, no process left), and tiny
 * inputs (photos, shards, a model, a small or read-only file system where the machine allows one).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempWriterPid } from '../../src/core/atomic.js';
import { jpeg, writeTar } from './images.js';

export const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

/** `pipe ARGS...`, waited for (at most 60 s: a hang fails the caller instead of the whole suite). */
export const pipe = (...args: string[]): SpawnSyncReturns<string> =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });

export interface Ran {
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
  /** Killed (SIGKILL) after this long, and `timedOut` set. Default 60 s. */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Starts `pipe ARGS...` (stdout and stderr piped) without waiting for it. */
export function start(args: string[], o: RunOptions = {}): ChildProcess {
  return spawn(process.execPath, [CLI, ...args], { cwd: o.cwd, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The output and exit of a started `pipe`, SIGKILLed if it runs past `timeoutMs`. */
export function finish(p: ChildProcess, timeoutMs = 60_000): Promise<Ran> {
  const t0 = Date.now();
  let stdout = '';
  let stderr = '';
  p.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  p.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
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

/** `pipe ARGS...` run to its end (or killed at `timeoutMs`), without blocking the test's event loop. */
export function run(args: string[], o: RunOptions = {}): Promise<Ran> {
  return finish(start(args, o), o.timeoutMs);
}

/** No line of `stderr` looks like a stack frame. */
export function noStack(stderr: string): void {
  assert.ok(!/^\s+at /m.test(stderr), `a stack trace: ${stderr}`);
}

/** The run ended by itself (no hang) with `status`; `stderr` is shown when it did not. */
export function exited(r: Ran, status: number): void {
  assert.ok(!r.timedOut, `still running after ${r.ms} ms (killed): ${r.stderr}`);
  assert.equal(r.status, status, r.stderr);
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
 * Temp files and directories under `dir` (recursively, links not followed) named as colorpipe names them:
 * src/core/atomic.ts tempPathFor's `.tmp-PID-COUNTER-RANDOM` (and the older `.tmp-TARGET-PID-COUNTER`), and the
 * shard writer's `NAME.tmp-PID`.
 */
export function tempLeftovers(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let entries: import('node:fs').Dirent[];
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

/** The parent pid of `pid` (Linux /proc), or null when it is gone. */
function parentOf(pid: number): number | null {
  try {
    // The command name is in parentheses and may hold spaces: the fields after ')' are state, ppid, ...
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/** Every process below `pid` (children, their children, ...), from /proc. */
export function descendants(pid: number): number[] {
  const all = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number);
  const parent = new Map(all.map((p) => [p, parentOf(p)] as const));
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const [c, pp] of parent) {
      if (pp === p) {
        out.push(c);
        walk(c);
      }
    }
  };
  walk(pid);
  return out;
}

/** `pid` runs (exists and is not a zombie waiting to be reaped). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 20 ms until it holds; false when `ms` passed first. */
export async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) return false;
    await sleep(20);
  }
  return true;
}

/** A pid that no process has now: a child that already exited (what a SIGKILLed writer leaves). */
export function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const pid = Number(r.stdout);
  assert.ok(pid > 0 && !alive(pid));
  return pid;
}

/** `n` small colourful JPEGs (w x h) in `dir`, named by `name(i)` (subfolders made); returns their paths. */
export async function photos(dir: string, n: number, o: { w?: number; h?: number; name?: (i: number) => string } = {}): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const file = join(dir, o.name ? o.name(i) : `p${String(i).padStart(3, '0')}.jpg`);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, await jpeg(o.w ?? 48, o.h ?? 40, i));
    out.push(file);
  }
  return out;
}

/** A WebDataset shard of small JPEGs: sample KEY gets KEY.jpg and, when given, KEY.cls. */
export async function photoShard(file: string, samples: { key: string; cls?: string }[]): Promise<string> {
  const members: { name: string; data: Buffer | string }[] = [];
  let seed = 0;
  mkdirSync(join(file, '..'), { recursive: true });
  for (const s of samples) {
    members.push({ name: `${s.key}.jpg`, data: await jpeg(48, 40, seed++) });
    if (s.cls !== undefined) members.push({ name: `${s.key}.cls`, data: s.cls });
  }
  await writeTar(file, members);
  return file;
}

/** A tiny untrained colorizer (1/8 width, 32 px, no class head) saved as a tfjs model in `dir`. */
export async function tinyModel(dir: string): Promise<string> {
  const { setupEngine } = await import('../../src/model/engine.js');
  const { buildColorizer, disposeColorizer, saveColorizer } = await import('../../src/model/network.js');
  await setupEngine({ backend: 'cpu' });
  const net = buildColorizer({ inputSize: 32, width: 0.125, numClasses: 0 }, { seed: 1 });
  await saveColorizer(net, dir);
  disposeColorizer(net);
  return dir;
}

/**
 * Mounts a tmpfs at `dir` (made if missing) with `options` (e.g. `size=64k`, `ro`); returns its unmount, or
 * a reason string when this machine does not allow it (not root, no CAP_SYS_ADMIN, not Linux).
 */
export function mountTmpfs(dir: string, options: string): (() => void) | string {
  if (process.platform !== 'linux') return 'needs Linux tmpfs';
  if (process.getuid?.() !== 0) return 'mounting a small tmpfs needs root';
  mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return `mount -t tmpfs failed here: ${(r.stderr || String(r.error)).trim()}`;
  return () => {
    spawnSync('umount', [dir]);
    if (isMountPoint(dir)) spawnSync('umount', ['-l', dir]);
  };
}

/** Remounts a tmpfs made by mountTmpfs read-only. */
export function remountReadOnly(dir: string): void {
  const r = spawnSync('mount', ['-o', 'remount,ro', dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

function isMountPoint(dir: string): boolean {
  try {
    return readFileSync('/proc/self/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === dir);
  } catch {
    return false;
  }
}
