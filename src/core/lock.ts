/**
 * One writer per folder: `pipe train` and `pipe demo` hold their run directory, `pipe shard` its --out, so that
 * two runs started on one folder cannot interleave their files (one run's retention removing the checkpoint the
 * other is reading, both appending to metrics.jsonl).
 *
 * The lock is a file, `.colorpipe.lock`, holding the owner's pid, host, start time and command. It is taken
 * atomically: written whole under a temp name, fsynced, then hard-linked to its name, which fails when one
 * exists (open's O_EXCL where the file system has no hard links). It is released on every way out of the run
 * (success, error, Ctrl-C; process.exit through an 'exit' handler). A SIGKILLed or powered-off run leaves it:
 * the next run sees that its process is gone (no such pid on this host, a pid since reused by another
 * process, or a machine restarted since) and takes it over, saying so in one line. A lock held on another host
 * cannot be checked from here: it is refused, naming the host and the file to remove if that run is over.
 */
import { existsSync, promises as fsp, readFileSync, unlinkSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { checkWritableDir, isRunning, tempPathFor, withPath, writeSynced } from './atomic.js';
import { ColorpipeError, printable } from './errors.js';

/** The lock's file name in the folder it guards. */
export const LOCK_FILE = '.colorpipe.lock';

/** What a lock file records of its owner. */
export interface LockOwner {
  pid: number;
  host: string;
  /** When it took the lock (ISO 8601). */
  since: string;
  /** What runs (`pipe train`). */
  command: string;
  /** Linux: the boot it ran in, and its start time in clock ticks since boot (a pid reused later differs). */
  boot?: string;
  start?: string;
}

/** A lock held by this process. */
export interface FolderLock {
  file: string;
  /** Removes the lock file if it is still this process's (idempotent). */
  release(): Promise<void>;
}

/** Linux's id of this boot, or undefined elsewhere. */
function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Linux: a process's start time (clock ticks since boot, field 22 of /proc/PID/stat), or undefined. */
function startTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count the fields after its last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether the owner still runs: 'live', 'gone', or 'elsewhere' (another host: cannot be told from here). */
function ownerState(o: LockOwner): 'live' | 'gone' | 'elsewhere' {
  if (o.host !== os.hostname()) return 'elsewhere';
  const boot = bootId();
  if (o.boot && boot && o.boot !== boot) return 'gone';
  if (!isRunning(o.pid)) return 'gone';
  const start = startTicks(o.pid);
  if (o.start && start && o.start !== start) return 'gone';
  return 'live';
}

function describe(o: LockOwner): string {
  return `${printable(o.command)} (pid ${o.pid} on host ${printable(o.host)}, since ${printable(o.since)})`;
}

/** The owner a lock file's text records, or null for text that is not a lock. */
function parseOwner(text: string): LockOwner | null {
  try {
    const o = JSON.parse(text) as LockOwner;
    return Number.isInteger(o?.pid) && typeof o.host === 'string' && typeof o.since === 'string' && typeof o.command === 'string' ? o : null;
  } catch {
    return null;
  }
}

/**
 * Creates `file` holding `text`, whole, unless it exists: true when created. A hard link of a complete temp
 * file, so no reader ever sees it half written; O_EXCL on a file system without hard links.
 */
async function createWhole(file: string, text: string): Promise<boolean> {
  const tmp = tempPathFor(file);
  try {
    await writeSynced(tmp, text, 'wx');
    await fsp.link(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw withPath(err, file);
    try {
      await writeSynced(file, text, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw withPath(e, file);
    }
    return true;
  } finally {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
  }
}

/** The text of `file`, or null when it is gone. */
async function readIfThere(file: string): Promise<string | null> {
  return fsp.readFile(file, 'utf8').catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw withPath(err, file);
  });
}

/**
 * Moves aside the lock file whose text is `stale` (its owner gone), unless another process replaced it meanwhile:
 * the file renamed aside is then put back. Of two processes taking over one stale lock at once, one gets it.
 */
async function removeStale(file: string, stale: string): Promise<void> {
  const aside = tempPathFor(file);
  try {
    await fsp.rename(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw withPath(err, file);
  }
  if ((await readIfThere(aside)) !== stale) await fsp.link(aside, file).catch(() => undefined);
  await fsp.rm(aside, { force: true });
}

/**
 * Takes `dir`'s lock for `command` (`pipe train`), making `dir` if needed (checkWritableDir first: a folder that
 * cannot be written is that error, naming it). Takes over a lock whose process is gone, with one line on stderr.
 * @throws ColorpipeError 'ERR_LOCKED' naming the owner (command, pid, host, since when) while it runs, or runs
 *   on another host (it cannot be checked from here: the line names the file to remove once that run is over),
 *   or when the lock file is not one colorpipe wrote.
 */
export async function lockFolder(dir: string, command: string): Promise<FolderLock> {
  await checkWritableDir(dir);
  const file = join(dir, LOCK_FILE);
  const boot = bootId();
  const start = startTicks(process.pid);
  const mine: LockOwner = {
    pid: process.pid, host: os.hostname(), since: new Date().toISOString(), command,
    ...(boot ? { boot } : {}), ...(start ? { start } : {}),
  };
  const text = JSON.stringify(mine) + '\n';
  // Each round either takes the lock, refuses, or removes a stale one; a few rounds cover the races.
  for (let round = 0; round < 5; round++) {
    let made: boolean;
    try {
      made = await createWhole(file, text);
    } catch (err) {
      // The folder went away under us (a run that failed before writing anything removes its empty folder).
      if (round < 4 && !existsSync(dir)) {
        await checkWritableDir(dir);
        continue;
      }
      throw err;
    }
    if (made) return held(file, text);
    const found = await readIfThere(file);
    if (found === null) continue;
    const owner = parseOwner(found);
    if (!owner) throw new ColorpipeError('ERR_LOCKED', `${printable(dir)} has a lock file colorpipe cannot read (${printable(file)}): remove it if no colorpipe run is writing there`);
    const state = ownerState(owner);
    if (state === 'live') throw new ColorpipeError('ERR_LOCKED', `${printable(dir)} is in use by ${describe(owner)}: one run writes a folder at a time`);
    if (state === 'elsewhere') {
      throw new ColorpipeError(
        'ERR_LOCKED',
        `${printable(dir)} is locked by ${describe(owner)}; whether it still runs cannot be checked from ${printable(os.hostname())}: ` +
          `if it does not, remove ${printable(file)}`,
      );
    }
    process.stderr.write(`colorpipe: note: ${printable(dir)}: taking over the lock of ${describe(owner)}, which is no longer running\n`);
    await removeStale(file, found);
  }
  throw new ColorpipeError('ERR_LOCKED', `${printable(dir)}: could not take its lock ${printable(file)} (other processes keep taking it)`);
}

/** The lock just taken: released by release(), or at the latest when the process exits. */
function held(file: string, text: string): FolderLock {
  let released = false;
  // Only a file that still holds this process's text is removed (never a lock another process took over).
  const onExit = () => {
    try {
      if (readFileSync(file, 'utf8') === text) unlinkSync(file);
    } catch {
      // Gone already, or unreadable: nothing of this process's to remove.
    }
  };
  process.on('exit', onExit);
  return {
    file,
    async release() {
      if (released) return;
      released = true;
      process.off('exit', onExit);
      if ((await readIfThere(file).catch(() => null)) === text) await fsp.rm(file, { force: true });
    },
  };
}
