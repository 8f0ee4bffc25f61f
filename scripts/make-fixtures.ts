/**
 * Builds fixtures/ deterministically (`npm run fixtures`):
 *
 *   fixtures/images/<class>/*.jpg   24 small photos in 3 classes (short side 64 px, JPEG quality 85) and
 *                                   ATTRIBUTION.tsv (the source rows of the photos' MANIFEST.tsv)
 *   fixtures/bad/                   one file per bad-input case, plus valid but awkward images (gray, CMYK, alpha,
 *                                   EXIF-rotated, 16-bit)
 *   fixtures/shards/                data-000000.tar and data-000001.tar written by writeShards from images/ (12
 *                                   samples each) with classes.json, truncated.tar (data-000000.tar cut inside
 *                                   the image member of its 5th sample: 4 whole samples) and mixed.tar (the bad
 *                                   files as samples, a sample with no image, an unreadable .cls and .json, and
 *                                   good samples around them)
 *
 * Photos come from --photos, $COLORPIPE_PHOTOS or the photo collection beside the clone: the first 8, by file
 * name, of the public-domain and CC0 photos of each of three GCompris "categorization" sets (tools, renewable,
 * others), from the Debian package gcompris-qt-data. Without that folder (or with --synthetic) the images are
 * synthetic: seeded gradients and shapes, same classes and layout, so everything downstream still works.
 *
 * The same source gives byte-identical files on every run (fixed seeds, sharp's encoders, fixed tar headers).
 * Usage: node dist/scripts/make-fixtures.js [--out DIR] [--photos DIR | --synthetic]
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import sharp from 'sharp';
import tar from 'tar-stream';
import { Rng } from '../src/core/rng.js';
import { writeShards } from '../src/shard/graph.js';
import { Reporter } from '../src/core/errors.js';

export const FIXTURE_CLASSES = ['others', 'renewable', 'tools'] as const;
const PER_CLASS = 8;
const SHORT_SIDE = 64;
const QUALITY = 85;
const LICENSES_OK = new Set(['public-domain', 'CC0-1.0']);

export interface MakeFixturesOptions {
  /** Output folder (its images/, bad/ and shards/ are replaced). */
  out: string;
  /** A photo collection with MANIFEST.tsv (defaultPhotosDir); null or missing folder: synthetic images. */
  photos?: string | null;
  log?: (line: string) => void;
}

export interface MakeFixturesResult {
  mode: 'photos' | 'synthetic';
  /** Every file written, relative to `out`, sorted. */
  files: string[];
}

interface SourceImage {
  cls: string;
  name: string;
  bytes: Buffer;
  attribution?: string[];
}

/** Rows of MANIFEST.tsv as objects. */
function parseTsv(text: string): Record<string, string>[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const head = lines[0]!.split('\t');
  return lines.slice(1).map((l) => {
    const cells = l.split('\t');
    return Object.fromEntries(head.map((h, i) => [h, cells[i] ?? '']));
  });
}

async function photoSources(photos: string): Promise<{ images: SourceImage[]; header: string[] }> {
  const rows = parseTsv(await fsp.readFile(path.join(photos, 'MANIFEST.tsv'), 'utf8'));
  const header = Object.keys(rows[0] ?? {});
  const images: SourceImage[] = [];
  for (const cls of FIXTURE_CLASSES) {
    const prefix = `gcompris-qt-data__categorization-${cls}-`;
    const chosen = rows
      .filter((r) => r['file']!.startsWith(prefix) && LICENSES_OK.has(r['license']!))
      .sort((a, b) => (a['file']! < b['file']! ? -1 : 1))
      .slice(0, PER_CLASS);
    if (chosen.length < PER_CLASS) throw new Error(`Only ${chosen.length} usable photos for class ${cls} in ${photos}`);
    for (const r of chosen) {
      const src = await fsp.readFile(path.join(photos, 'images', r['file']!));
      const bytes = await sharp(src)
        .resize({ width: SHORT_SIDE, height: SHORT_SIDE, fit: 'outside' })
        .jpeg({ quality: QUALITY })
        .toBuffer();
      images.push({ cls, name: `${r['file']!.slice(prefix.length)}`, bytes, attribution: header.map((h) => r[h] ?? '') });
    }
  }
  return { images, header };
}

