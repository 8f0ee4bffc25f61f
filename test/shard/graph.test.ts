import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import tar from 'tar-stream';
import sharp from 'sharp';
import { writeShards } from '../../src/shard/graph.js';
import { checkImage } from '../../src/shard/image.js';
import { decode } from '../../src/stages/decode.js';
import { animatedGif, animatedWebp, jpeg, multiPageTiff, png } from '../helpers/images.js';
import { shards } from '../../src/stages/shards.js';
import { splitMemberName } from '../../src/webdataset/tar.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { AbortError, BadInputError, ColorpipeError, Reporter } from '../../src/core/errors.js';
import { lockFolder } from '../../src/core/lock.js';
import { FIXTURES, tempDir, tmpDir } from '../helpers/tar.js';

const BAD = ['corrupt.jpg', 'truncated.jpg', 'empty.jpg', 'notimage.jpg', 'tiny.png', 'bomb.png'];
const AWKWARD = ['gray.jpg', 'cmyk.jpg', 'rgba.png', 'rot6.jpg', 'deep16.png'];

/** An input tree: the fixture photos by class, the bad and awkward files under zbad/, odd names under odd/. */
function makeInput(dir: string): void {
  cpSync(path.join(FIXTURES, 'images'), dir, { recursive: true });
  mkdirSync(path.join(dir, 'zbad'));
  for (const f of [...BAD, ...AWKWARD]) copyFileSync(path.join(FIXTURES, 'bad', f), path.join(dir, 'zbad', f));
  mkdirSync(path.join(dir, 'odd'));
  const photo = readFileSync(path.join(FIXTURES, 'images/tools/hammer1.jpg'));
  const png = readFileSync(path.join(FIXTURES, 'bad/rgba.png'));
  writeFileSync(path.join(dir, 'odd/x.jpg'), photo);
  writeFileSync(path.join(dir, 'odd/x.PNG'), png);
  writeFileSync(path.join(dir, 'odd/x.seg.png'), png);
  writeFileSync(path.join(dir, 'odd/x_seg.jpeg'), photo);
  writeFileSync(path.join(dir, 'root.jpg'), photo);
}

async function members(file: string): Promise<{ name: string; size: number; mode: number; uid: number; gid: number; mtime: number; uname: string; gname: string }[]> {
  const out = [];
  const extract = tar.extract();
  extract.end(readFileSync(file));
  for await (const e of extract) {
    const h = e.header;
    out.push({ name: h.name, size: h.size, mode: h.mode, uid: h.uid, gid: h.gid, mtime: h.mtime.getTime(), uname: h.uname, gname: h.gname });
    e.resume();
  }
  return out;
}

