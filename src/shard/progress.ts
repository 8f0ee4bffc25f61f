/**
 * How a stopped `pipe shard` goes on: after each whole shard, `.PREFIX-progress.json` in --out records what the
 * shards so far were made from (a digest of the options and of every input file's path, size and mtime), each
 * shard's size and SHA-256 with the input position after its last sample, and the inputs skipped so far. A
 * rerun of the same input with the same options keeps the shards that are still as written and goes on after
 * them, so its shards are byte-identical to an uninterrupted run's; anything else (another input, other options,
 * a shard changed or gone) starts over from the first shard that does not match. The file goes once classes.json
 * is written. It names no file: shard names are computed, never read from it.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { colorpipeVersion } from '../core/version.js';
import type { ImageFile } from '../stages/files.js';

/** One whole shard: its size and SHA-256, and the input position after its last sample. */
export interface ShardEntry {
  bytes: number;
  sha256: string;
  next: number;
}

export interface ShardProgress {
  version: 1;
  /** What the shards were made from (inputDigest). */
  input: string;
  shards: ShardEntry[];
  /** Input positions skipped (unreadable, bad or filtered) before the last shard's `next`. */
  skipped: number[];
}

/** The progress file of shards named PREFIX-NNNNNN.tar in `outDir`. */
export function progressPath(outDir: string, prefix: string): string {
  return path.join(outDir, `.${prefix}-progress.json`);
}

/** The digest of the options that shape the shards and of every input file (path, size, mtime), in order. */
export async function inputDigest(list: readonly ImageFile[], options: Record<string, unknown>): Promise<string> {
  const h = createHash('sha256').update(JSON.stringify({ version: colorpipeVersion(), options }));
  for (const f of list) {
    const st = await fsp.stat(f.abs).catch(() => null);
    h.update(JSON.stringify([f.relPath, st?.size ?? -1, st?.mtimeMs ?? -1]));
  }
  return h.digest('hex');
}

/** Size and SHA-256 of a plain file (a link is not one), or null. */
export async function shardDigest(file: string): Promise<{ bytes: number; sha256: string } | null> {
  const st = await fsp.lstat(file).catch(() => null);
  if (!st?.isFile()) return null;
  const b = await fsp.readFile(file).catch(() => null);
  return b && { bytes: b.byteLength, sha256: createHash('sha256').update(b).digest('hex') };
}

/**
 * The progress of an earlier run of the same input (`digest`) as far as its shards (named by `shardFile`) are
 * still as written: those shards, the position after them and the inputs skipped before it. Nothing kept when
 * there is no such run.
 */
export async function keptProgress(file: string, digest: string, shardFile: (k: number) => string): Promise<ShardProgress> {
  const none: ShardProgress = { version: 1, input: digest, shards: [], skipped: [] };
  let saved: ShardProgress;
  try {
    saved = JSON.parse(await fsp.readFile(file, 'utf8')) as ShardProgress;
  } catch {
    return none;
  }
  if (saved?.version !== 1 || saved.input !== digest || !Array.isArray(saved.shards) || !Array.isArray(saved.skipped)) return none;
  const shards: ShardEntry[] = [];
  for (const [k, want] of saved.shards.entries()) {
    const got = await shardDigest(shardFile(k));
    if (!got || got.bytes !== want?.bytes || got.sha256 !== want.sha256 || !Number.isInteger(want.next)) break;
    shards.push(want);
  }
  const next = shards.at(-1)?.next ?? 0;
  return { version: 1, input: digest, shards, skipped: saved.skipped.filter((i) => Number.isInteger(i) && i < next) };
}

/**
 * Records the progress (atomically: a kill leaves the previous record or this one). Best effort: a record that
 * cannot be written (a full disk) only means a rerun keeps fewer shards, and the shard that then does not fit is
 * the error the run ends with, naming it.
 */
export async function saveProgress(file: string, progress: ShardProgress): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(progress) + '\n').catch(() => undefined);
}
