/**
 * Reading one WebDataset tar shard, streaming (a shard is never held in memory).
 *
 * Grouping follows the Python webdataset library (`tariterators.group_by_keys` with `base_plus_ext`):
 * a member `a/b/x.seg.png` has key `a/b/x` and extension `seg.png` (the name up to the first dot of its last
 * path component; extensions lowercased); consecutive members with the same key form one sample. Skipped like
 * webdataset's meta files: non-regular members (directories, links), names starting with `__`, basenames
 * starting with `.`, and names with no extension. A repeated extension within one sample keeps the first member
 * (newer webdataset raises on it; we report it instead).
 *
 * The image: the first member whose extension is exactly one of jpg jpeg png webp tif tiff gif avif; if there
 * is none, the first whose extension ends in one of them (`seg.png`), so `x.jpg` beats `x.seg.png` whatever the
 * member order. `.cls` is trimmed decimal text (an integer), `.json` is parsed; every member stays in `fields`.
 *
 * Bad input never ends the stream (core/errors.ts): a missing or unreadable shard, a truncated or corrupt tar
 * (the samples completed before the damage are yielded; the sample in progress is dropped because it cannot be
 * known to be whole), a sample with no image member, an unreadable `.cls` or `.json` (the sample is dropped) are
 * each reported to `ctx.reporter`, and reading goes on with the next sample or shard.
 *
 * Cleanup: an early stop (`break`) or an abort destroys the tar extractor and the file stream at once, so no
 * file descriptor outlives the iterator.
 */
import { createReadStream } from 'node:fs';
import tar from 'tar-stream';
import type { ExtractEvents } from 'tar-stream';
import type { StageContext } from '../core/pipeline.js';
import type { Sample } from '../types.js';
import { AbortError, BadInputError, reasonOf } from '../core/errors.js';
import { abortErrorOf } from '../core/abort.js';

type TarEntry = ExtractEvents['entry'][1];

/** Extensions that count as an image member (webdataset's image extensions plus avif). */
export const IMAGE_EXTENSIONS: readonly string[] = ['jpg', 'jpeg', 'png', 'webp', 'tif', 'tiff', 'gif', 'avif'];


/**
 * Splits a tar member name into webdataset's key and extension, or null for members webdataset skips.
 * `a/x.seg.PNG` -> { key: 'a/x', ext: 'seg.png' }; `./x.jpg` -> { key: 'x', ext: 'jpg' }.
 */
export function splitMemberName(name: string): { key: string; ext: string } | null {
  if (name.startsWith('./')) name = name.slice(2);
  if (name === '' || name.startsWith('__')) return null;
  const slash = name.lastIndexOf('/');
  const base = name.slice(slash + 1);
  if (base === '' || base.startsWith('.')) return null;
  const dot = base.indexOf('.');
  if (dot <= 0 || dot === base.length - 1) return null;
  return { key: name.slice(0, slash + 1) + base.slice(0, dot), ext: base.slice(dot + 1).toLowerCase() };
}

/** Which member of a sample is its image: an exact image extension first, then one ending in one. */
export function pickImageExt(exts: Iterable<string>): string | undefined {
  let suffixed: string | undefined;
  for (const ext of exts) {
    if (IMAGE_EXTENSIONS.includes(ext)) return ext;
    if (suffixed === undefined) {
      const last = ext.slice(ext.lastIndexOf('.') + 1);
      if (ext.includes('.') && IMAGE_EXTENSIONS.includes(last)) suffixed = ext;
    }
  }
  return suffixed;
}

interface Pending {
  key: string;
  index: number;
  decode: boolean;
  fields: Record<string, Buffer>;
}

/** A sample read from a shard, with its index in the shard. */
export type IndexedSample = Sample & { index: number };

