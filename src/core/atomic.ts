/**
 * Atomic file and directory writes: everything colorpipe writes (outputs, checkpoints, shards, reports) goes
 * to a temporary name in the same directory and is renamed into place, so a killed run leaves only whole
 * files. rename(2) is atomic within one file system; that is why the temp name lives beside the target.
 */
import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';

let counter = 0;

/**
 * A temp path beside `target` that no other writer (process or call) uses: `.tmp-PID-COUNTER-RANDOM`. The name
 * is short and leaves the target's out, so a target whose name is at the file system's limit (255 bytes) can
 * still be staged; the PID lets cleanTempsTree tell a killed writer's leftovers from a live one's.
 */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.tmp-${process.pid}-${counter++}-${randomBytes(4).toString('hex')}`);
}

// tempPathFor's names, and the older `.tmp-TARGET-PID-COUNTER` ones, each with the writer's PID.
const TEMP_NAME = /^\.tmp-(\d+)-\d+-[0-9a-f]+$/;
const OLD_TEMP_NAME = /^\.tmp-.+-(\d+)-\d+$/;

/** The PID in a temp name tempPathFor made (or an older colorpipe did), null for any other name. */
export function tempWriterPid(name: string): number | null {
  const m = TEMP_NAME.exec(name) ?? OLD_TEMP_NAME.exec(name);
  return m ? Number(m[1]) : null;
}

/** A file-system error names the file it was about: a write's ENOSPC carries no path, so give it `path`. */
function withPath(err: unknown, path: string): unknown {
  if (err && typeof err === 'object' && 'code' in err && !(err as NodeJS.ErrnoException).path) (err as NodeJS.ErrnoException).path = path;
  return err;
}

/**
 * Writes `data` to `target` atomically (temp + fsync + rename).
 * @throws the file-system error (ENOSPC, EROFS, ...), with `path` set to `target` when Node left it out.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await fsp.mkdir(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  try {
    const fh = await fsp.open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, target);
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw withPath(err, target);
  }
}

/**
 * Makes `dir` (and its parents) and checks that a file can be created in it, so a run that would fail at its
 * first write (a read-only or full disk, no permission, a file in the way) fails before any work, naming `dir`.
 * @throws the file-system error, its `path` set to `dir`.
 */
export async function checkWritableDir(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const probe = tempPathFor(join(dir, 'probe'));
  try {
    await (await fsp.open(probe, 'wx')).close();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e && typeof e === 'object') e.path = dir;
    throw err;
  } finally {
    await fsp.rm(probe, { force: true }).catch(() => undefined);
  }
}

/**
 * Creates a directory atomically: `fill(tmpDir)` writes its contents into a temp directory beside `target`,
 * which is then renamed to `target` (which must not exist; an existing one is replaced by rename-aside).
 */
export async function writeDirAtomic(target: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  await fsp.mkdir(dirname(target), { recursive: true });
  const tmp = tempPathFor(target);
  await fsp.mkdir(tmp, { recursive: true });
  try {
    await fill(tmp);
    const aside = await exists(target) ? tempPathFor(target) : null;
    if (aside) await fsp.rename(target, aside);
    await fsp.rename(tmp, target);
    if (aside) await fsp.rm(aside, { recursive: true, force: true });
  } catch (err) {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  }
}

/** Points symlink `link` at `to` atomically (new symlink under a temp name, renamed over the old one). */
export async function symlinkAtomic(to: string, link: string): Promise<void> {
  const tmp = tempPathFor(link);
  await fsp.symlink(to, tmp);
  await fsp.rename(tmp, link);
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Removes temp files/dirs a killed writer left in `dir` (names from tempPathFor). */
export async function cleanTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  await Promise.all(
    names.filter((n) => n.startsWith('.tmp-')).map((n) => fsp.rm(join(dir, n), { recursive: true, force: true })),
  );
}

/**
 * Removes, in `dir` and every directory below it (symlinks not followed, so no loop), the temp files and
 * directories tempPathFor names whose writer is gone (a killed run): a process with that PID no longer runs.
 * Another process writing into the same tree (colorize --rank R --world W) keeps its temps. PIDs are
 * per-machine: on a file system shared between machines, a live writer elsewhere may lose a temp (it then
 * reports that file as failed, and a rerun writes it).
 */
export async function cleanTempsTree(dir: string): Promise<number> {
  let removed = 0;
  const walk = async (d: string): Promise<void> => {
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fsp.readdir(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const pid = tempWriterPid(e.name);
      if (pid !== null) {
        if (pid !== process.pid && !isRunning(pid)) {
          await fsp.rm(join(d, e.name), { recursive: true, force: true }).catch(() => undefined);
          removed++;
        }
      } else if (e.isDirectory()) {
        await walk(join(d, e.name));
      }
    }
  };
  await walk(dir);
  return removed;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
