/**
 * The colorize view's Web Worker: everything heavy happens here, so the page stays responsive on a 24-megapixel
 * photo. It fetches the model (kept in the browser's Cache API, keyed by its url and version), starts
 * onnxruntime-web on it (ort-runner.ts), decodes each dropped file (createImageBitmap: EXIF orientation applied,
 * ICC profiles converted to sRGB, as colorize's sharp decode does), colorizes it (colorize.ts) and encodes the
 * result at full size (the input's format where the browser can write it, else PNG). Messages are handled one at
 * a time, in order (api.ts ToWorker / FromWorker), so a model or style change applies to the photos after it.
 */
import type { FromWorker, ModelEntry, Timings, ToWorker } from './api.js';
import { colorizeRgb, globalInput, type RgbImage } from './colorize.js';
import { loadOrtRunner, type OrtRunner } from './ort-runner.js';

const scope = self as unknown as {
  postMessage(message: FromWorker): void;
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
};

const CACHE = 'colorpipe-models';
/** JPEG and WebP quality of a download: colorize's default (90). */
const QUALITY = 0.9;

let runner: OrtRunner | null = null;
let loadError: string | null = null;
let styleFile: Blob | null = null;
/** The style reference's global input, for the S it was made for. */
let style: { S: number; input: Float32Array } | null = null;

/** The cache key of a model: its url with the version, so that a new checkpoint is a new entry. */
function cacheKey(m: ModelEntry): string {
  const u = new URL(m.url);
  u.searchParams.set('colorpipe-version', m.version);
  return u.href;
}

/** The model's bytes: from the Cache API when there (older versions of the same url are dropped), else fetched. */
async function fetchModel(m: ModelEntry): Promise<{ bytes: Uint8Array; cached: boolean }> {
  // The Cache API exists in secure contexts only (https, localhost): elsewhere every load fetches.
  const cache = typeof caches === 'undefined' ? null : await caches.open(CACHE).catch(() => null);
  const key = cacheKey(m);
  const hit = await cache?.match(key);
  if (hit) return { bytes: new Uint8Array(await hit.arrayBuffer()), cached: true };
  const res = await fetch(m.url);
  if (!res.ok) throw new Error(`the server answered ${res.status} for ${m.name}'s model`);
  const buf = await res.arrayBuffer();
  if (cache) {
    const base = new URL(m.url);
    for (const old of await cache.keys()) {
      const u = new URL(old.url);
      u.searchParams.delete('colorpipe-version');
      if (u.href === base.href) await cache.delete(old);
    }
    await cache.put(key, new Response(buf, { headers: { 'Content-Type': 'application/octet-stream' } })).catch(() => undefined);
  }
  return { bytes: new Uint8Array(buf), cached: false };
}

/** A file's pixels: sRGB (interleaved) and alpha when any pixel is not opaque. */
async function decode(file: Blob): Promise<RgbImage & { alpha: Uint8Array | null }> {
  const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'default' });
  const { width, height } = bitmap;
  const ctx = new OffscreenCanvas(width, height).getContext('2d', { willReadFrequently: true })!;
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const n = width * height;
  const rgb = new Uint8Array(n * 3);
  let alpha: Uint8Array | null = null;
  for (let i = 0, j = 0, k = 0; i < n; i++, j += 3, k += 4) {
    rgb[j] = rgba[k]!;
    rgb[j + 1] = rgba[k + 1]!;
    rgb[j + 2] = rgba[k + 2]!;
    if (rgba[k + 3] !== 255) (alpha ??= new Uint8Array(n).fill(255))[i] = rgba[k + 3]!;
  }
  return { rgb, width, height, alpha };
}

