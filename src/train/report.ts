/**
 * runs/NAME/report.html: loss, PSNR and data-stall curves as inline SVG and, for each checkpoint, a grid of
 * validation images (grayscale input | prediction | original) stored beside it as PNG. Self-contained: no
 * scripts, no network; opens from the file system.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import sharp, { type OverlayOptions } from 'sharp';
import { writeFileAtomic } from '../core/atomic.js';

export interface StepMetric {
  step: number;
  epoch?: number;
  loss: number;
  mse?: number;
  ce?: number;
  img_per_s?: number;
  data_stall?: number;
  backend?: string;
}

export interface ValMetric {
  type: 'val';
  step: number;
  loss: number;
  psnr: number;
  psnr_gray?: number;
}

export interface RgbImage {
  width: number;
  height: number;
  rgb: Uint8Array;
}

/** Reads runs/NAME/metrics.jsonl (missing file: empty). Lines that do not parse (a killed write) are skipped. */
export async function readMetrics(runDir: string): Promise<{ steps: StepMetric[]; val: ValMetric[] }> {
  let text = '';
  try {
    text = await fsp.readFile(join(runDir, 'metrics.jsonl'), 'utf8');
  } catch {
    return { steps: [], val: [] };
  }
  const steps: StepMetric[] = [];
  const val: ValMetric[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const m = JSON.parse(line);
      if (m.type === 'val') val.push(m);
      else if (typeof m.step === 'number') steps.push(m);
    } catch {
      // a partial last line from a killed run
    }
  }
  return { steps, val };
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}

/** An SVG line chart of one or more series over x. */
export function svgChart(title: string, series: { name: string; color: string; points: [number, number][] }[], opts: { yMin?: number; yMax?: number; percent?: boolean } = {}): string {
  const W = 640, H = 240, L = 56, R = 12, T = 28, B = 32;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (all.length === 0) return `<figure><figcaption>${esc(title)}: no data yet</figcaption></figure>`;
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
  let y0 = opts.yMin ?? Math.min(...ys), y1 = opts.yMax ?? Math.max(...ys);
  if (y1 === y0) { y1 = y0 + 1; }
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const fmt = (v: number) => (opts.percent ? `${Math.round(v * 100)}%` : Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => y0 + f * (y1 - y0));
  const grid = ticks.map((v) => `<line x1="${L}" x2="${W - R}" y1="${sy(v)}" y2="${sy(v)}" stroke="#ddd"/><text x="${L - 6}" y="${sy(v) + 4}" text-anchor="end" font-size="11">${fmt(v)}</text>`).join('');
  const lines = series.map((s) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).map(([x, y]) => `${sx(x).toFixed(1)},${sy(Math.max(y0, Math.min(y1, y))).toFixed(1)}`).join(' ');
    return `<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${pts}"/>`;
  }).join('');
  const legend = series.map((s, i) => `<text x="${L + 8 + i * 150}" y="18" font-size="12" fill="${s.color}">${esc(s.name)}</text>`).join('');
  return `<figure><figcaption>${esc(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">
<rect width="${W}" height="${H}" fill="#fff"/>${grid}${lines}${legend}
<text x="${W - R}" y="${H - 8}" text-anchor="end" font-size="11">step ${x1}</text><text x="${L}" y="${H - 8}" font-size="11">step ${x0}</text></svg></figure>`;
}

/** Composes rows of images (e.g. gray | prediction | original) into one PNG grid. */
export async function makeGrid(rows: RgbImage[][], cell = 128, gap = 4): Promise<Buffer> {
  const cols = Math.max(...rows.map((r) => r.length));
  const width = cols * cell + (cols + 1) * gap;
  const height = rows.length * cell + (rows.length + 1) * gap;
  const composites: OverlayOptions[] = [];
  for (let r = 0; r < rows.length; r++) {
    for (let c = 0; c < rows[r]!.length; c++) {
      const img = rows[r]![c]!;
      const input = await sharp(Buffer.from(img.rgb.buffer, img.rgb.byteOffset, img.rgb.byteLength), { raw: { width: img.width, height: img.height, channels: 3 } })
        .resize(cell, cell, { fit: 'contain', background: '#ffffff', kernel: 'nearest' })
        .png()
        .toBuffer();
      composites.push({ input, left: gap + c * (cell + gap), top: gap + r * (cell + gap) });
    }
  }
  return sharp({ create: { width, height, channels: 3, background: '#ffffff' } }).composite(composites).png().toBuffer();
}

