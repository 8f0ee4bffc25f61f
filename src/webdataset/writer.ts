/**
 * Writing WebDataset tar shards: `TarWriter` (one shard: fixed headers, written under a temp name, fsynced and
 * renamed into place) and `keyFor` (a sample's key from a file's relative path).
 *
 * Keys follow the Python webdataset rule that the key ends at the first dot of the basename (see tar.ts's
 * splitMemberName): the path without its extension, dots in the basename replaced by '_' (`a/x.seg.png` -> key
 * `a/x_seg`, member `a/x_seg.png`), a leading `__` (webdataset's meta prefix) cut to `_`, and `_1`, `_2`, ...
 * appended when a key is already taken (`a/x.jpg` and `a/x.png`).
 *
 * Deterministic: every tar header is fixed (mtime 0, uid/gid 0, mode 0644, empty uname/gname), so the same
 * members in the same order give byte-identical shards. Atomic: a shard is written under a temp name beside it
 * (core/atomic.ts: `.tmp-PID-COUNTER-RANDOM`), fsynced and renamed into place, so a killed run leaves only whole
 * shards (and temps core/atomic.ts's cleanTempsTree removes).
 */
import { createWriteStream, promises as fsp, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import tar from 'tar-stream';
import { tempPathFor } from '../core/atomic.js';

/** The webdataset-safe key for a relative path (see the module comment); `taken` gets the result added. */
export function keyFor(relPath: string, taken: Set<string>): string {
  const slash = relPath.lastIndexOf('/');
  const dir = relPath.slice(0, slash + 1);
  let base = relPath.slice(slash + 1);
  const dot = base.lastIndexOf('.');
  if (dot > 0) base = base.slice(0, dot);
  base = base.replace(/\./g, '_');
  let key = (dir + base).replace(/^__+/, '_');
  if (key === '' || key.endsWith('/')) key += '_';
  if (taken.has(key)) {
    let n = 1;
    while (taken.has(`${key}_${n}`)) n++;
    key = `${key}_${n}`;
  }
  taken.add(key);
  return key;
}

/** Every member's header but its name and size: nothing of the machine, the user or the time gets in. */
const HEADER_FIXED = { mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: new Date(0), type: 'file' as const };

/**
 * One tar shard being written under a temp name beside it (core/atomic.ts tempPathFor), fsynced and renamed into
 * place by finish(). A failure of the file stream or of the tar pack (ENOSPC, EROFS, EIO) is caught here, never
 * an unhandled 'error' event: the next add() or finish() throws it, naming the shard (`path`), and the temp file
 * is removed (finish() on failure, or discard()).
 */
export class TarWriter {
  private readonly pack = tar.pack();
  private readonly out: WriteStream;
  private readonly tmp: string;
  private failed: Error | null = null;
  /** Resolves when the file stream has closed: after finishing, or after an error destroyed it. */
  private readonly closed: Promise<void>;
  constructor(readonly file: string) {
    this.tmp = tempPathFor(file);
    this.out = createWriteStream(this.tmp);
    this.closed = new Promise((resolve) => this.out.once('close', resolve));
    // The first error wins: the file stream's (a write's ENOSPC, or EROFS opening the temp) also destroys the
    // pack with it. Either names the shard, not the temp file.
    const fail = (err: Error) => {
      this.failed ??= Object.assign(err, { path: this.file });
    };
    this.out.on('error', fail);
    this.pack.on('error', fail);
    this.pack.pipe(this.out);
  }

  /** Appends a member. @throws the write's error (naming the shard) once the file or the pack failed. */
  async add(name: string, data: Buffer): Promise<void> {
    if (this.failed) throw this.failed;
    this.pack.entry({ ...HEADER_FIXED, name, size: data.length }, data);
    // Keep memory bounded when the disk is slower than the decode checks; a stream that failed meanwhile
    // never drains, but it closes.
    if (this.out.writableNeedDrain) await Promise.race([once(this.out, 'drain'), this.closed]).catch(() => undefined);
    if (this.failed) throw this.failed;
  }

  /** Ends the tar, fsyncs it and renames it into place. @throws the write's error (naming the shard), temp removed. */
  async finish(): Promise<void> {
    try {
      if (this.failed) throw this.failed;
      this.pack.finalize();
      await this.closed;
      if (this.failed) throw this.failed;
      const fh = await fsp.open(this.tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(this.tmp, this.file);
    } catch (err) {
      await this.discard();
      throw Object.assign(err as Error, { path: this.file });
    }
  }

  /** Stops writing and removes the temp file: the shard never appears. */
  async discard(): Promise<void> {
    this.pack.destroy();
    this.out.destroy();
    await this.closed;
    await fsp.rm(this.tmp, { force: true });
  }
}
