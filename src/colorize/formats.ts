/**
 * The image formats colorize reads and writes, by the names sharp uses: what `--format` accepts, the format an
 * input is in (by its extension or its first bytes), the extension an output gets, and the quality a lossy one
 * takes. Pure functions, no I/O; only checkQuality throws (InvalidOptionError).
 */
import { invalidOption } from '../core/validate.js';

/** Output formats colorize writes; 'same' keeps the input's. */
export type OutputFormat = 'jpeg' | 'png' | 'webp' | 'tiff' | 'gif' | 'avif';

/** What `--format` / `options.format` accepts. */
export type FormatChoice = 'same' | OutputFormat | 'jpg';

export const FORMATS: readonly FormatChoice[] = ['same', 'jpg', 'jpeg', 'png', 'webp', 'tiff', 'gif', 'avif'];

/** The canonical extension of a format. */
export function formatExtension(format: OutputFormat): string {
  return format === 'jpeg' ? 'jpg' : format === 'tiff' ? 'tif' : format;
}

/** The format an extension names (with or without its dot, any case), or null. */
export function extFormat(ext: string | undefined): OutputFormat | null {
  switch ((ext ?? '').toLowerCase().replace(/^\./, '')) {
    case 'jpg': case 'jpeg': return 'jpeg';
    case 'png': return 'png';
    case 'webp': return 'webp';
    case 'tif': case 'tiff': return 'tiff';
    case 'gif': return 'gif';
    case 'avif': return 'avif';
    default: return null;
  }
}

/** sharp's name of an image format from its first bytes, or null (colorize's `--format same`). */
export function sniffFormat(bytes: Uint8Array): OutputFormat | null {
  const b = bytes;
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'webp';
  if (b.length >= 4 && ascii(b, 0, 4) === 'GIF8') return 'gif';
  if (b.length >= 4 && ((b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a && b[3] === 0) || (b[0] === 0x4d && b[1] === 0x4d && b[2] === 0 && b[3] === 0x2a))) return 'tiff';
  if (b.length >= 12 && ascii(b, 4, 8) === 'ftyp' && /^avi[fs]$/.test(ascii(b, 8, 12))) return 'avif';
  return null;
}

function ascii(b: Uint8Array, from: number, to: number): string {
  return String.fromCharCode(...b.subarray(from, to));
}

/**
 * A JPEG/WebP/AVIF/TIFF quality: an integer in [1, 100].
 * @throws InvalidOptionError otherwise.
 */
export function checkQuality(q: unknown, name: string): number {
  if (!Number.isInteger(q) || (q as number) < 1 || (q as number) > 100) throw invalidOption(name, 'integer in [1, 100]', q);
  return q as number;
}
