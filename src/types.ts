/** The data that flows between stages. Buffers and typed arrays only: no tensors before the engine. */

/** Where a sample sits in the shard stream, enough to resume exactly after it. */
export interface ShardPosition {
  /** Epoch (0-based); the shard order is a seeded permutation per epoch. */
  epoch: number;
  /** Index into this epoch's (rank's) shard order. */
  shardIndex: number;
  /** The shard's path or URL. */
  shard: string;
  /** Index of the sample within its shard (0-based). */
  sample: number;
}

/** One WebDataset sample: tar members sharing a key (`a/x.jpg`, `a/x.cls`, `a/x.json` -> key `a/x`). */
export interface Sample {
  /** WebDataset `__key__`. */
  key: string;
  /** WebDataset `__url__`: the shard (or file) it came from. */
  url: string;
  /** The first image member's bytes (jpg, jpeg, png, webp, tif, tiff, gif, avif), if any. */
  image?: Buffer;
  /** The extension of that image member (e.g. 'jpg', 'seg.png'). */
  imageExt?: string;
  /** `.cls` decoded as an integer. */
  cls?: number;
  /** `.json` decoded. */
  meta?: unknown;
  /** Every member by extension, raw. */
  fields: Record<string, Buffer>;
  /** Set by the shards stage: where this sample sits, for exact resume. */
  position?: ShardPosition;
  /** Set by the files stage: the path relative to the input root (output paths mirror it). */
  relPath?: string;
}

/** An image decoded to 8-bit sRGB, interleaved RGB (channels = 3), row-major. */
export interface DecodedImage {
  key: string;
  url?: string;
  cls?: number;
  position?: ShardPosition;
  relPath?: string;
  width: number;
  height: number;
  /** RGB bytes, length width * height * 3. */
  rgb: Uint8Array;
  /** Infer mode only, when the input has an alpha channel: alpha bytes, length width * height. */
  alpha?: Uint8Array;
  /**
   * Set when the input has frames or pages that were not decoded (an animated GIF or WebP, a multi-page TIFF:
   * see multiFrameNote in stages/decode.ts); the decode stage gives it to ctx.reporter.notice once per file.
   */
  note?: string;
}

/**
 * A training sample in CIE Lab, normalized for the network: L / 100 in [0, 1] and (ab + 128) / 255 in
 * [0, 1] (the paper's sigmoid output range). Row-major, NHWC-ready.
 */
export interface LabSample {
  key: string;
  cls?: number;
  position?: ShardPosition;
  width: number;
  height: number;
  /** length width * height */
  L: Float32Array;
  /** length width * height * 2, interleaved a, b */
  ab: Float32Array;
}

/** A batch: one contiguous Float32Array per field, and the positions of the samples it holds. */
export interface LabBatch {
  size: number;
  height: number;
  width: number;
  /** [size, height, width, 1] */
  L: Float32Array;
  /** [size, height, width, 2] */
  ab: Float32Array;
  /** [size]; -1 where a sample has no class. */
  cls: Int32Array;
  keys: string[];
  /** The position of the last sample in the batch (resume point once this batch is trained on). */
  positions: (ShardPosition | undefined)[];
}

/**
 * How a model was trained: crops of `crop` pixels cut from images whose short side was scaled to `shortSide`
 * (config.augment's resize and crop). Saved with the model; colorize's default resolution uses it.
 */
export interface TrainingScale {
  shortSide: number;
  crop: number;
}