/** A colourful synthetic picture: a two-colour gradient with a few discs and bars, and a little noise. */
async function syntheticImage(rng: Rng, cls: number): Promise<Buffer> {
  const width = SHORT_SIDE + 8 * rng.int(5);
  const height = SHORT_SIDE;
  const px = Buffer.alloc(width * height * 3);
  // Each class leans to one hue so a classifier has something to learn.
  const base = [
    [200, 60, 40],
    [40, 170, 70],
    [50, 90, 210],
  ][cls % 3]!;
  const c0 = base.map((v) => Math.min(255, Math.max(0, v + rng.int(61) - 30)));
  const c1 = [rng.int(256), rng.int(256), rng.int(256)];
  const shapes = Array.from({ length: 3 }, () => ({
    x: rng.int(width),
    y: rng.int(height),
    r: 6 + rng.int(16),
    c: [rng.int(256), rng.int(256), rng.int(256)],
    disc: rng.next() < 0.5,
  }));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = (x + y) / (width + height);
      let c = [0, 1, 2].map((k) => c0[k]! * (1 - t) + c1[k]! * t);
      for (const s of shapes) {
        const inside = s.disc ? (x - s.x) ** 2 + (y - s.y) ** 2 < s.r * s.r : Math.abs(x - s.x) < s.r && Math.abs(y - s.y) < s.r / 3;
        if (inside) c = s.c;
      }
      const o = (y * width + x) * 3;
      for (let k = 0; k < 3; k++) px[o + k] = Math.min(255, Math.max(0, Math.round(c[k]! + rng.int(9) - 4)));
    }
  }
  return sharp(px, { raw: { width, height, channels: 3 } }).jpeg({ quality: QUALITY }).toBuffer();
}

async function syntheticSources(): Promise<SourceImage[]> {
  const rng = new Rng('colorpipe-fixtures');
  const images: SourceImage[] = [];
  for (let c = 0; c < FIXTURE_CLASSES.length; c++) {
    for (let i = 0; i < PER_CLASS; i++) {
      images.push({ cls: FIXTURE_CLASSES[c]!, name: `synthetic${i}.jpg`, bytes: await syntheticImage(rng, c) });
    }
  }
  return images;
}

/**
 * A PNG that declares 20000x20000 pixels (400 megapixels: over sharp's default limit of 268 and the config's 67)
 * but is about 50 KB: a 1-bit gray image of zeros, deflated. Written by hand with zlib because libvips' PNG
 * encoder takes seconds and gives 400+ KB for the same image.
 */