export interface ReportOptions {
  runDir: string;
  title: string;
  /** Extra HTML (e.g. an evaluation table) placed after the curves. */
  extraHtml?: string;
  /** Column labels for the sample grids. */
  gridColumns?: string[];
}

/** Writes (atomically) runs/NAME/report.html from metrics.jsonl and the grids in samples/. */
export async function writeReport(o: ReportOptions): Promise<string> {
  const { steps, val } = await readMetrics(o.runDir);
  let grids: string[] = [];
  try {
    grids = (await fsp.readdir(join(o.runDir, 'samples'))).filter((f) => f.endsWith('.png')).sort().reverse();
  } catch {
    // none yet
  }
  const backend = steps.at(-1)?.backend ?? '';
  const charts = [
    svgChart('Training loss (MSE on normalized ab + alpha * cross-entropy)', [
      { name: 'loss', color: '#c0392b', points: steps.map((m) => [m.step, m.loss]) },
      { name: 'mse', color: '#2980b9', points: steps.filter((m) => m.mse !== undefined).map((m) => [m.step, m.mse!]) },
      ...(val.length ? [{ name: 'validation loss', color: '#27ae60', points: val.map((m) => [m.step, m.loss] as [number, number]) }] : []),
    ], { yMin: 0 }),
    val.length ? svgChart('Validation PSNR (dB, RGB) vs grayscale input', [
      { name: 'prediction', color: '#27ae60', points: val.map((m) => [m.step, m.psnr]) },
      ...(val.some((m) => m.psnr_gray !== undefined) ? [{ name: 'grayscale (ab = 0)', color: '#7f8c8d', points: val.map((m) => [m.step, m.psnr_gray ?? NaN] as [number, number]) }] : []),
    ]) : '',
    svgChart('Data stall (time waiting for data / step time)', [
      { name: 'data stall', color: '#8e44ad', points: steps.map((m) => [m.step, m.data_stall ?? NaN]) },
    ], { yMin: 0, yMax: 1, percent: true }),
    svgChart('Throughput (images/s)', [{ name: 'img/s', color: '#d35400', points: steps.map((m) => [m.step, m.img_per_s ?? NaN]) }], { yMin: 0 }),
  ].join('\n');
  const cols = (o.gridColumns ?? ['grayscale input', 'prediction', 'original']).map(esc).join(' | ');
  const gridHtml = grids.map((g) => `<figure><figcaption>${esc(g.replace(/\.png$/, ''))}: ${cols}</figcaption><img src="samples/${esc(g)}" alt="${esc(g)}"></figure>`).join('\n');
  const last = steps.at(-1);
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${esc(o.title)}</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px}figure{margin:12px 0}figcaption{font-weight:600;margin-bottom:4px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}.charts{display:flex;flex-wrap:wrap;gap:12px}</style></head><body>
<h1>${esc(o.title)}</h1>
<p>${last ? `step ${last.step}, loss ${last.loss.toFixed(5)}, ${last.img_per_s?.toFixed(1) ?? '?'} img/s${backend ? `, backend ${esc(backend)}` : ''}` : 'no steps yet'}; updated ${esc(new Date().toISOString())}</p>
<div class="charts">${charts}</div>
${o.extraHtml ?? ''}
<h2>Samples</h2>
${gridHtml || '<p>No samples yet.</p>'}
</body></html>`;
  const path = join(o.runDir, 'report.html');
  await writeFileAtomic(path, html);
  return path;
}