test('writeShards: bad files skipped and reported, the rest read back with their classes; odd names', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const input = path.join(dir, 'in');
    const output = path.join(dir, 'out');
    makeInput(input);
    const lines: string[] = [];
    const reporter = new Reporter({ log: (l) => lines.push(l) });
    const progress: number[] = [];
    const res = await writeShards({ input, output, maxcount: 10, reporter, concurrency: 2, onProgress: (d) => progress.push(d) });
    const total = 24 + BAD.length + AWKWARD.length + 5;
    assert.deepEqual(progress, Array.from({ length: total }, (_, i) => i + 1));
    assert.equal(res.written, total - BAD.length);
    assert.equal(res.skipped, BAD.length);
    assert.deepEqual(res.classes, { odd: 0, others: 1, renewable: 2, tools: 3, zbad: 4 });
    assert.deepEqual(res.counts, { odd: 4, others: 8, renewable: 8, tools: 8, zbad: AWKWARD.length });
    assert.deepEqual(JSON.parse(readFileSync(path.join(output, 'classes.json'), 'utf8')), res.classes);
    assert.deepEqual(res.shards.map((s) => path.basename(s)), ['data-000000.tar', 'data-000001.tar', 'data-000002.tar', 'data-000003.tar']);
    assert.deepEqual(readdirSync(output).sort(), ['classes.json', 'data-000000.tar', 'data-000001.tar', 'data-000002.tar', 'data-000003.tar']);

    const reasons = Object.fromEntries(reporter.records.map((r) => [r.key, r.reason]));
    assert.deepEqual(Object.keys(reasons).sort(), BAD.map((b) => `zbad/${b}`).sort());
    assert.equal(reasons['zbad/empty.jpg'], 'empty file');
    assert.equal(reasons['zbad/tiny.png'], 'image too small: 1x1');
    assert.match(reasons['zbad/bomb.png']!, /too large: 20000x20000/);
    assert.match(reasons['zbad/truncated.jpg']!, /^cannot decode: /);
    assert.match(reasons['zbad/corrupt.jpg']!, /^cannot decode: /);
    assert.match(reasons['zbad/notimage.jpg']!, /^cannot decode: .*unsupported image format/);
    assert.ok(lines.every((l) => l.startsWith('colorpipe: skipped zbad/') && l.includes('(shard)')));

    // Read back with the shards stage: every written image, its bytes, class and metadata.
    const back = await collect(pipeline(shards({ urls: path.join(output, '*.tar') }), { reporter: new Reporter({ log: null }) }));
    assert.equal(back.length, res.written);
    const byPath = new Map(back.map((s) => [(s.meta as { path: string }).path, s]));
    for (const s of back) {
      const meta = s.meta as { path: string; width: number; height: number; format: string };
      assert.deepEqual(s.image, readFileSync(path.join(input, meta.path)), meta.path);
      const classes: Record<string, number> = res.classes;
      const cls = meta.path.includes('/') ? classes[meta.path.slice(0, meta.path.indexOf('/'))] : undefined;
      assert.equal(s.cls, cls, meta.path);
      assert.ok(meta.width >= 2 && meta.height >= 2);
    }
    assert.deepEqual(
      ['odd/x.PNG', 'odd/x.jpg', 'odd/x.seg.png', 'odd/x_seg.jpeg', 'root.jpg'].map((p) => [byPath.get(p)!.key, byPath.get(p)!.imageExt]),
      [['odd/x', 'png'], ['odd/x_1', 'jpg'], ['odd/x_seg', 'png'], ['odd/x_seg_1', 'jpg'], ['root', 'jpg']],
    );
    assert.equal(byPath.get('root.jpg')!.cls, undefined);
    // The rotated JPEG's size is the displayed one; formats come from sharp.
    assert.deepEqual(byPath.get('zbad/rot6.jpg')!.meta, { path: 'zbad/rot6.jpg', width: 64, height: 80, format: 'jpeg' });
    assert.equal((byPath.get('zbad/deep16.png')!.meta as { format: string }).format, 'png');

    // Fixed tar headers, and member names with one dot-free key and a known extension.
    for (const shard of res.shards) {
      for (const m of await members(shard)) {
        assert.deepEqual([m.mode, m.uid, m.gid, m.mtime, m.uname, m.gname], [0o644, 0, 0, 0, '', ''], m.name);
        assert.ok(['jpg', 'png', 'cls', 'json'].includes(splitMemberName(m.name)!.ext), m.name);
      }
    }
  } finally {
    cleanup();
  }
});

test('writeShards is deterministic: a second run gives byte-identical shards', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const input = path.join(dir, 'in');
    makeInput(input);
    const quiet = () => new Reporter({ log: null });
    const a = await writeShards({ input, output: path.join(dir, 'a'), maxcount: 7, reporter: quiet(), concurrency: 2 });
    const b = await writeShards({ input, output: path.join(dir, 'b'), maxcount: 7, reporter: quiet(), concurrency: 1 });
    assert.equal(a.shards.length, b.shards.length);
    for (let i = 0; i < a.shards.length; i++) assert.deepEqual(readFileSync(a.shards[i]!), readFileSync(b.shards[i]!));
    assert.deepEqual(readFileSync(path.join(dir, 'a/classes.json')), readFileSync(path.join(dir, 'b/classes.json')));
    // The committed fixture shards are what writeShards makes of fixtures/images.
    const c = await writeShards({ input: path.join(FIXTURES, 'images'), output: path.join(dir, 'c'), maxcount: 12, reporter: quiet() });
    for (const s of c.shards) assert.deepEqual(readFileSync(s), readFileSync(path.join(FIXTURES, 'shards', path.basename(s))));
  } finally {
    cleanup();
  }
});