/** Builds a Sample from its members, or reports why it cannot be used and returns null. */
function finishSample(p: Pending, url: string, ctx: StageContext): IndexedSample | null {
  const where = `${url}#${p.key}`;
  const imageExt = pickImageExt(Object.keys(p.fields));
  if (imageExt === undefined) {
    ctx.reporter.report('shards', where, 'no image member');
    return null;
  }
  const sample: IndexedSample = { key: p.key, url, image: p.fields[imageExt], imageExt, fields: p.fields, index: p.index };
  const cls = p.fields['cls'];
  if (cls !== undefined) {
    const text = cls.toString('utf8').trim();
    if (!/^[+-]?\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
      ctx.reporter.report('shards', where, `unreadable .cls: expected an integer but found ${JSON.stringify(text.slice(0, 40))}`);
      return null;
    }
    sample.cls = Number(text);
  }
  const json = p.fields['json'];
  if (json !== undefined) {
    try {
      sample.meta = JSON.parse(json.toString('utf8'));
    } catch (err) {
      ctx.reporter.report('shards', where, `unreadable .json: ${reasonOf(err)}`);
      return null;
    }
  }
  return sample;
}

/** Reads one member into a single buffer of its declared size (no chunk list, no concat). */
async function readMember(entry: TarEntry, size: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  let at = 0;
  for await (const c of entry) {
    const chunk = c as Buffer;
    if (at + chunk.length > size) throw new Error(`member ${entry.header.name} is longer than its header says`);
    chunk.copy(buf, at);
    at += chunk.length;
  }
  if (at !== size) throw new Error(`member ${entry.header.name} ended after ${at} of ${size} bytes`);
  return buf;
}

export interface ReadShardOptions {
  /** Which sample indices to decode; the others are drained member by member, never buffered. Default: all. */
  include?: (index: number) => boolean;
  /** Stop reading (and close the shard) after this sample index. */
  last?: number;
}

/**
 * Streams the samples of one shard, in order, each with its index in the shard. Bad input is reported (see the
 * module comment) and ends only this shard. Abort and early return close the file at once.
 * @throws AbortError when ctx.signal aborts; BadInputError from the reporter with onError 'fail'.
 */
export async function* readShard(url: string, ctx: StageContext, options: ReadShardOptions = {}): AsyncGenerator<IndexedSample> {
  const include = options.include;
  const last = options.last ?? Infinity;
  if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
  const extract = tar.extract();
  const file = createReadStream(url, { highWaterMark: 1 << 20 });
  const fileClosed = new Promise<void>((resolve) => file.once('close', () => resolve()));
  file.on('error', (err) => extract.destroy(err));
  file.pipe(extract);
  const onAbort = () => extract.destroy(abortErrorOf(ctx.signal));
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  let current: Pending | null = null;
  let completed = 0;
  /** Ends the sample being read (its members are all in): the finished sample, or null (skipped or bad). */
  const closeCurrent = (): IndexedSample | null => {
    if (current === null) return null;
    const done: Pending = current;
    current = null;
    completed++;
    return done.decode ? finishSample(done, url, ctx) : null;
  };
  let index = -1;
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const parts = h.type === 'file' || h.type === 'contiguous-file' ? splitMemberName(h.name) : null;
      if (parts === null) {
        entry.resume();
        continue;
      }
      if (current === null || parts.key !== current.key) {
        const s = closeCurrent();
        if (s !== null) yield s;
        index++;
        if (index > last) return;
        current = { key: parts.key, index, decode: include === undefined || include(index), fields: {} };
      }
      if (!current.decode) {
        // Skipped on resume: drain the member without keeping its bytes.
        entry.resume();
        continue;
      }
      if (Object.prototype.hasOwnProperty.call(current.fields, parts.ext)) {
        entry.resume();
        ctx.reporter.report('shards', `${url}#${current.key}`, `duplicate member ${h.name} ignored`);
        continue;
      }
      current.fields[parts.ext] = await readMember(entry, h.size ?? 0);
    }
    const s = closeCurrent();
    if (s !== null) yield s;
    // tar-stream reads an empty file as an empty archive; a 0-byte shard is a failed copy or download, not data.
    if (index < 0 && file.bytesRead === 0) ctx.reporter.report('shards', url, 'empty file (0 bytes): not a tar');
  } catch (err) {
    if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
    if (err instanceof BadInputError || err instanceof AbortError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && code.startsWith('E') && completed === 0 && index < 0) {
      ctx.reporter.report('shards', url, `cannot read shard: ${reasonOf(err)}`, err);
    } else {
      ctx.reporter.report('shards', url, `truncated tar after ${completed} samples: ${reasonOf(err)}`, err);
    }
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
    file.unpipe(extract);
    file.destroy();
    extract.destroy();
    // The descriptor is closed on libuv's pool: wait for it, so none is open once the iterator has returned.
    await fileClosed;
  }
}
