/**
 * The page's colorize, pure (no DOM, no engine): decoded sRGB -> the network's two inputs -> a Runner
 * (network/runner.ts; in the page, onnxruntime-web: ort-runner.ts) -> the output pixels. The same steps as
 * `pipe colorize` with the same shared modules: the processing size (network/resolution.ts, `auto`), L and its
 * rescales (color/lightness.ts, color/resize.ts: resizeRgb stands in for sharp), the composition keeping the
 * original L at full size (color/compose.ts). The local path runs in one pass (colorize tiles inputs over 1024 x
 * 1024, with the same result); the global input is the image's own, or a style reference's.
 */
import { lightness } from '../color/lightness.js';
import { composeRgb } from '../color/compose.js';
import { rescaledLightness, resizeRgb } from '../color/resize.js';
import { processingSize, resolveResolution, type Resolution } from '../network/resolution.js';
import type { Runner } from '../network/runner.js';

/** Decoded 8-bit sRGB, interleaved, orientation applied. */
export interface RgbImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}

/** The stages a colorize reports, in order. */
export type Stage = 'prepare' | 'network' | 'compose';

export interface PageColorizeOptions {
  /** The local path's resolution (default 'auto': the model's training scale, long side at most 2048). */
  resolution?: Resolution;
  /** A style reference's global input (styleInput), instead of the image's own. */
  style?: Float32Array;
  /** Called as each stage starts. */
  onStage?: (stage: Stage) => void;
}

/** The global path's input of an image: L / 100 at S x S (a style reference's too). */
export function globalInput(img: RgbImage, S: number, L = lightness(img.rgb)): Promise<Float32Array> {
  return rescaledLightness(img.rgb, L, img.width, img.height, S, S, resizeRgb);
}

/**
 * The colorized image: width x height sRGB, L the input's.
 * @throws RangeError for pixels that disagree with the size; the runner's errors.
 */
export async function colorizeRgb(img: RgbImage, runner: Runner, options: PageColorizeOptions = {}): Promise<Uint8Array> {
  const { rgb, width, height } = img;
  const S = runner.globalSize;
  options.onStage?.('prepare');
  const L = lightness(rgb);
  const p = processingSize(width, height, resolveResolution(options.resolution ?? 'auto', runner.trainingScale));
  const local = await rescaledLightness(rgb, L, width, height, p.width, p.height, resizeRgb);
  const global = options.style ?? (await globalInput(img, S, L));
  if (global.length !== S * S) throw new RangeError(`Expected a global input of ${S}x${S} values but received ${global.length}`);
  options.onStage?.('network');
  const r = await runner.run(local, global, { batch: 1, height: p.height, width: p.width, sharedGlobal: options.style !== undefined });
  options.onStage?.('compose');
  return composeRgb(L, width, height, r.ab, r.abWidth, r.abHeight);
}