test("filter skips grayscale images; labels 'none' writes no .cls; onError 'fail' stops and leaves no partial shard", async () => {
  const { dir, cleanup } = tempDir();
  try {
    const input = path.join(dir, 'in');
    makeInput(input);
    const reporter = new Reporter({ log: null });
    const res = await writeShards({ input, output: path.join(dir, 'f'), filter: true, labels: 'none', reporter });
    assert.deepEqual(
      reporter.records.filter((r) => r.reason.includes('filter')).map((r) => r.key),
      ['zbad/gray.jpg'],
    );
    assert.equal(res.skipped, BAD.length + 1);
    assert.deepEqual(res.classes, {});
    for (const m of await members(res.shards[0]!)) assert.ok(!m.name.endsWith('.cls'), m.name);
    assert.equal((await checkImage(readFileSync(path.join(FIXTURES, 'bad/cmyk.jpg')), { limitInputPixels: 1e8, filter: true })).ok, true);

    const out = path.join(dir, 'fail');
    await assert.rejects(
      writeShards({ input, output: out, onError: 'fail', maxcount: 1000 }),
      (err: unknown) => err instanceof BadInputError && err.key === 'zbad/bomb.png',
    );
    assert.deepEqual(readdirSync(out), [], 'no shard, no temp file');
    await assert.rejects(writeShards({ input, output: out, maxcount: 0 }), /options.maxcount/);
    await assert.rejects(writeShards({ input, output: out, labels: 'x' as 'dirs' }), /options.labels/);
    await assert.rejects(writeShards({ input: path.join(dir, 'missing'), output: out }), /options.input/);
  } finally {
    cleanup();
  }
});

test('a shard that cannot be committed fails naming it, its temp file removed; a killed run\'s temps go; --out a file fails up front', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const out = path.join(dir, 's');
    mkdirSync(out);
    // A directory where the second shard goes: its rename fails (EISDIR) after the tar was written.
    mkdirSync(path.join(out, 'data-000001.tar'));
    // What killed writers left: atomic.ts's temp names and the shard writer's older NAME.tmp-PID (a dead PID).
    const dead = 999_999_999;
    const leftovers = [`.tmp-${dead}-0-deadbeef`, `data-000003.tar.tmp-${dead}`, `classes.json.tmp-${dead}`];
    for (const f of leftovers) writeFileSync(path.join(out, f), 'half');
    const err = await writeShards({ input: path.join(FIXTURES, 'images'), output: out, maxcount: 4, reporter: new Reporter({ log: null }) })
      .catch((e: unknown) => e as NodeJS.ErrnoException);
    assert.ok(err instanceof Error, 'it fails');
    assert.equal(err.code, 'EISDIR');
    assert.equal(err.path, path.join(out, 'data-000001.tar'), 'the error names the shard, not its temp file');
    assert.deepEqual(readdirSync(out).sort(), ['.data-progress.json', 'data-000000.tar', 'data-000001.tar'], 'the whole first shard kept, and the progress a rerun goes on from; no temp file, old or new');

    const file = path.join(dir, 'a-file');
    writeFileSync(file, 'x');
    await assert.rejects(
      writeShards({ input: path.join(FIXTURES, 'images'), output: file, reporter: new Reporter({ log: null }) }),
      (e: NodeJS.ErrnoException) => e.code === 'EEXIST' && e.path === file,
    );
  } finally {
    cleanup();
  }
});

