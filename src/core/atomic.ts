/**
 * Atomic file and directory writes: everything colorpipe writes (outputs, checkpoints, shards, reports) goes
 * to a temporary name in the same directory and is renamed into place, so a killed run leaves only whole
 * files. rename(2) is atomic within one file system; that is why the temp name lives beside the target.
 */
import { promises as fsp } from 'node:fs';
import { dirname, basename, join } from 'node:path';

let counter = 0;

/** A temp path beside `target` that no other writer (process or call) uses. */
export function tempPathFor(target: string): string {
  return join(dirname(target), `.tmp-${basename(target)}-${process.pid}-${counter++}`);
}

/** Writes `data` to `target` atomically (temp + fsync + rename). */
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
    throw err;
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
