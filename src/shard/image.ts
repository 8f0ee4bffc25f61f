/**
 * The shard command's image checks: whether a file is a usable image (`checkImage`), the grayscale filter
 * (`isNearGray`), and the member stored for it (`imageMember`).
 *
 * The image member's extension names the format of its bytes, as sharp finds it from their content, never the
 * file's name (`memberExtFor`): WebDataset readers pick a decoder by the member's extension (Python webdataset's
 * `.decode("pil")`, torchvision's and DALI's readers, our own shards stage), so a PNG saved as `x.jpg` is stored
 * as `KEY.png`. JPEG, PNG, WebP, GIF, TIFF and AVIF keep their original bytes; any other format sharp decodes
 * (SVG, HEIF that is not AVIF) is stored rasterized as a lossless PNG, because no common WebDataset reader decodes
 * it by extension (PIL has no SVG decoder, and our shards stage takes no `.svg` member), and because rasterizing
 * once fixes its pixels (an SVG's rendering depends on the librsvg version and the installed fonts). An SVG is
 * rendered from its bytes alone (no file name is given to librsvg, so it loads no external file or URL), at
 * sharp's default 72 dpi, with librsvg's size limits on (sharp's `unlimited: false`).
 *
 * Checks: every file must decode fully with sharp (`failOn: 'truncated'`, `limitInputPixels`) and be at least
 * 2x2; corrupt, truncated, empty, non-image files and decompression bombs are reported (stage 'shard') and
 * skipped. With `filter`, grayscale and near-grayscale images are skipped too (see `isNearGray`).
 */
import sharp from 'sharp';
import { reasonOf } from '../core/errors.js';

/** Mean over pixels of max(|R-G|, |G-B|), in 8-bit levels, below which an image counts as grayscale. */
export const GRAY_MEAN_CHANNEL_DIFF = 3;

/**
 * The filter's rule: an image is (near-)grayscale when it has fewer than 3 colour channels, or when the mean
 * over its pixels of max(|R-G|, |G-B|) is below GRAY_MEAN_CHANNEL_DIFF (JPEG chroma noise in a gray image saved
 * as RGB stays well under it; a sepia or faintly tinted photo is above it and kept).
 * @param rgb interleaved 8-bit pixels with `channels` 3 or 4 (alpha ignored)
 */
export function isNearGray(rgb: Uint8Array, channels: number): boolean {
  if (channels < 3) return true;
  const n = Math.floor(rgb.length / channels);
  if (n === 0) return true;
  let sum = 0;
  for (let i = 0; i < rgb.length; i += channels) {
    const r = rgb[i]!;
    const g = rgb[i + 1]!;
    const b = rgb[i + 2]!;
    sum += Math.max(Math.abs(r - g), Math.abs(g - b));
  }
  return sum / n < GRAY_MEAN_CHANNEL_DIFF;
}

export interface ImageCheck {
  ok: boolean;
  reason?: string;
  width?: number;
  height?: number;
  format?: string;
  /** HEIF's compression (`av1` for AVIF), from the header. */
  compression?: string;
}

/**
 * Decodes the whole image to find out whether it is usable. Never throws for bad bytes: `{ ok: false, reason }`.
 */
export async function checkImage(
  bytes: Buffer,
  options: { limitInputPixels: number; filter?: boolean },
): Promise<ImageCheck> {
  if (bytes.length === 0) return { ok: false, reason: 'empty file' };
  try {
    const input = () => sharp(bytes, { limitInputPixels: options.limitInputPixels, failOn: 'truncated' });
    // The header alone (no pixel is decoded), read without the limit so a bomb is reported with its size.
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    const width = meta.autoOrient?.width ?? meta.width;
    const height = meta.autoOrient?.height ?? meta.height;
    if (!width || !height) return { ok: false, reason: 'no image size in header' };
    if (width < 2 || height < 2) return { ok: false, reason: `image too small: ${width}x${height}` };
    if (meta.width * meta.height > options.limitInputPixels) {
      return { ok: false, reason: `image too large: ${meta.width}x${meta.height} exceeds limitInputPixels ${options.limitInputPixels}` };
    }
    // A full decode: truncated and corrupt data only show here, not in the header.
    const { data, info } = await input().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (options.filter && ((meta.channels ?? 3) < 3 || isNearGray(data, info.channels))) {
      return { ok: false, reason: 'grayscale or near-grayscale image (filter)' };
    }
    const ok: ImageCheck = { ok: true, width, height, format: meta.format };
    if (meta.compression !== undefined) ok.compression = meta.compression;
    return ok;
  } catch (err) {
    return { ok: false, reason: `cannot decode: ${reasonOf(err)}` };
  }
}

/**
 * The image member's extension for bytes of sharp's `format` (with HEIF's `compression`), or null when they are
 * stored converted to PNG (see the module comment). `sourceExt` (the file's, lower case) only chooses between two
 * names of one format: `tiff` stays `tiff`, any other TIFF is `tif`; JPEG is always `jpg`.
 */
export function memberExtFor(format: string | undefined, compression: string | undefined, sourceExt: string): string | null {
  switch (format) {
    case 'jpeg':
      return 'jpg';
    case 'png':
    case 'webp':
    case 'gif':
      return format;
    case 'tiff':
      return sourceExt === 'tiff' ? 'tiff' : 'tif';
    case 'heif':
      return compression === 'av1' ? 'avif' : null;
    default:
      return null;
  }
}

/** An image member: its extension, bytes and their format, and the source's format when converted. */
export interface ImageMember {
  ext: string;
  data: Buffer;
  format: string;
  sourceFormat?: string;
}

/**
 * The member stored for a file that passed checkImage: its own bytes under the extension of their format, or
 * (for a format no WebDataset reader decodes by extension) a PNG rendering, orientation applied.
 * @throws what sharp throws when the conversion fails (the caller reports it).
 */
export async function imageMember(bytes: Buffer, check: ImageCheck, relPath: string, limitInputPixels: number): Promise<ImageMember> {
  const base = relPath.slice(relPath.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  const format = check.format ?? 'unknown';
  const ext = memberExtFor(check.format, check.compression, dot > 0 ? base.slice(dot + 1).toLowerCase() : '');
  if (ext !== null) return { ext, data: bytes, format };
  // From the buffer alone: librsvg gets no base file name, so an SVG's references to files or URLs load nothing.
  const png = await sharp(bytes, { limitInputPixels, failOn: 'truncated', unlimited: false }).rotate().png().toBuffer();
  return { ext: 'png', data: png, format: 'png', sourceFormat: format };
}
