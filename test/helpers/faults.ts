/**
 * The fault suite's own helpers (test/faults, issue 11): the processes a run leaves (none may outlive it), tiny
 * inputs (photos, shards), and a small or read-only file system where the machine allows one. The CLI itself is
 * run with helpers/cli.ts, a tiny model made with helpers/model.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jpeg, writeTar } from './images.js';

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