/** The result as a file: the input's type where the browser writes it (JPEG without alpha), else PNG. */
function encode(rgb: Uint8Array, width: number, height: number, alpha: Uint8Array | null, type: string): Promise<Blob> {
  const n = width * height;
  const rgba = new Uint8ClampedArray(n * 4);
  for (let i = 0, j = 0, k = 0; i < n; i++, j += 3, k += 4) {
    rgba[k] = rgb[j]!;
    rgba[k + 1] = rgb[j + 1]!;
    rgba[k + 2] = rgb[j + 2]!;
    rgba[k + 3] = alpha ? alpha[i]! : 255;
  }
  const canvas = new OffscreenCanvas(width, height);
  canvas.getContext('2d')!.putImageData(new ImageData(rgba, width, height), 0, 0);
  const out = type === 'image/webp' || (type === 'image/jpeg' && !alpha) ? type : 'image/png';
  return canvas.convertToBlob({ type: out, quality: QUALITY });
}

async function loadModel(model: ModelEntry, ep: 'auto' | 'webgpu' | 'wasm'): Promise<void> {
  const old = runner;
  runner = null;
  loadError = null;
  await old?.release();
  const t0 = performance.now();
  try {
    const { bytes, cached } = await fetchModel(model);
    runner = await loadOrtRunner(bytes, { ep, inputSize: model.inputSize, ...(model.trainingScale ? { trainingScale: model.trainingScale } : {}) });
    scope.postMessage({ type: 'model', name: model.name, backend: runner.describe, loadMs: performance.now() - t0, cached });
  } catch (err) {
    loadError = `Could not load the model ${model.name}: ${(err as Error).message ?? String(err)}`;
    scope.postMessage({ type: 'error', message: loadError });
  }
}

/** The style reference's global input for the runner's S (made again when the model's S changes). */
async function styleInput(S: number): Promise<Float32Array | undefined> {
  if (!styleFile) return undefined;
  if (style?.S !== S) style = { S, input: await globalInput(await decode(styleFile), S) };
  return style.input;
}

async function colorize(id: number, file: Blob): Promise<void> {
  if (!runner) throw new Error(loadError ?? 'no model loaded');
  const r = runner;
  const t: Timings = { decode: 0, prepare: 0, network: 0, compose: 0, encode: 0, total: 0 };
  const t0 = performance.now();
  let stage: keyof Omit<Timings, 'total'> = 'decode';
  let since = t0;
  const enter = (next: typeof stage, fraction: number) => {
    const now = performance.now();
    t[stage] += now - since;
    stage = next;
    since = now;
    scope.postMessage({ type: 'progress', id, stage: next, fraction });
  };
  enter('decode', 0);
  const img = await decode(file);
  const fractions = { prepare: 0.2, network: 0.4, compose: 0.6 } as const;
  const styled = await styleInput(r.globalSize);
  const rgb = await colorizeRgb(img, r, { ...(styled ? { style: styled } : {}), onStage: (s) => enter(s, fractions[s]) });
  enter('encode', 0.8);
  const blob = await encode(rgb, img.width, img.height, img.alpha, file.type);
  enter('encode', 1);
  t.total = performance.now() - t0;
  scope.postMessage({ type: 'result', id, blob, width: img.width, height: img.height, backend: r.describe, timings: t });
}

async function handle(m: ToWorker): Promise<void> {
  switch (m.type) {
    case 'model':
      return loadModel(m.model, m.ep);
    case 'style':
      styleFile = m.file;
      style = null;
      try {
        if (runner) await styleInput(runner.globalSize);
        scope.postMessage({ type: 'style', ok: true });
      } catch (err) {
        styleFile = null;
        scope.postMessage({ type: 'style', ok: false, message: `Could not read the style reference: ${(err as Error).message}` });
      }
      return;
    case 'colorize':
      try {
        await colorize(m.id, m.file);
      } catch (err) {
        scope.postMessage({ type: 'error', id: m.id, message: `${m.name}: ${(err as Error).message ?? String(err)}` });
      }
  }
}

// One message at a time, in order.
let queue = Promise.resolve();
scope.onmessage = (e) => {
  queue = queue.then(() => handle(e.data));
};
