/**
 * Tiles for the local path: a large image's local input cut into overlapping windows whose margin (the halo)
 * covers the local path's reach (src/model/table.ts localReach), so that the ab kept from each window is the
 * one-pass result exactly, while the engine's memory is bounded by the window's size instead of the image's.
 *
 * The local path (low- and mid-level features, fusion with the image's global vector, colorization) is fully
 * convolutional: an output pixel depends only on the input within `reach` pixels of it. A window whose origin
 * and size are multiples of the path's stride (8) samples the same grid as the whole image at every level, and
 * its edges on the image's border are padded as the whole image's are; only its inner edges differ, within
 * `reach` of them. So each window keeps its part that is at least `halo >= reach` from its inner edges, and
 * windows are placed so that the kept parts meet: along an axis of n pixels with windows of t, the origins are
 * 0, t - 2 halo, 2 (t - 2 halo), ... and the last one is moved back to n - t (all windows one size, so they
 * batch). The global path is untouched: it sees the 224 x 224 rescale of the whole image.
 */
import { DEFAULT_CONFIG } from '../config.js';
import { layerTable, localReach } from '../network/table.js';
import { invalidOption } from '../core/validate.js';

/**
 * The default largest local input run in one pass, as a side: 1024 x 1024 (about 0.3 GB of activations at the
 * paper's width on ONNX Runtime's CPU engine, far less at the usual 1/8). Larger inputs run in windows of it:
 * about 1.35x the work of one pass (the halos), in bounded memory.
 */
export const DEFAULT_TILE = 1024;

/** The margin kept around each window's kept part: the local path's reach, rounded up to its stride. */
export const TILE_HALO = (() => {
  const { reach, stride } = localReach(layerTable(DEFAULT_CONFIG.model));
  return Math.ceil(reach / stride) * stride;
})();

/**
 * The smallest tile: 4 halos (288), half of each window kept. The work grows as (tile / (tile - 2 halo))^2 over
 * one pass: 4x at the smallest, 1.35x at the default 1024.
 */
export const MIN_TILE = 4 * TILE_HALO;

/**
 * Checks a tile size: a multiple of 8 of at least MIN_TILE.
 * @throws InvalidOptionError naming `name`.
 */
export function checkTile(tile: unknown, name: string): number {
  const min = MIN_TILE;
  if (!Number.isInteger(tile) || (tile as number) % 8 !== 0 || (tile as number) < min) throw invalidOption(name, `a multiple of 8 of at least ${min}`, tile);
  return tile as number;
}

/** The windows along one axis: origins, each with the part it keeps [keepFrom, keepTo) (input pixels). */
export interface AxisWindows {
  size: number;
  windows: { origin: number; keepFrom: number; keepTo: number }[];
}

/**
 * Windows of `tile` pixels (at most; the whole axis when it is shorter) along an axis of `n` pixels, overlapping
 * by 2 halo. n, tile and halo are multiples of 8; tile > 2 halo.
 * @throws RangeError for sizes that break those rules (a bug in the caller).
 */
export function axisWindows(n: number, tile: number, halo: number): AxisWindows {
  for (const [name, v] of [['n', n], ['tile', tile], ['halo', halo]] as const) {
    if (!Number.isInteger(v) || v < 0 || v % 8 !== 0) throw new RangeError(`Expected ${name} a multiple of 8 but received ${v}`);
  }
  if (n <= tile) return { size: n, windows: [{ origin: 0, keepFrom: 0, keepTo: n }] };
  const core = tile - 2 * halo;
  if (core < 8) throw new RangeError(`Expected a tile of at least ${2 * halo + 8} pixels (halo ${halo}) but received ${tile}`);
  const origins: number[] = [];
  for (let o = 0; o + tile < n; o += core) origins.push(o);
  origins.push(n - tile);
  let kept = 0;
  const windows = origins.map((origin) => {
    const keepFrom = kept;
    const keepTo = origin + tile === n ? n : origin + tile - halo;
    kept = keepTo;
    return { origin, keepFrom, keepTo };
  });
  return { size: tile, windows };
}

/** The windows of a width x height local input; none (one pass) when it has at most tile x tile pixels. */
export interface TilePlan {
  tileWidth: number;
  tileHeight: number;
  /** Row-major: rows of windows, each row the columns' windows. */
  tiles: { x: AxisWindows['windows'][number]; y: AxisWindows['windows'][number] }[];
}

/**
 * The tiling of a local input, or null when it fits in one pass (width x height <= tile x tile: memory is
 * bounded by pixels, so a long thin image stays whole).
 */
export function planTiles(width: number, height: number, tile: number, halo: number): TilePlan | null {
  if (width * height <= tile * tile) return null;
  const xs = axisWindows(width, Math.min(tile, width), halo);
  const ys = axisWindows(height, Math.min(tile, height), halo);
  const tiles: TilePlan['tiles'] = [];
  for (const y of ys.windows) for (const x of xs.windows) tiles.push({ x, y });
  return { tileWidth: xs.size, tileHeight: ys.size, tiles };
}

/** Copies the window at (x, y) of size w x h out of a plane `width` wide into `out` at `offset`. */
export function cutWindow(plane: Float32Array, width: number, x: number, y: number, w: number, h: number, out: Float32Array, offset: number): void {
  for (let r = 0; r < h; r++) {
    const from = (y + r) * width + x;
    out.set(plane.subarray(from, from + w), offset + r * w);
  }
}

/**
 * Copies the kept part of a window's ab (interleaved a, b at half the window's size, from `offset` in `src`)
 * into the image's ab (half the local size, `abWidth` wide). Window coordinates are local input pixels
 * (multiples of 8), halved here.
 */
export function pasteKept(
  src: Float32Array,
  offset: number,
  tileWidth: number,
  t: TilePlan['tiles'][number],
  dst: Float32Array,
  abWidth: number,
): void {
  const tw = tileWidth / 2;
  const x0 = t.x.keepFrom / 2;
  const x1 = t.x.keepTo / 2;
  const ox = t.x.origin / 2;
  const oy = t.y.origin / 2;
  for (let y = t.y.keepFrom / 2; y < t.y.keepTo / 2; y++) {
    const from = offset + ((y - oy) * tw + (x0 - ox)) * 2;
    dst.set(src.subarray(from, from + (x1 - x0) * 2), (y * abWidth + x0) * 2);
  }
}
