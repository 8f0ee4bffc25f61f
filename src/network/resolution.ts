/**
 * The local path's processing size: what `--resolution` asks for, made concrete for a model and an image.
 * Pure (no Node, no engine): colorize (src/colorize/image.ts) and the browser page (src/web/) size their inputs
 * with the same rule, so both feed the network the same shapes.
 */
import type { TrainingScale } from '../types.js';

/**
 * The local path's resolution, as asked for: `auto` (the default) the scale the model trained at (the short
 * side scaled to its training `shortSide`, as the training crops were cut) when the model records it, else the
 * original size, with the long side at most MAX_AUTO_SIDE either way; `full` the original size rounded to a
 * multiple of 8; a number: the long side scaled to it.
 */
export type Resolution = 'auto' | 'full' | number;

/**
 * A resolution made concrete for one model: `full`, N (long side N), or a rule: the short side scaled to
 * `shortSide` (kept as is when absent), then the long side limited to `maxSide`.
 */
export type LocalScale = 'full' | number | { shortSide?: number; maxSide: number };

/**
 * The long side `auto` never exceeds (pixels of the local path; the output keeps the original size). The local
 * path's activations grow with its pixels (about 6 KB a pixel at the paper's width): 2048 x 1536 stays within
 * the wasm engine's memory at batch 1, where a 24-megapixel photo at full size does not.
 */
export const MAX_AUTO_SIDE = 2048;

/** `auto` made concrete for a model that does (or does not) record its training scale. */
export function resolveResolution(r: Resolution | LocalScale, scale?: TrainingScale | null): LocalScale {
  if (r !== 'auto') return r;
  return scale ? { shortSide: scale.shortSide, maxSide: MAX_AUTO_SIDE } : { maxSide: MAX_AUTO_SIDE };
}

/** Rounds to the nearest multiple of 8, at least 8. */
function round8(v: number): number {
  return Math.max(8, Math.round(v / 8) * 8);
}

/**
 * The local path's processing size for an image of (oriented) size width x height: `full` rounds each side
 * to the nearest multiple of 8 (the three stride-2 layers need it); N scales the long side to N, keeping the
 * aspect ratio; a rule scales the short side to `shortSide` (the training scale), then limits the long side to
 * `maxSide`. Both sides are then rounded to multiples of 8, at least 8 x 8.
 */
export function processingSize(width: number, height: number, resolution: LocalScale): { width: number; height: number } {
  if (resolution === 'full') return { width: round8(width), height: round8(height) };
  let scale: number;
  if (typeof resolution === 'number') scale = resolution / Math.max(width, height);
  else {
    scale = resolution.shortSide === undefined ? 1 : resolution.shortSide / Math.min(width, height);
    scale = Math.min(scale, resolution.maxSide / Math.max(width, height));
  }
  return { width: round8(width * scale), height: round8(height * scale) };
}
