/** Test helpers: small tar shards built in a temp folder, the fixtures' location, open file descriptors. */
import { mkdtempSync, readdirSync, existsSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import type { TestContext } from 'node:test';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import tar from 'tar-stream';

/** The repository root (tests run from dist/test/...). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const FIXTURES = path.join(ROOT, 'fixtures');

/** A fresh folder named `prefix` + random under `parent` (the system's temp folder), and its removal. */
export function tempDir(prefix = 'colorpipe-test-', parent = os.tmpdir()): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(parent, prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** tempDir's folder, removed when test `t` ends, passed or failed. */
export function tmpDir(t: Pick<TestContext, 'after'>, prefix?: string, parent?: string): string {
  const { dir, cleanup } = tempDir(prefix, parent);
  t.after(cleanup);
  return dir;
}

export type Member = [name: string, data: Buffer | string] | { name: string; type: 'directory' };

/** A tar archive in memory (fixed headers). */
export async function tarBuffer(members: Member[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve) => pack.on('end', () => resolve()));
  for (const m of members) {
    if (Array.isArray(m)) {
      const data = typeof m[1] === 'string' ? Buffer.from(m[1]) : m[1];
      pack.entry({ name: m[0], size: data.length, mtime: new Date(0), mode: 0o644 }, data);
    } else {
      pack.entry({ name: m.name, type: 'directory', mtime: new Date(0), mode: 0o755 });
    }
  }
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}

export async function writeTar(file: string, members: Member[]): Promise<string> {
  await writeFile(file, await tarBuffer(members));
  return file;
}

/**
 * Writes `shards` tar files of `perShard` samples each (members KEY.jpg with text bytes, KEY.cls, KEY.json) and
 * returns their paths. The image bytes name the sample: `shard-S/sample-J`.
 */
export async function writeTextShards(dir: string, shards: number, perShard: number, name = 'shard'): Promise<string[]> {
  const out: string[] = [];
  for (let s = 0; s < shards; s++) {
    const members: Member[] = [];
    for (let j = 0; j < perShard; j++) {
      const key = `s${s}-${String(j).padStart(3, '0')}`;
      members.push([`${key}.jpg`, `${name}-${s}/sample-${j}`], [`${key}.cls`, String(s)], [`${key}.json`, JSON.stringify({ s, j })]);
    }
    out.push(await writeTar(path.join(dir, `${name}-${String(s).padStart(4, '0')}.tar`), members));
  }
  return out;
}

/** Open file descriptors of this process, or -1 where /proc is missing. */
export function openFds(): number {
  return existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : -1;
}

/** Lets pending I/O callbacks (stream closes) run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}