export function decompressionBombPng(size = 20000): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(td) >>> 0);
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // grayscale
  // Each row: filter byte 0, then size/8 bytes of zeros.
  const raw = Buffer.alloc((1 + Math.ceil(size / 8)) * size);
  const idat = zlib.deflateSync(raw, { level: 9 });
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', idat),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** The bad and awkward inputs, by file name, made from one good fixture image. */
async function badFiles(good: Buffer): Promise<Map<string, Buffer>> {
  const rng = new Rng('colorpipe-bad-fixtures');
  const noise = Buffer.alloc(3000);
  for (let i = 0; i < noise.length; i++) noise[i] = rng.int(256);
  // A colourful image bigger than the fixtures, so that cutting it in half cuts scan data, not headers.
  const larger = await sharp(good).resize({ width: 96, height: 80, fit: 'fill' }).jpeg({ quality: 90 }).toBuffer();
  const w = 60;
  const h = 40;
  const alpha = Buffer.alloc(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) alpha[y * w + x] = Math.round((255 * x) / (w - 1));
  const rgb = await sharp(good).resize({ width: w, height: h, fit: 'fill' }).removeAlpha().raw().toBuffer();
  const files = new Map<string, Buffer>([
    // JPEG SOI and an APP0 marker, then noise.
    ['corrupt.jpg', Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]), noise])],
    ['truncated.jpg', larger.subarray(0, Math.floor(larger.length / 2))],
    ['empty.jpg', Buffer.alloc(0)],
    ['notimage.jpg', Buffer.from('This is a text file with a .jpg name, not an image.\n')],
    ['tiny.png', await sharp({ create: { width: 1, height: 1, channels: 3, background: { r: 200, g: 30, b: 30 } } }).png().toBuffer()],
    ['bomb.png', decompressionBombPng()],
    ['gray.jpg', await sharp(good).toColourspace('b-w').jpeg({ quality: QUALITY }).toBuffer()],
    ['cmyk.jpg', await sharp(good).toColourspace('cmyk').jpeg({ quality: QUALITY }).toBuffer()],
    ['rgba.png', await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).joinChannel(alpha, { raw: { width: w, height: h, channels: 1 } }).png().toBuffer()],
    // Stored 80 wide and 64 high; displayed 64 wide and 80 high once orientation 6 (rotate 90 clockwise) applies.
    ['rot6.jpg', await sharp(good).resize({ width: 80, height: 64, fit: 'fill' }).withMetadata({ orientation: 6 }).jpeg({ quality: QUALITY }).toBuffer()],
    ['deep16.png', await sharp(good).toColourspace('rgb16').png().toBuffer()],
  ]);
  return files;
}

const HEADER = { mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', mtime: new Date(0), type: 'file' as const };

async function tarOf(members: [string, Buffer][]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const [name, data] of members) pack.entry({ ...HEADER, name, size: data.length }, data);
  pack.finalize();
  await ended;
  return Buffer.concat(chunks);
}

