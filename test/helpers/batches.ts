import type { LabBatch } from '../../src/types.js';

/**
 * A batch of `n` smooth random images (a gradient of L and of ab per image, seeded) at `size`, with labels on every
 * other sample (the others have none): what the engines train on in tests that compare them.
 */
export function syntheticBatch(seed: number, n: number, size: number, numClasses: number): LabBatch {
  let s = seed >>> 0 || 1;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const L = new Float32Array(n * size * size);
  const ab = new Float32Array(n * size * size * 2);
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  for (let i = 0; i < n; i++) {
    const [l0, a0, b0, dx, dy] = [rnd(), rnd(), rnd(), rnd() - 0.5, rnd() - 0.5];
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const p = (i * size + y) * size + x;
        L[p] = clamp(l0 + (dx * x + dy * y) / size);
        ab[2 * p] = clamp(a0 + (dy * x) / size);
        ab[2 * p + 1] = clamp(b0 + (dx * y) / size);
      }
    }
  }
  const cls = Int32Array.from({ length: n }, (_, i) => (i % 2 || numClasses === 0 ? -1 : i % numClasses));
  return { size: n, height: size, width: size, L, ab, cls, keys: [], positions: [] };
}
