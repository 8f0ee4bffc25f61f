/**
 * Atomic file and directory writes: everything colorpipe writes (outputs, checkpoints, shards, reports) goes
 * to a temporary name in the same directory and is renamed into place, so a killed run leaves only whole
 * files. rename(2) is atomic within one file system; that is why the temp name lives beside the target.
 */
import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join, relative, resolve, sep } from 'node:path';

let counter = 0;

/**
 * A temp path beside `target` that no other writer (process or call) uses: `.tmp-PID-COUNTER-RANDOM`. The name
 * is short and leaves the target's out, so a target whose name is at the file system's limit (255 bytes) can
 * still be staged; the PID lets cleanTempsTree tell a killed writer's leftovers from a live one's.
 */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.tmp-${process.pid}-${counter++}-${randomBytes(4).toString('hex')}`);
}

// tempPathFor's names, and older colorpipes' `.tmp-TARGET-PID-COUNTER` and the shard writer's
// `NAME.tar.tmp-PID` / `classes.json.tmp-PID`, each with the writer's PID.
const TEMP_NAME = /^\.tmp-(\d+)-\d+-[0-9a-f]+$/;
const OLD_TEMP_NAME = /^\.tmp-.+-(\d+)-\d+$/;
const OLD_SHARD_TEMP_NAME = /^.+\.(?:tar|json)\.tmp-(\d+)$/;

/** The PID in a temp name tempPathFor made (or an older colorpipe did), null for any other name. */
export function tempWriterPid(name: string): number | null {
  const m = TEMP_NAME.exec(name) ?? OLD_TEMP_NAME.exec(name) ?? OLD_SHARD_TEMP_NAME.exec(name);
  return m ? Number(m[1]) : null;
}

/**
 * `err` made to name the file it was about, for the one line the user reads (errors.ts fileErrorLine): a
 * write's ENOSPC carries no path, so it gets `path`. Returns `err`; anything but a file-system error is left as is.
 */
export function withPath(err: unknown, path: string): unknown {
  if (err && typeof err === 'object' && 'code' in err && !(err as NodeJS.ErrnoException).path) (err as NodeJS.ErrnoException).path = path;
  return err;
}

/**
 * `mkdir -p dir`, failing with the real reason and the first directory it could not create. Node's recursive
 * mkdir reports ENOENT for a missing parent it could not make (on a read-only file system: "no such file or
 * directory" instead of EROFS); on ENOENT each missing level is made in turn, and the first that fails is the
 * error, its own code and path.
 * @throws the file-system error, its `path` the directory that could not be made (or the file in the way).
 */
export async function makeDir(dir: string): Promise<void> {
  try {
    await fsp.mkdir(dir, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw withPath(err, dir);
    const missing: string[] = [];
    for (let d = resolve(dir); !(await exists(d)); d = dirname(d)) {
      missing.unshift(d);
      if (dirname(d) === d) break;
    }
    for (const d of missing) {
      try {
        await fsp.mkdir(d);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw withPath(e, d);
      }
    }
  }
}

/** Writes `data` to `file` opened with `flag` ('w', or 'wx': only if it does not exist) and fsyncs it. */
export async function writeSynced(file: string, data: string | Uint8Array, flag: 'w' | 'wx'): Promise<void> {
  const fh = await fsp.open(file, flag);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes `data` to `target` atomically (temp + fsync + rename).
 * @throws the file-system error (ENOSPC, EROFS, ...), naming `target` (not the temp name, and where Node
 *   left the path out); the temp file removed.
 */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await makeDir(dirname(target));
  const tmp = tempPathFor(target);
  try {
    await writeSynced(tmp, data, 'w');
    await fsp.rename(tmp, target);
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw withPath(inTarget(err, tmp, target), target);
  }
}

/**
 * Makes `dir` (and its parents) and checks that a file can be created in it, so a run that would fail at its
 * first write (a read-only or full disk, no permission, a file in the way) fails before any work, naming `dir`,
 * or the first directory on the way that could not be made (makeDir: EROFS, not a misleading ENOENT).
 * @throws the file-system error, its `path` set to `dir` (or to that directory).
 */
export async function checkWritableDir(dir: string): Promise<void> {
  await makeDir(dir);
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
 * @throws what `fill` or the file system throws, the temp directory removed; a file-system error names the
 *   file under `target` it was about (not the temp name), or `target` when it named none (a write's ENOSPC).
 */
export async function writeDirAtomic(target: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  await makeDir(dirname(target));
  const tmp = tempPathFor(target);
  try {
    await fsp.mkdir(tmp);
    await fill(tmp);
    const aside = await exists(target) ? tempPathFor(target) : null;
    if (aside) await fsp.rename(target, aside);
    await fsp.rename(tmp, target);
    if (aside) await fsp.rm(aside, { recursive: true, force: true });
  } catch (err) {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw withPath(inTarget(err, tmp, target), target);
  }
}

/** A file-system error about a path inside `tmp` made to name the same path inside `target`. */
function inTarget(err: unknown, tmp: string, target: string): unknown {
  const e = err as NodeJS.ErrnoException | null;
  if (e && typeof e === 'object' && typeof e.path === 'string') {
    const rel = relative(tmp, e.path);
    if (rel === '' || (!rel.startsWith('..') && !rel.startsWith(sep))) e.path = join(target, rel);
  }
  return err;
}

/**
 * Points symlink `link` at `to` atomically (new symlink under a temp name, renamed over the old one).
 * @throws the file-system error, naming `link`; the temp link removed.
 */
export async function symlinkAtomic(to: string, link: string): Promise<void> {
  const tmp = tempPathFor(link);
  try {
    await fsp.symlink(to, tmp);
    await fsp.rename(tmp, link);
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw withPath(inTarget(err, tmp, link), link);
  }
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

/** Whether a process with this pid runs on this machine (under any user). */
export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