/** Byte offsets of the members of an uncompressed ustar archive (no long-name extensions needed here). */
export function tarMemberOffsets(buf: Buffer): { name: string; header: number; data: number; size: number }[] {
  const out: { name: string; header: number; data: number; size: number }[] = [];
  let at = 0;
  while (at + 512 <= buf.length && buf[at] !== 0) {
    const name = buf.toString('utf8', at, at + 100).replace(/\0.*$/s, '');
    const size = parseInt(buf.toString('latin1', at + 124, at + 136).replace(/\0.*$/s, '').trim(), 8);
    out.push({ name, header: at, data: at + 512, size });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

async function writeFile(root: string, rel: string, data: Buffer | string, written: string[]): Promise<void> {
  const abs = path.join(root, rel);
  await fsp.mkdir(path.dirname(abs), { recursive: true });
  await fsp.writeFile(abs, data);
  written.push(rel);
}

export async function makeFixtures(options: MakeFixturesOptions): Promise<MakeFixturesResult> {
  const log = options.log ?? (() => undefined);
  const out = path.resolve(options.out);
  const usePhotos = options.photos != null && existsSync(path.join(options.photos, 'MANIFEST.tsv'));
  const written: string[] = [];
  for (const sub of ['images', 'bad', 'shards']) await fsp.rm(path.join(out, sub), { recursive: true, force: true });

  let images: SourceImage[];
  let header: string[] = [];
  if (usePhotos) {
    ({ images, header } = await photoSources(options.photos!));
    log(`fixtures: ${images.length} photos from ${options.photos}`);
  } else {
    images = await syntheticSources();
    log(`fixtures: ${images.length} synthetic images (no photos folder)`);
  }
  for (const im of images) await writeFile(out, `images/${im.cls}/${im.name}`, im.bytes, written);
  const attribution = usePhotos
    ? [
        ['fixture', ...header].join('\t'),
        ...images.map((im) => [`${im.cls}/${im.name}`, ...(im.attribution ?? [])].join('\t')),
      ].join('\n') +
      '\n' +
      '# Resized to a 64 px short side (JPEG quality 85) by scripts/make-fixtures.ts from ../shared/photos.\n' +
      '# All are public domain or CC0 (column license); the package copyright file is\n' +
      '# /usr/share/doc/gcompris-qt-data/copyright in Debian (and ../shared/photos/LICENSES/).\n'
    : 'fixture\tsource\n' + images.map((im) => `${im.cls}/${im.name}\tsynthetic (scripts/make-fixtures.ts)`).join('\n') + '\n';
  await writeFile(out, 'images/ATTRIBUTION.tsv', attribution, written);

  const bad = await badFiles(images[0]!.bytes);
  for (const [name, data] of bad) await writeFile(out, `bad/${name}`, data, written);

  const shardDir = path.join(out, 'shards');
  const res = await writeShards({
    input: path.join(out, 'images'),
    output: shardDir,
    maxcount: Math.ceil(images.length / 2),
    prefix: 'data',
    labels: 'dirs',
    reporter: new Reporter({ log: null }),
    concurrency: 2,
  });
  if (res.written !== images.length || res.shards.length !== 2) {
    throw new Error(`writeShards wrote ${res.written} samples in ${res.shards.length} shards, expected ${images.length} in 2`);
  }
  written.push(...res.shards.map((s) => path.relative(out, s)), 'shards/classes.json');

  // truncated.tar: cut inside the image member of the 5th sample (3 members per sample).
  const first = await fsp.readFile(res.shards[0]!);
  const members = tarMemberOffsets(first);
  const cutMember = members[4 * 3]!;
  await writeFile(out, 'shards/truncated.tar', first.subarray(0, cutMember.data + Math.floor(cutMember.size / 2)), written);

  // mixed.tar: every bad file as a sample with a class, and the other awkward cases, between good samples.
  const good = images.slice(0, 2).map((im) => im.bytes);
  const mixed: [string, Buffer][] = [['good0.jpg', good[0]!], ['good0.cls', Buffer.from('0')]];
  for (const [name, data] of [...bad].sort((x, y) => (x[0] < y[0] ? -1 : 1))) {
    const key = name.slice(0, name.indexOf('.'));
    mixed.push([name, data], [`${key}.cls`, Buffer.from('1')]);
  }
  mixed.push(
    ['noimage.cls', Buffer.from('2')],
    ['noimage.json', Buffer.from('{"note":"a sample without an image member"}')],
    ['badcls.jpg', good[1]!],
    ['badcls.cls', Buffer.from('not a number')],
    ['badjson.jpg', good[1]!],
    ['badjson.json', Buffer.from('{"unterminated": ')],
    ['good1.jpg', good[1]!],
    ['good1.cls', Buffer.from(' 2\n')],
    ['good1.json', Buffer.from('{"path":"good1.jpg"}')],
  );
  await writeFile(out, 'shards/mixed.tar', await tarOf(mixed), written);
  return { mode: usePhotos ? 'photos' : 'synthetic', files: written.sort() };
}

/** The repository root (this file is dist/scripts/make-fixtures.js once compiled). */
export function repoRoot(): string {
  return fileURLToPath(new URL('../../', import.meta.url));
}

/** Where the photos are by default: $COLORPIPE_PHOTOS, else the photo collection beside the clone. */
export function defaultPhotosDir(): string {
  return process.env['COLORPIPE_PHOTOS'] ?? path.resolve(repoRoot(), '..', 'shared', 'photos');
}

async function main(argv: string[]): Promise<void> {
  let out = path.join(repoRoot(), 'fixtures');
  let photos: string | null = defaultPhotosDir();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') out = path.resolve(argv[++i] ?? '');
    else if (a === '--photos') photos = path.resolve(argv[++i] ?? '');
    else if (a === '--synthetic') photos = null;
    else throw new Error(`Unknown argument ${a}; usage: make-fixtures [--out DIR] [--photos DIR | --synthetic]`);
  }
  const res = await makeFixtures({ out, photos, log: (l) => console.log(l) });
  console.log(`fixtures: ${res.files.length} files (${res.mode}) in ${out}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
