/** Line charts as SVG for the runs view: series over the step axis, redrawn whole on each update. */
import { s } from './dom.js';

export interface Series {
  name: string;
  /** A CSS class of style.css giving the line its colour. */
  cls: string;
  points: Array<[number, number]>;
}

export interface ChartOptions {
  yMin?: number;
  yMax?: number;
  /** Values in [0, 1] labelled as percentages. */
  percent?: boolean;
}

const W = 480;
const H = 200;
const PAD = { l: 52, r: 10, t: 26, b: 26 };

function label(v: number, percent: boolean): string {
  if (percent) return `${Math.round(v * 100)}%`;
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 1 ? v.toFixed(1) : v.toPrecision(2);
}

/** A chart with a title, four horizontal grid lines, the series as polylines and a legend. */
export function lineChart(title: string, series: Series[], o: ChartOptions = {}): SVGElement {
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title });
  svg.append(s('text', { x: PAD.l, y: 16, class: 'title' }, title));
  const pts = series.flatMap((x) => x.points).filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b));
  if (pts.length === 0) {
    svg.append(s('text', { x: W / 2, y: H / 2, class: 'empty', 'text-anchor': 'middle' }, 'no data yet'));
    return svg;
  }
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const [x, y] of pts) {
    x0 = Math.min(x0, x);
    x1 = Math.max(x1, x);
    y0 = Math.min(y0, y);
    y1 = Math.max(y1, y);
  }
  y0 = o.yMin ?? y0;
  y1 = o.yMax ?? y1;
  if (x1 === x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  const sx = (x: number) => PAD.l + ((x - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
  const sy = (y: number) => PAD.t + (1 - (y - y0) / (y1 - y0)) * (H - PAD.t - PAD.b);
  for (let i = 0; i <= 3; i++) {
    const v = y0 + ((y1 - y0) * i) / 3;
    svg.append(s('line', { x1: PAD.l, x2: W - PAD.r, y1: sy(v), y2: sy(v), class: 'grid' }));
    svg.append(s('text', { x: PAD.l - 6, y: sy(v) + 4, 'text-anchor': 'end', class: 'tick' }, label(v, o.percent ?? false)));
  }
  svg.append(s('text', { x: PAD.l, y: H - 6, class: 'tick' }, String(x0)));
  svg.append(s('text', { x: W - PAD.r, y: H - 6, 'text-anchor': 'end', class: 'tick' }, `step ${x1}`));
  let lx = W - PAD.r;
  for (const x of [...series].reverse()) {
    const xy = x.points.filter(([a, b]) => Number.isFinite(a) && Number.isFinite(b)).map(([a, b]) => [sx(a), sy(b)] as const);
    if (xy.length === 0) continue;
    svg.append(s('polyline', { points: xy.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' '), class: `series ${x.cls}` }));
    // Sparse series (a validation per checkpoint) get a mark per point: one point draws no line.
    if (xy.length < 30) for (const [a, b] of xy) svg.append(s('circle', { cx: a.toFixed(1), cy: b.toFixed(1), r: 2.5, class: `mark ${x.cls}` }));
    const t = s('text', { x: lx, y: 16, 'text-anchor': 'end', class: `legend ${x.cls}` }, x.name);
    svg.append(t);
    lx -= 8 + 7 * x.name.length;
  }
  return svg;
}
