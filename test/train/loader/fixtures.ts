/** Shared fixture of the loader tests: 5 tiny shards of uneven length with one grayscale and one corrupt image. */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { makeConfig } from '../../../src/config.js';
import { Reporter } from '../../../src/core/errors.js';
import type { LoaderSample } from '../../../src/train/loader/frames.js';
import { jpeg, png, writeTar, type ShardMember } from '../../helpers/images.js';

// 16x16 crops of 18-pixel short sides: tiny, so each test runs in well under a second of decode work.
export const config = makeConfig({ model: { inputSize: 16 } });
export const quiet = (): Reporter => new Reporter({ log: null });
export const keysOf = (xs: LoaderSample[]): string[] => xs.map((s) => `${s.key}@${s.position.epoch}`);

/**
 * Writes train-{0..4}.tar (lengths 7, 3, 6, 5, 4: 25 raw samples; s2-1 grayscale, s3-2 not an image; `.cls` =
 * the index in the shard) into a fresh directory. Returns the spec and a cleanup.
 */
export async function makeShards(): Promise<{ dir: string; urls: string; cleanup: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'colorpipe-loader-'));
  const greyJpeg = await sharp({ create: { width: 30, height: 24, channels: 3, background: { r: 128, g: 128, b: 128 } } }).jpeg().toBuffer();
  const lengths = [7, 3, 6, 5, 4];
  for (let s = 0; s < lengths.length; s++) {
    const members: ShardMember[] = [];
    for (let i = 0; i < lengths[s]!; i++) {
      const key = `s${s}-${i}`;
      let image = i % 2 ? await jpeg(30 + i, 24, s * 10 + i) : await png(24, 28 + i, s * 10 + i);
      if (s === 2 && i === 1) image = greyJpeg;
      if (s === 3 && i === 2) image = Buffer.from('not an image at all');
      members.push({ name: `${key}.${i % 2 ? 'jpg' : 'png'}`, data: image }, { name: `${key}.cls`, data: String(i) });
    }
    await writeTar(join(dir, `train-${s}.tar`), members);
  }
  return { dir, urls: join(dir, 'train-{0..4}.tar'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Pids of this process's children (Linux /proc). */
export function childPids(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export const linux = process.platform === 'linux';
