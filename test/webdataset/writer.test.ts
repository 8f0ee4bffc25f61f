import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import tar from 'tar-stream';
import { TarWriter, keyFor } from '../../src/webdataset/writer.js';
import { splitMemberName } from '../../src/webdataset/tar.js';
import { tempDir } from '../helpers/tar.js';

test('keys follow the webdataset rule and stay unique', () => {
  const taken = new Set<string>();
  assert.equal(keyFor('a/x.jpg', taken), 'a/x');
  assert.equal(keyFor('a/x.png', taken), 'a/x_1');
  assert.equal(keyFor('a/x.seg.png', taken), 'a/x_seg');
  assert.equal(keyFor('a/x_seg.jpg', taken), 'a/x_seg_1');
  assert.equal(keyFor('a.b/y.z.jpg', taken), 'a.b/y_z');
  assert.equal(keyFor('__init__.jpg', taken), '_init__');
  for (const k of taken) assert.deepEqual(splitMemberName(`${k}.jpg`), { key: k, ext: 'jpg' });
});

/** Every member of a tar file: its header's fields that could vary, and its bytes. */
async function members(file: string): Promise<{ name: string; mode?: number; uid?: number; gid?: number; mtime?: number; uname?: string; gname?: string; data: string }[]> {
  const out = [];
  const extract = tar.extract();
  extract.end(readFileSync(file));
  for await (const e of extract) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    const h = e.header;
    out.push({ name: h.name, mode: h.mode, uid: h.uid, gid: h.gid, mtime: h.mtime?.getTime(), uname: h.uname, gname: h.gname, data: Buffer.concat(chunks).toString() });
  }
  return out;
}

async function write(file: string, entries: [string, string][]): Promise<void> {
  const w = new TarWriter(file);
  for (const [name, data] of entries) await w.add(name, Buffer.from(data));
  await w.finish();
}

test('TarWriter: the members in order under fixed headers; the same members give byte-identical shards', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const entries: [string, string][] = [['a/x.jpg', 'jpeg bytes'], ['a/x.cls', '3'], ['a/x.json', '{"path":"a/x.jpg"}'], ['b.png', 'png']];
  await write(path.join(dir, 'one.tar'), entries);
  await write(path.join(dir, 'two.tar'), entries);
  assert.deepEqual(readFileSync(path.join(dir, 'one.tar')), readFileSync(path.join(dir, 'two.tar')));
  assert.deepEqual(
    await members(path.join(dir, 'one.tar')),
    entries.map(([name, data]) => ({ name, mode: 0o644, uid: 0, gid: 0, mtime: 0, uname: '', gname: '', data })),
  );
  assert.deepEqual(readdirSync(dir).sort(), ['one.tar', 'two.tar'], 'no temp file left');
});

test('TarWriter: the shard appears only when finished; discarded, nothing is left', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  const file = path.join(dir, 'data-000000.tar');
  const w = new TarWriter(file);
  await w.add('x.jpg', Buffer.from('bytes'));
  assert.ok(!readdirSync(dir).includes('data-000000.tar'), 'not there while it is written');
  await w.discard();
  assert.deepEqual(readdirSync(dir), []);
});

test('TarWriter: a shard that cannot be written or renamed fails naming the shard, never its temp file, temp removed', async (t) => {
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  // A directory where the shard goes: the rename fails (EISDIR) after the tar was written.
  const blocked = path.join(dir, 'data-000001.tar');
  mkdirSync(blocked);
  const err = await write(blocked, [['x.jpg', 'bytes']]).catch((e: unknown) => e as NodeJS.ErrnoException);
  assert.ok(err instanceof Error);
  assert.equal(err.code, 'EISDIR');
  assert.equal(err.path, blocked);
  assert.deepEqual(readdirSync(dir), ['data-000001.tar'], 'no temp file');
  // A folder that does not exist: the temp file cannot be opened (ENOENT), said of the shard.
  const nowhere = path.join(dir, 'missing', 'data-000000.tar');
  const open = await write(nowhere, [['x.jpg', 'bytes']]).catch((e: unknown) => e as NodeJS.ErrnoException);
  assert.ok(open instanceof Error);
  assert.equal(open.code, 'ENOENT');
  assert.equal(open.path, nowhere);
});
