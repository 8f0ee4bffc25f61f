/**
 * Small test images made on the fly with sharp (no fixture files needed): colourful and grey images, the
 * formats decode must convert, and bad inputs. Also a minimal WebDataset shard writer for loader tests.
 */
import { createWriteStream } from 'node:fs';
import { pipeline as streamPipeline } from 'node:stream/promises';
import sharp, { type Sharp } from 'sharp';
import tar from 'tar-stream';

/** A colourful w x h RGB image: hue varies across x, brightness across y, seeded by `seed`. */
export function colourfulRgb(w: number, h: number, seed = 0): Buffer {
  const buf = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = (y * w + x) * 3;
      buf[i] = (x * 255 / Math.max(1, w - 1) + seed * 37) & 255;
      buf[i + 1] = (y * 255 / Math.max(1, h - 1) + seed * 91) & 255;
      buf[i + 2] = ((x + y) * 7 + seed * 53) & 255;
    }
  }
  return buf;
}

export function rawImage(w: number, h: number, seed = 0): Sharp {
  return sharp(colourfulRgb(w, h, seed), { raw: { width: w, height: h, channels: 3 } });
}

export const jpeg = (w: number, h: number, seed = 0): Promise<Buffer> => rawImage(w, h, seed).jpeg({ quality: 95 }).toBuffer();
export const png = (w: number, h: number, seed = 0): Promise<Buffer> => rawImage(w, h, seed).png().toBuffer();

/** A true one-channel grayscale PNG. */
export function greyPng(w: number, h: number): Promise<Buffer> {
  const g = Buffer.alloc(w * h);
  for (let i = 0; i < g.length; i++) g[i] = (i * 13) & 255;
  return sharp(g, { raw: { width: w, height: h, channels: 1 } }).png().toBuffer();
}

/** RGBA PNG whose alpha is x-dependent (0 at the left edge). */
export function alphaPng(w: number, h: number): Promise<Buffer> {
  const rgb = colourfulRgb(w, h);
  const rgba = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    rgba[4 * i] = rgb[3 * i]!;
    rgba[4 * i + 1] = rgb[3 * i + 1]!;
    rgba[4 * i + 2] = rgb[3 * i + 2]!;
    rgba[4 * i + 3] = (i % w) * 4 & 255;
  }
  return sharp(rgba, { raw: { width: w, height: h, channels: 4 } }).png().toBuffer();
}

/** A JPEG stored w x h with EXIF orientation 6 (displayed rotated 90 degrees: h x w). */
export const rotatedJpeg = (w: number, h: number): Promise<Buffer> =>
  rawImage(w, h).jpeg().withMetadata({ orientation: 6 }).toBuffer();
export const png16 = (w: number, h: number): Promise<Buffer> => rawImage(w, h).toColourspace('rgb16').png().toBuffer();
export const cmykJpeg = (w: number, h: number): Promise<Buffer> => rawImage(w, h).toColourspace('cmyk').jpeg().toBuffer();

/** `frames` colourful w x h frames (seeds 0, 1, ...) as one strip that sharp writes as a multi-page image. */
function frameStrip(w: number, h: number, frames: number): Sharp {
  const strip = Buffer.concat(Array.from({ length: frames }, (_, i) => colourfulRgb(w, h, i)));
  return sharp(strip, { raw: { width: w, height: h * frames, channels: 3, pageHeight: h } });
}

/** Multi-frame images: an animated GIF, an animated lossless WebP, a multi-page TIFF (frame i has seed i). */
export const animatedGif = (w: number, h: number, frames: number): Promise<Buffer> => frameStrip(w, h, frames).gif().toBuffer();
export const animatedWebp = (w: number, h: number, frames: number): Promise<Buffer> => frameStrip(w, h, frames).webp({ lossless: true }).toBuffer();
export const multiPageTiff = (w: number, h: number, pages: number): Promise<Buffer> => frameStrip(w, h, pages).tiff().toBuffer();

/** The bad inputs decode must report, by name. */
export async function badInputs(): Promise<Record<string, Buffer>> {
  const good = await jpeg(64, 48);
  const corrupt = Buffer.from(good);
  // Garble the entropy-coded data after the headers.
  for (let i = Math.floor(corrupt.length / 2); i < corrupt.length - 2; i++) corrupt[i] = (corrupt[i]! * 31 + 7) & 255;
  return {
    truncated: good.subarray(0, Math.floor(good.length / 2)),
    corrupt,
    empty: Buffer.alloc(0),
    text: Buffer.from('this is not an image, just text\n'),
    tiny: await png(1, 1),
  };
}

export interface ShardMember {
  name: string;
  data: Buffer | string;
}

/** Writes a tar shard with the members in order (WebDataset layout: KEY.ext). */
export async function writeTar(path: string, members: ShardMember[]): Promise<void> {
  const pack = tar.pack();
  const out = streamPipeline(pack, createWriteStream(path));
  for (const m of members) {
    await new Promise<void>((resolve, reject) => pack.entry({ name: m.name, mtime: new Date(0) }, m.data, (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  await out;
}
