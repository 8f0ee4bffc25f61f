/**
 * Image quality figures shared by `pipe eval` and training's validation: PSNR over 8-bit RGB (the figure
 * colorization papers report) and Hasler and Suesstrunk's colourfulness (2003, "Measuring colourfulness in
 * natural images", eq. 2/3): rg = R - G, yb = (R + G) / 2 - B, M = sqrt(std_rg^2 + std_yb^2) +
 * 0.3 sqrt(mean_rg^2 + mean_yb^2).
 */

/** PSNR given to a pair with RMSE 0 (an exact reproduction), in dB. */
export const PSNR_CAP = 100;

/**
 * PSNR in dB between two 8-bit images of the same length (any channel layout: RGB compares all three).
 * @throws RangeError when the lengths differ or are 0.
 * @example psnr(Uint8Array.of(0, 0, 0), Uint8Array.of(255, 255, 255)) // 0
 */
export function psnr(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length || a.length === 0) {
    throw new RangeError(`Expected two non-empty images of the same length but received ${a.length} and ${b.length}`);
  }
  let se = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    se += d * d;
  }
  if (se === 0) return PSNR_CAP;
  return Math.min(PSNR_CAP, 20 * Math.log10(255 / Math.sqrt(se / a.length)));
}

/**
 * Hasler and Suesstrunk's colourfulness M of interleaved 8-bit sRGB (population standard deviations).
 * A gray image scores 0.
 * @throws RangeError when the length is not a positive multiple of 3.
 */
export function colourfulness(rgb: Uint8Array): number {
  const n = rgb.length / 3;
  if (!Number.isInteger(n) || n === 0) throw new RangeError(`Expected a positive multiple of 3 for the length of rgb but received ${rgb.length}`);
  let srg = 0, syb = 0, srg2 = 0, syb2 = 0;
  for (let j = 0; j < rgb.length; j += 3) {
    const r = rgb[j]!, g = rgb[j + 1]!, b = rgb[j + 2]!;
    const rg = r - g;
    const yb = 0.5 * (r + g) - b;
    srg += rg;
    syb += yb;
    srg2 += rg * rg;
    syb2 += yb * yb;
  }
  const mrg = srg / n;
  const myb = syb / n;
  const vrg = Math.max(0, srg2 / n - mrg * mrg);
  const vyb = Math.max(0, syb2 / n - myb * myb);
  return Math.sqrt(vrg + vyb) + 0.3 * Math.sqrt(mrg * mrg + myb * myb);
}
