/**
 * Colour statistics in Lab units, what the colourfulness filter (src/stages/filter.ts) tests: mean chroma
 * sqrt(a^2 + b^2) (about 0 for a grayscale image) and the population standard deviations of a and b.
 *
 * The conversions that make Lab (splitLab, quantizeLab in lab.ts) gather these sums in their own pixel loop
 * with a StatsAccumulator, so an image is read once; labStats and labSampleStats compute them from Lab that
 * already exists. Nothing here throws on values; labStats throws a RangeError for a wrong length.
 */

export interface ColourStats {
  meanChroma: number;
  stdA: number;
  stdB: number;
}

/** The running sums of a, b, a^2, b^2 and chroma; `finish(n)` turns them into ColourStats. */
export class StatsAccumulator {
  sa = 0;
  sb = 0;
  saa = 0;
  sbb = 0;
  sc = 0;
  finish(n: number): ColourStats {
    if (n === 0) return { meanChroma: 0, stdA: 0, stdB: 0 };
    const ma = this.sa / n;
    const mb = this.sb / n;
    return {
      meanChroma: this.sc / n,
      stdA: Math.sqrt(Math.max(0, this.saa / n - ma * ma)),
      stdB: Math.sqrt(Math.max(0, this.sbb / n - mb * mb)),
    };
  }
}

/**
 * Colour statistics of interleaved Lab floats (e.g. libvips' `.toColourspace('lab').raw({ depth: 'float' })`).
 * @throws RangeError when lab's length is not a multiple of 3.
 */
export function labStats(lab: ArrayLike<number>): ColourStats {
  if (lab.length % 3 !== 0) throw new RangeError(`Expected a length that is a multiple of 3 for lab but received ${lab.length}`);
  const acc = new StatsAccumulator();
  for (let j = 0; j < lab.length; j += 3) {
    const a = lab[j + 1]!;
    const b = lab[j + 2]!;
    acc.sa += a;
    acc.sb += b;
    acc.saa += a * a;
    acc.sbb += b * b;
    acc.sc += Math.sqrt(a * a + b * b);
  }
  return acc.finish(lab.length / 3);
}

/** Colour statistics of a LabSample's normalized ab plane ((ab + 128) / 255, interleaved), in Lab units. */
export function labSampleStats(ab: Float32Array): ColourStats {
  const acc = new StatsAccumulator();
  for (let i = 0; i < ab.length; i += 2) {
    const a = ab[i]! * 255 - 128;
    const b = ab[i + 1]! * 255 - 128;
    acc.sa += a;
    acc.sb += b;
    acc.saa += a * a;
    acc.sbb += b * b;
    acc.sc += Math.sqrt(a * a + b * b);
  }
  return acc.finish(ab.length / 2);
}