/** Every member of a tar: name and bytes. */
async function contents(file: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const extract = tar.extract();
  extract.end(readFileSync(file));
  for await (const e of extract) {
    const chunks: Buffer[] = [];
    for await (const c of e) chunks.push(c as Buffer);
    out.set(e.header.name, Buffer.concat(chunks));
  }
  return out;
}

test("an image member's extension matches its bytes: renamed by content, SVG rasterized to PNG (no external file loaded)", async () => {
  const { dir, cleanup } = tempDir();
  try {
    const input = path.join(dir, 'in');
    mkdirSync(input);
    // A red square on disk that an SVG points at by absolute file URL: rendered from its bytes alone, it stays out.
    const red = path.join(dir, 'red.png');
    writeFileSync(red, await sharp({ create: { width: 8, height: 8, channels: 3, background: '#ff0000' } }).png().toBuffer());
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="40" height="20">' +
        `<image xlink:href="file://${red}" x="0" y="0" width="20" height="20"/><rect x="20" width="20" height="20" fill="#0000ff"/></svg>`,
    );
    const files: Record<string, Buffer> = {
      'photo.jpeg': await jpeg(32, 24),
      'mislabeled.jpg': await png(32, 24, 1),
      'logo.png': svg,
      'drawing.svg': svg,
      'scan.tif': await multiPageTiff(32, 24, 2),
      'scan2.TIFF': await multiPageTiff(32, 24, 1),
      'tiff-as.png': await multiPageTiff(32, 24, 1),
      'anim.gif': await animatedGif(32, 24, 3),
      'gif-as.webp': await animatedGif(32, 24, 2),
      'anim.webp': await animatedWebp(32, 24, 2),
      'pic.avif': await sharp(await png(32, 24, 2)).avif().toBuffer(),
      'avif-as.jpg': await sharp(await png(32, 24, 3)).avif().toBuffer(),
    };
    for (const [name, data] of Object.entries(files)) writeFileSync(path.join(input, name), data);
    const reporter = new Reporter({ log: null });
    const extensions = ['jpg', 'jpeg', 'png', 'webp', 'tif', 'tiff', 'gif', 'avif', 'svg'];
    const res = await writeShards({ input, output: path.join(dir, 'out'), labels: 'none', extensions, reporter });
    assert.deepEqual(reporter.records, []);
    assert.equal(res.written, Object.keys(files).length);
    const m = await contents(res.shards[0]!);
    const images = [...m.keys()].filter((n) => !n.endsWith('.json')).sort();
    assert.deepEqual(images, [
      'anim.gif', 'anim_1.webp', 'avif-as.avif', 'drawing.png', 'gif-as.gif', 'logo.png', 'mislabeled.png', 'photo.jpg',
      'pic.avif', 'scan.tif', 'scan2.tiff', 'tiff-as.tif',
    ]);
    const formatOf: Record<string, string> = { jpg: 'jpeg', png: 'png', gif: 'gif', webp: 'webp', tif: 'tiff', tiff: 'tiff', avif: 'heif' };
    for (const name of images) {
      const meta = await sharp(m.get(name)!).metadata();
      const ext = name.slice(name.indexOf('.') + 1);
      assert.equal(meta.format, formatOf[ext], name);
      const json = JSON.parse(m.get(`${name.slice(0, name.indexOf('.'))}.json`)!.toString());
      assert.equal(json.format, meta.format, name);
    }
    // Kept formats keep their bytes (every frame, every page); SVG is rendered to a PNG of its size.
    for (const [member, file] of [['anim.gif', 'anim.gif'], ['mislabeled.png', 'mislabeled.jpg'], ['scan.tif', 'scan.tif'], ['avif-as.avif', 'avif-as.jpg']]) {
      assert.deepEqual(m.get(member), files[file], member);
    }
    for (const key of ['logo', 'drawing']) {
      assert.deepEqual(JSON.parse(m.get(`${key}.json`)!.toString()), { path: `${key === 'logo' ? 'logo.png' : 'drawing.svg'}`, width: 40, height: 20, format: 'png', source_format: 'svg' });
      const { data, info } = await sharp(m.get(`${key}.png`)!).raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual([info.width, info.height, info.channels], [40, 20, 4]);
      assert.deepEqual([...data.subarray(0, 4)], [0, 0, 0, 0], 'the referenced file is not drawn');
      assert.deepEqual([...data.subarray(30 * 4, 30 * 4 + 4)], [0, 0, 255, 255]);
    }
    // The training side reads every member back as an image: the shards stage finds it, decode decodes it.
    const back = await collect(pipeline(shards({ urls: res.shards[0]! }), decode({ mode: 'train', resize: 20, crop: 16 }), { reporter: new Reporter({ log: null }) }));
    assert.equal(back.length, Object.keys(files).length);
  } finally {
    cleanup();
  }
});

