/**
 * The `shards` source: WebDataset tar shards in, samples out, streaming (a shard is never held in memory).
 *
 * Shard lists: `expandShardSpec` takes brace ranges (`data-{000000..000099}.tar`, zero padding kept), brace
 * lists (`{train,val}-0.tar`), shell globs (fast-glob, sorted) and plain paths, or an array of those.
 *
 * Order: per epoch e the global shard list is permuted with `new Rng(seed).fork('shards', e)` (kept as given
 * when no seed), and rank r of world w reads the permuted indices i with i % w === r, so several processes
 * read disjoint shards with no coordination. Every sample carries its `position` (epoch, index in the epoch's
 * permuted list, shard, sample index in the shard) and its `rank`: give the last position a rank consumed back
 * as `resumeAfter` and the stream continues right after it, opening no earlier shard and decoding no earlier
 * sample (their tar members are drained, not buffered or parsed).
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
 * Bad input never ends the stream (errors.ts): a missing or unreadable shard, a truncated or corrupt tar (the
 * samples completed before the damage are yielded; the sample in progress is dropped because it cannot be known
 * to be whole), a sample with no image member, an unreadable `.cls` or `.json` (the sample is dropped) are each
 * reported to `ctx.reporter`, and reading goes on with the next sample or shard.
 *
 * Errors that do surface, at the consumer's next `await`: InvalidOptionError from `expandShardSpec` (nothing
 * matches) or from a `resumeAfter` that does not fit the shard list; AbortError when the pipeline aborts; a
 * BadInputError from the reporter when the run said `onError: 'fail'`.
 *
 * Cleanup: an early stop (`break`) or an abort destroys the tar extractor and the file stream at once, so no
 * file descriptor outlives the iterator.
 */
import { createReadStream, promises as fsp } from 'node:fs';
import fg from 'fast-glob';
import tar from 'tar-stream';
import type { ExtractEvents } from 'tar-stream';

type TarEntry = ExtractEvents['entry'][1];
import type { StageContext } from '../core/pipeline.js';
import type { Sample, ShardPosition } from '../types.js';
import { AbortError, BadInputError, ColorpipeError, InvalidOptionError, reasonOf } from '../core/errors.js';
import { Rng, shuffleInPlace } from '../rng.js';

/** Extensions that count as an image member (webdataset's image extensions plus avif). */
export const IMAGE_EXTENSIONS: readonly string[] = ['jpg', 'jpeg', 'png', 'webp', 'tif', 'tiff', 'gif', 'avif'];

/** The largest list a brace expression may expand to (a typo like {0..999999999} must not eat the heap). */
const MAX_BRACE_EXPANSION = 1_000_000;

// ---------------------------------------------------------------------------------------------------------
// Shard specs

/**
 * Expands brace expressions like bash and Python's braceexpand: `{a,b}` lists, `{0..9}` and `{000..099}`
 * ranges (padded to the wider endpoint when either has a leading zero), optional step `{0..10..2}`,
 * descending ranges, nested and repeated braces. A brace with neither a top-level comma nor a range is literal.
 * @throws InvalidOptionError when the expansion would exceed a million strings.
 */
export function braceExpand(pattern: string): string[] {
  const out: string[] = [];
  expandInto(pattern, out);
  return out;
}

function expandInto(s: string, out: string[]): void {
  let searchFrom = 0;
  for (;;) {
    const open = s.indexOf('{', searchFrom);
    if (open < 0) {
      out.push(s);
      if (out.length > MAX_BRACE_EXPANSION) {
        throw new InvalidOptionError(`Expected a shard spec of at most ${MAX_BRACE_EXPANSION} names but it expands to more`);
      }
      return;
    }
    let depth = 0;
    let close = -1;
    const commas: number[] = [];
    for (let i = open; i < s.length; i++) {
      const ch = s[i];
      if (ch === '{') depth++;
      else if (ch === '}') {
        depth--;
        if (depth === 0) {
          close = i;
          break;
        }
      } else if (ch === ',' && depth === 1) commas.push(i);
    }
    if (close < 0) {
      // Unbalanced: the rest is literal.
      out.push(s);
      return;
    }
    const head = s.slice(0, open);
    const body = s.slice(open + 1, close);
    const tail = s.slice(close + 1);
    let alternatives: string[] | null = null;
    if (commas.length > 0) {
      alternatives = [];
      let start = open + 1;
      for (const c of commas) {
        alternatives.push(s.slice(start, c));
        start = c + 1;
      }
      alternatives.push(s.slice(start, close));
    } else {
      alternatives = rangeOf(body);
    }
    if (alternatives === null) {
      // A literal brace such as `{x}`: look for the next one after it.
      searchFrom = open + 1;
      continue;
    }
    for (const alt of alternatives) expandInto(head + alt + tail, out);
    return;
  }
}

