/**
 * A small, fast, seedable pseudo-random generator whose whole state is four 32-bit words, so a run can save it
 * in state.json and continue the exact same stream after a resume.
 *
 * The generator is sfc32 (Chris Doty-Humphrey's Small Fast Chaotic PRNG, from PractRand; passes BigCrush and
 * PractRand to terabytes), seeded through cyrb128 (a 128-bit string hash by bryc). `fork(...labels)` derives an
 * independent stream from the current state and the labels without advancing this one: per-sample augmentation
 * uses `new Rng(seed).fork(epoch, key)`, so a sample's crop and flip depend only on (seed, epoch, key), not on
 * which process or in which order it was decoded.
 *
 * Nothing here is cryptographic.
 */
import { invalidOption } from './validate.js';

const TWO_POW_32 = 4294967296;

/** cyrb128: four 32-bit words from a string (bryc, public domain). */
export function hash128(str: string): [number, number, number, number] {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  let h4 = 2773480762;
  for (let i = 0; i < str.length; i++) {
    const k = str.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4;
  h2 ^= h1;
  h3 ^= h1;
  h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

/** Encodes a label with its type, so that fork(1) and fork('1') give different streams. */
function labelText(label: string | number): string {
  if (typeof label === 'number') {
    if (Number.isNaN(label)) throw invalidOption('an rng label', 'a number or string', label);
    return `n${label}`;
  }
  if (typeof label === 'string') return `s${label.length}:${label}`;
  throw invalidOption('an rng label', 'a number or string', label);
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  /**
   * @param seed any finite number or any string; equal seeds give equal streams on every platform.
   * @throws InvalidOptionError for a non-finite number or another type.
   */
  constructor(seed: number | string) {
    let text: string;
    if (typeof seed === 'number') {
      if (!Number.isFinite(seed)) throw invalidOption('seed', 'a finite number or a string', seed);
      text = labelText(seed);
    } else if (typeof seed === 'string') {
      text = labelText(seed);
    } else {
      throw invalidOption('seed', 'a finite number or a string', seed);
    }
    [this.a, this.b, this.c, this.d] = hash128(text);
    // sfc32's author recommends discarding the first outputs so nearby seeds decorrelate.
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** The next 32-bit unsigned integer. */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** A float in [0, 1) with 32 random bits. */
  next(): number {
    return this.nextUint32() / TWO_POW_32;
  }

  /**
   * An integer uniform in [0, n) with no modulo bias (rejection sampling).
   * @throws InvalidOptionError unless n is an integer in [1, 2^32].
   */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_POW_32) {
      throw invalidOption('n', 'integer in [1, 2^32]', n);
    }
    if (n === 1) return 0;
    // Largest multiple of n that fits in 2^32: draws at or above it are rejected.
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    let u = this.nextUint32();
    while (u >= limit) u = this.nextUint32();
    return u % n;
  }

  /** The generator's state: four unsigned 32-bit integers, JSON-serializable. */
  state(): number[] {
    return [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0];
  }

  /**
   * Rebuilds a generator from `state()`; it continues exactly where the saved one was.
   * @throws InvalidOptionError unless s is four integers in [0, 2^32).
   */
  static fromState(s: number[]): Rng {
    if (!Array.isArray(s) || s.length !== 4 || !s.every((x) => Number.isInteger(x) && x >= 0 && x < TWO_POW_32)) {
      throw invalidOption('rng state', 'four unsigned 32-bit integers', s);
    }
    const r = Object.create(Rng.prototype) as Rng;
    r.a = s[0]! | 0;
    r.b = s[1]! | 0;
    r.c = s[2]! | 0;
    r.d = s[3]! | 0;
    return r;
  }

  /**
   * A new, independent generator derived from this one's current state and the labels; this generator is not
   * advanced. `fork(a, b)` is a pure function of (state, a, b): the same call always gives the same stream.
   */
  fork(...labels: (string | number)[]): Rng {
    const text = `${this.state().join(',')}|${labels.map(labelText).join('|')}`;
    const r = Object.create(Rng.prototype) as Rng;
    [r.a, r.b, r.c, r.d] = hash128(text);
    for (let i = 0; i < 12; i++) r.nextUint32();
    return r;
  }
}

/** Fisher-Yates shuffle of `arr` in place with `rng`; returns `arr`. */
export function shuffleInPlace<T>(arr: T[], rng: Rng): T[] {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = arr[i]!;
    arr[i] = arr[j]!;
    arr[j] = t;
  }
  return arr;
}