test('a stopped writeShards rerun on the same input keeps the whole shards it wrote and ends byte-identical to an uninterrupted run', async (t) => {
  const dir = tmpDir(t);
  const input = path.join(dir, 'in');
  makeInput(input);
  // Skipped before the stop (odd/ sorts first): the rerun must replay skips as well as keys (odd/x.seg.png and
  // odd/x_seg.jpeg share a key across the first two shards).
  writeFileSync(path.join(input, 'odd', 'bad.jpg'), 'not an image');
  const quiet = () => new Reporter({ log: null });
  const ref = await writeShards({ input, output: path.join(dir, 'ref'), maxcount: 3, reporter: quiet() });

  const out = path.join(dir, 'out');
  const stopAt = async (done: number) => {
    const stop = new AbortController();
    await assert.rejects(writeShards({ input, output: out, maxcount: 3, reporter: quiet(), concurrency: 1, signal: stop.signal, onProgress: (d) => d === done && stop.abort() }), AbortError);
  };
  await stopAt(10);
  const kept = readdirSync(out).filter((n) => n.endsWith('.tar'));
  assert.ok(kept.length >= 2 && !existsSync(path.join(out, 'classes.json')), `stopped after whole shards: ${readdirSync(out).join(' ')}`);
  const inodes = kept.map((n) => statSync(path.join(out, n)).ino);
  const res = await writeShards({ input, output: out, maxcount: 3, reporter: quiet() });
  assert.deepEqual(kept.map((n) => statSync(path.join(out, n)).ino), inodes, 'kept, not rewritten');
  assert.equal(res.kept, kept.length);
  assert.equal(ref.kept, 0);
  assert.deepEqual({ ...res, kept: 0, shards: res.shards.map((s) => path.basename(s)) }, { ...ref, shards: ref.shards.map((s) => path.basename(s)) });
  assert.deepEqual(readdirSync(out).sort(), readdirSync(path.join(dir, 'ref')).sort(), 'the progress file is gone');
  for (const name of readdirSync(out)) assert.deepEqual(readFileSync(path.join(out, name)), readFileSync(path.join(dir, 'ref', name)), name);

  // Another input (a file changed since) or other options: nothing is kept.
  await stopAt(10);
  utimesSync(path.join(input, 'root.jpg'), new Date(0), new Date(0));
  assert.equal((await writeShards({ input, output: out, maxcount: 3, reporter: quiet() })).kept, 0);
});

test('writeShards into a folder another writer holds is refused, naming it', async (t) => {
  const out = tmpDir(t);
  const lock = await lockFolder(out, 'pipe shard');
  t.after(() => lock.release());
  await assert.rejects(writeShards({ input: path.join(FIXTURES, 'images'), output: out, reporter: new Reporter({ log: null }) }),
    (e: unknown) => e instanceof ColorpipeError && e.code === 'ERR_LOCKED' && e.message.startsWith(`${out} is in use by pipe shard (pid ${process.pid} `));
});