function rangeOf(body: string): string[] | null {
  const m = /^(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?$/.exec(body);
  if (!m) return null;
  const [, a, b, stepText] = m as unknown as [string, string, string, string | undefined];
  const from = Number(a);
  const to = Number(b);
  const step = Math.abs(stepText === undefined ? 1 : Number(stepText)) || 1;
  const padded = /^-?0\d/.test(a) || /^-?0\d/.test(b);
  const width = padded ? Math.max(a.replace('-', '').length, b.replace('-', '').length) : 0;
  const count = Math.floor(Math.abs(to - from) / step) + 1;
  if (count > MAX_BRACE_EXPANSION) {
    throw new InvalidOptionError(`Expected a shard spec of at most ${MAX_BRACE_EXPANSION} names but {${body}} has ${count}`);
  }
  const dir = to >= from ? 1 : -1;
  const out: string[] = [];
  for (let k = 0, v = from; k < count; k++, v += dir * step) {
    const digits = String(Math.abs(v)).padStart(width, '0');
    out.push(v < 0 ? `-${digits}` : digits);
  }
  return out;
}

/**
 * The shard paths a spec names: each entry brace-expanded, then each result globbed (when it has glob
 * characters; matches sorted by code point) or taken as a path. Duplicates are dropped, keeping the first; the
 * order is sorted within a glob and as given across entries. Plain paths are not required to exist (a missing
 * shard is reported when it is read), but at least one named file must.
 * @throws InvalidOptionError when the spec is empty or matches no existing file.
 */
export async function expandShardSpec(spec: string | string[]): Promise<string[]> {
  const entries = typeof spec === 'string' ? [spec] : spec;
  if (!Array.isArray(entries) || entries.length === 0 || entries.some((e) => typeof e !== 'string' || e === '')) {
    throw new InvalidOptionError(
      `Expected a non-empty string or array of non-empty strings for options.urls but received ${JSON.stringify(spec)}`,
    );
  }
  const seen = new Set<string>();
  const out: string[] = [];
  let globMatched = false;
  const plain: string[] = [];
  for (const entry of entries) {
    for (const name of braceExpand(entry)) {
      let names: string[];
      if (fg.isDynamicPattern(name)) {
        names = (await fg(name, { onlyFiles: true, dot: false, unique: true })).sort(compareCodePoints);
        if (names.length > 0) globMatched = true;
      } else {
        names = [name];
        plain.push(name);
      }
      for (const n of names) {
        if (!seen.has(n)) {
          seen.add(n);
          out.push(n);
        }
      }
    }
  }
  if (!globMatched && !(await someFileExists(plain))) {
    throw new InvalidOptionError(`Expected shard files for options.urls but nothing matches ${JSON.stringify(spec)}`);
  }
  return out;
}

async function someFileExists(paths: string[]): Promise<boolean> {
  for (const p of paths) {
    try {
      if ((await fsp.stat(p)).isFile()) return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

function compareCodePoints(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------------------
// Member names and samples

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
        if (current !== null) {
          const done: Pending = current;
          current = null;
          completed++;
          if (done.decode) {
            const s = finishSample(done, url, ctx);
            if (s !== null) yield s;
          }
        }
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
    if (current !== null) {
      const done: Pending = current;
      current = null;
      completed++;
      if (done.decode) {
        const s = finishSample(done, url, ctx);
        if (s !== null) yield s;
      }
    }
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

function abortErrorOf(signal: AbortSignal): Error {
  const r = signal.reason;
  return r instanceof Error ? r : new AbortError(r === undefined ? undefined : String(r));
}

// ---------------------------------------------------------------------------------------------------------
// The source

export interface ShardsOptions {
  /** Shard spec: brace ranges, globs, paths, or a list of them (see expandShardSpec). */
  urls: string | string[];
  /** Shuffles the shard order per epoch; without it shards are read in the order given. */
  seed?: number;
  /** First epoch (default 0). */
  epoch?: number;
  /** How many epochs to run (default 1; Infinity runs until stopped). */
  epochs?: number;
  /** This reader's rank in [0, world) (default 0). */
  rank?: number;
  /** Number of readers splitting the shards (default 1). */
  world?: number;
  /** The last position this rank already consumed: the stream resumes right after it. */
  resumeAfter?: ShardPosition | null;
}

/** A sample from the shards source: its position and the rank that read it are always set. */
export type ShardSample = Sample & { rank: number; position: ShardPosition };

/**
 * A Source of samples from WebDataset shards (pass it to `pipeline()`).
 * @throws InvalidOptionError at once for a bad option value; at the first `next()` when the spec matches nothing
 *   or `resumeAfter` does not fit the shard list (another seed, world or list than the run it came from).
 * @example
 * for await (const s of pipeline(shards({ urls: 'data/train-{000..009}.tar', seed: 1, epochs: Infinity }))) ...
 */
export function shards(options: ShardsOptions): (ctx: StageContext) => AsyncIterable<ShardSample> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError(`Expected object for options but received ${String(options)}`);
  }
  const { urls, seed } = options;
  if (typeof urls !== 'string' && !Array.isArray(urls)) {
    throw new InvalidOptionError(`Expected string or string[] for options.urls but received ${String(urls)}`);
  }
  if (seed !== undefined && !Number.isFinite(seed)) {
    throw new InvalidOptionError(`Expected finite number for options.seed but received ${String(seed)}`);
  }
  const firstEpoch = options.epoch ?? 0;
  nonNegativeInt(firstEpoch, 'options.epoch');
  const epochs = options.epochs ?? 1;
  if (!(epochs === Infinity || (Number.isInteger(epochs) && epochs >= 1))) {
    throw new InvalidOptionError(`Expected positive integer or Infinity for options.epochs but received ${String(epochs)}`);
  }
  const { rank, world } = rankAndWorld(options);
  const resume = options.resumeAfter ?? null;
  if (resume !== null) {
    validatePosition(resume, 'options.resumeAfter');
    if (resume.epoch < firstEpoch || resume.epoch >= firstEpoch + epochs) {
      throw new InvalidOptionError(
        `Expected options.resumeAfter.epoch in [${firstEpoch}, ${firstEpoch + epochs - 1}] but received ${resume.epoch}`,
      );
    }
    if (resume.shardIndex % world !== rank) {
      throw new InvalidOptionError(
        `Expected options.resumeAfter.shardIndex read by rank ${rank} of ${world} but received ${resume.shardIndex}`,
      );
    }
  }
  const end = firstEpoch + epochs;

  return async function* shardsSource(ctx: StageContext): AsyncGenerator<ShardSample> {
    const list = await expandShardSpec(urls);
    if (list.length <= rank) {
      throw new InvalidOptionError(`Expected at least ${rank + 1} shards for rank ${rank} of ${world} but found ${list.length}`);
    }
    const start = resume?.epoch ?? firstEpoch;
    for (let e = start; e < end; e++) {
      if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
      const order = seed === undefined ? list.slice() : shuffleInPlace(list.slice(), new Rng(seed).fork('shards', e));
      const resuming = resume !== null && e === resume.epoch;
      if (resuming && (resume.shardIndex >= order.length || order[resume.shardIndex] !== resume.shard)) {
        throw new InvalidOptionError(
          `Expected shard ${resume.shard} at index ${resume.shardIndex} of epoch ${e} for options.resumeAfter but found ` +
            `${order[resume.shardIndex] ?? 'none'}: the shard list or the seed changed since that position was saved`,
        );
      }
      let yielded = 0;
      for (let i = resuming ? resume.shardIndex : rank; i < order.length; i += world) {
        const url = order[i]!;
        const skipThrough = resuming && i === resume.shardIndex ? resume.sample : -1;
        const include = skipThrough >= 0 ? (j: number) => j > skipThrough : undefined;
        for await (const s of readShard(url, ctx, { include })) {
          const { index, ...sample } = s;
          yielded++;
          yield { ...sample, position: { epoch: e, shardIndex: i, shard: url, sample: index }, rank };
        }
      }
      if (yielded === 0 && !resuming && epochs === Infinity) {
        // Every shard of this rank was unreadable: looping forever over them would only repeat the reports.
        throw new ColorpipeError('ERR_NO_SAMPLES', `No readable sample in the shards of rank ${rank} of ${world} in epoch ${e}`);
      }
    }
  };
}

/**
 * options.rank and options.world (defaults 0 and 1), validated: this process takes items rank, rank + world, ...
 * @throws InvalidOptionError unless world is a positive integer and rank an integer in [0, world - 1].
 */
export function rankAndWorld(options: { rank?: number; world?: number }): { rank: number; world: number } {
  const world = options.world ?? 1;
  if (!Number.isInteger(world) || world < 1) {
    throw new InvalidOptionError(`Expected positive integer for options.world but received ${String(world)}`);
  }
  const rank = options.rank ?? 0;
  if (!Number.isInteger(rank) || rank < 0 || rank >= world) {
    throw new InvalidOptionError(`Expected integer in [0, ${world - 1}] for options.rank but received ${String(rank)}`);
  }
  return { rank, world };
}

function nonNegativeInt(v: unknown, name: string): void {
  if (!Number.isInteger(v) || (v as number) < 0) {
    throw new InvalidOptionError(`Expected non-negative integer for ${name} but received ${String(v)}`);
  }
}

function validatePosition(p: ShardPosition, name: string): void {
  if (p === null || typeof p !== 'object') {
    throw new InvalidOptionError(`Expected a ShardPosition for ${name} but received ${String(p)}`);
  }
  nonNegativeInt(p.epoch, `${name}.epoch`);
  nonNegativeInt(p.shardIndex, `${name}.shardIndex`);
  nonNegativeInt(p.sample, `${name}.sample`);
  if (typeof p.shard !== 'string' || p.shard === '') {
    throw new InvalidOptionError(`Expected non-empty string for ${name}.shard but received ${String(p.shard)}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Exact samples, for refilling a shuffle buffer on resume

export interface ReadSamplesAtOptions {
  /** Readers the positions came from: each sample's rank is `shardIndex % world` (default 1: rank 0). */
  world?: number;
}

/**
 * Yields exactly the samples at `positions`, in that order, each with that position and its rank. Each shard is
 * read once, streaming, decoding only the requested samples and closing the shard after the last one; only
 * samples read ahead of their turn are held in memory. A position that cannot be read (shard gone, sample
 * missing or bad) is reported and left out.
 * @throws AbortError when ctx.signal aborts; BadInputError from the reporter with onError 'fail'.
 */
export async function* readSamplesAt(
  positions: readonly ShardPosition[],
  ctx: StageContext,
  options: ReadSamplesAtOptions = {},
): AsyncGenerator<ShardSample> {
  const world = options.world ?? 1;
  if (!Number.isInteger(world) || world < 1) {
    throw new InvalidOptionError(`Expected positive integer for options.world but received ${String(world)}`);
  }
  positions.forEach((p, i) => validatePosition(p, `positions[${i}]`));
  const wanted = new Map<string, Set<number>>();
  for (const p of positions) {
    let set = wanted.get(p.shard);
    if (!set) wanted.set(p.shard, (set = new Set()));
    set.add(p.sample);
  }
  // Remaining uses of each (shard, sample), so a sample is dropped from memory after its last turn.
  const uses = new Map<string, number>();
  const id = (shard: string, sample: number) => `${sample}\u0000${shard}`;
  for (const p of positions) uses.set(id(p.shard, p.sample), (uses.get(id(p.shard, p.sample)) ?? 0) + 1);
  const held = new Map<string, IndexedSample>();
  const read = new Set<string>();
  for (const p of positions) {
    const k = id(p.shard, p.sample);
    if (!read.has(p.shard)) {
      read.add(p.shard);
      const set = wanted.get(p.shard)!;
      let last = -1;
      for (const j of set) last = Math.max(last, j);
      for await (const s of readShard(p.shard, ctx, { include: (j) => set.has(j), last })) held.set(id(p.shard, s.index), s);
      for (const j of set) {
        if (!held.has(id(p.shard, j))) ctx.reporter.report('shards', `${p.shard}#${j}`, 'sample to resume from not found in shard');
      }
    }
    const s = held.get(k);
    const left = (uses.get(k) ?? 1) - 1;
    uses.set(k, left);
    if (left === 0) held.delete(k);
    if (s === undefined) continue;
    const { index: _index, ...sample } = s;
    yield { ...sample, position: { ...p }, rank: p.shardIndex % world };
  }
}
