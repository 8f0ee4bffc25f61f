/**
 * `batch`: Lab samples into batches, one contiguous Float32Array per field ([B, H, W, 1] for L, [B, H, W, 2] for
 * ab), ready to become tensors in the train or predict stage without another copy.
 *
 * Shapes: a batch holds samples of one height and width. A sample of another size than the batch's first one
 * closes the batch early (emitted short, even with `dropLast`) and starts a new one; training data has one size,
 * so this only happens when inferring on mixed sizes. With `dropLast` the short batch left at the end of the
 * stream is dropped (its samples are not reported: they are not bad input).
 *
 * A sample whose L or ab length does not match its width and height is bad input: reported and left out.
 * Errors surface at the consumer's next `await`: the source's errors, and AbortError on ctx.signal's abort.
 */
import type { Stage, StageContext } from '../core/pipeline.js';
import type { LabBatch, LabSample } from '../types.js';
import { abortErrorOf } from '../core/abort.js';
import { bool, object, positiveInt } from '../core/validate.js';

export interface BatchOptions {
  /** Samples per batch. */
  size: number;
  /** Drop the short batch at the end of the stream (default false). */
  dropLast?: boolean;
}

class Builder {
  readonly L: Float32Array;
  readonly ab: Float32Array;
  readonly cls: Int32Array;
  readonly keys: string[] = [];
  readonly positions: LabBatch['positions'] = [];
  count = 0;
  constructor(
    readonly capacity: number,
    readonly height: number,
    readonly width: number,
  ) {
    const px = height * width;
    this.L = new Float32Array(capacity * px);
    this.ab = new Float32Array(capacity * px * 2);
    this.cls = new Int32Array(capacity);
  }

  add(s: LabSample): void {
    const px = this.height * this.width;
    this.L.set(s.L, this.count * px);
    this.ab.set(s.ab, this.count * px * 2);
    this.cls[this.count] = s.cls ?? -1;
    this.keys.push(s.key);
    this.positions.push(s.position);
    this.count++;
  }

  build(): LabBatch {
    const n = this.count;
    const px = this.height * this.width;
    const full = n === this.capacity;
    // A short batch gets arrays of its own length (a copy, rare), so shapes always match `size`.
    return {
      size: n,
      height: this.height,
      width: this.width,
      L: full ? this.L : this.L.slice(0, n * px),
      ab: full ? this.ab : this.ab.slice(0, n * px * 2),
      cls: full ? this.cls : this.cls.slice(0, n),
      keys: this.keys,
      positions: this.positions,
    };
  }
}

/**
 * Batches Lab samples.
 * @throws InvalidOptionError at once for a bad size or dropLast.
 * @example pipeline(source, batch({ size: 32, dropLast: true }))
 */
export function batch(options: BatchOptions): Stage<LabSample, LabBatch> {
  object(options, 'options');
  const size = positiveInt(options.size, 'options.size');
  const dropLast = options.dropLast === undefined ? false : bool(options.dropLast, 'options.dropLast');
  return async function* batchStage(source: AsyncIterable<LabSample>, ctx: StageContext): AsyncGenerator<LabBatch> {
    let b: Builder | null = null;
    for await (const s of source) {
      if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
      const px = s.width * s.height;
      if (!(px > 0) || s.L.length !== px || s.ab.length !== px * 2) {
        ctx.reporter.report(
          'batch',
          s.key,
          `expected L of ${px} and ab of ${px * 2} values for ${s.width}x${s.height} but received ${s.L.length} and ${s.ab.length}`,
        );
        continue;
      }
      if (b !== null && (b.height !== s.height || b.width !== s.width)) {
        const out = b.build();
        b = null;
        yield out;
      }
      if (b === null) b = new Builder(size, s.height, s.width);
      b.add(s);
      if (b.count === size) {
        const out = b.build();
        b = null;
        yield out;
      }
    }
    if (b !== null && b.count > 0 && !dropLast) yield b.build();
  };
}
