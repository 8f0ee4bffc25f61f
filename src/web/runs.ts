/**
 * The runs view (runs.html): every run under --runs with its config, engine and step, live curves (loss,
 * validation PSNR, throughput, data stall) fed by the server's events (/api/events: the runs' summaries, and each
 * run's metrics.jsonl lines as they are written), the sample grids of its checkpoints, and a link to colorize
 * with its model. EventSource reconnects by itself; the server then sends everything again.
 */
import type { MetricRecord, MetricsDelta, RunSummary } from './api.js';
import { byId, h } from './dom.js';
import { lineChart } from './chart.js';

interface Card {
  root: HTMLElement;
  step: HTMLElement;
  facts: HTMLElement;
  charts: HTMLElement;
  samples: HTMLElement;
  link: HTMLAnchorElement;
}

const list = byId('runs');
const status = byId('status');
const metrics = new Map<string, MetricRecord[]>();
const cards = new Map<string, Card>();
const summaries = new Map<string, RunSummary>();
const dirty = new Set<string>();

const runUrl = (name: string, file: string) => `runs/${encodeURIComponent(name)}/${file.split('/').map(encodeURIComponent).join('/')}`;

function card(name: string): Card {
  let c = cards.get(name);
  if (c) return c;
  const step = h('span', { class: 'step', 'data-run': name });
  const link = h('a', { class: 'use', href: `./?run=${encodeURIComponent(name)}` }, 'Colorize with this model');
  const facts = h('dl', { class: 'facts' });
  const charts = h('div', { class: 'charts' });
  const samples = h('div', { class: 'samples' });
  const root = h('article', { class: 'run', 'data-run': name }, h('h2', {}, name, ' ', step), link, facts, charts, h('h3', {}, 'Samples'), samples);
  c = { root, step, facts, charts, samples, link };
  cards.set(name, c);
  list.append(root);
  return c;
}

function fact(dl: HTMLElement, term: string, value: string | number | undefined): void {
  if (value === undefined || value === '') return;
  dl.append(h('dt', {}, term), h('dd', {}, String(value)));
}

function drawSummary(r: RunSummary): void {
  const c = card(r.name);
  c.facts.replaceChildren();
  const cfg = r.config ?? {};
  fact(c.facts, 'engine', [r.engine, r.backend].filter(Boolean).join(' / '));
  fact(c.facts, 'config', cfg.name);
  if (cfg.inputSize !== undefined) fact(c.facts, 'model', `${cfg.inputSize} px, width ${cfg.width}, ${cfg.numClasses ?? 0} classes`);
  fact(c.facts, 'batch', cfg.batch);
  fact(c.facts, 'optimizer', cfg.optimizer && `${cfg.optimizer}, lr ${cfg.lr}`);
  fact(c.facts, 'checkpoint', r.step !== undefined ? `step ${r.step}${r.time ? `, ${new Date(r.time).toLocaleString()}` : ''}` : undefined);
  fact(c.facts, 'note', r.note);
  c.link.hidden = !r.hasModel;
  const shown = new Set(Array.from(c.samples.querySelectorAll('img'), (i) => i.dataset['file']));
  if (r.samples.length !== shown.size || r.samples.some((f) => !shown.has(f))) {
    c.samples.replaceChildren(
      ...r.samples.map((f) =>
        h('figure', {}, h('figcaption', {}, `${f.replace(/\.png$/, '')}: grayscale input | prediction | original`), h('img', { src: runUrl(r.name, `samples/${f}`), alt: `${r.name} samples at ${f}`, loading: 'lazy', 'data-file': f })),
      ),
    );
    if (r.samples.length === 0) c.samples.append(h('p', {}, 'No samples yet.'));
  }
  drawStep(r.name);
}

function drawStep(name: string): void {
  const c = card(name);
  const r = summaries.get(name);
  const lines = metrics.get(name) ?? [];
  let step = r?.step ?? 0;
  for (const m of lines) if (m.type !== 'val' && m.step > step) step = m.step;
  c.step.dataset['step'] = String(step);
  c.step.textContent = r?.steps ? `step ${step} of ${r.steps}` : `step ${step}`;
}

function drawCharts(name: string): void {
  const lines = metrics.get(name) ?? [];
  const steps = lines.filter((m) => m.type !== 'val');
  const val = lines.filter((m) => m.type === 'val');
  const xy = (rows: MetricRecord[], k: keyof MetricRecord) => rows.map((m) => [m.step, Number(m[k] ?? NaN)] as [number, number]);
  card(name).charts.replaceChildren(
    lineChart('Training loss', [
      { name: 'loss', cls: 's1', points: xy(steps, 'loss') },
      { name: 'mse', cls: 's2', points: xy(steps, 'mse') },
      { name: 'validation', cls: 's3', points: xy(val, 'loss') },
    ], { yMin: 0 }),
    lineChart('Validation PSNR (dB)', [
      { name: 'prediction', cls: 's3', points: xy(val, 'psnr') },
      { name: 'grayscale', cls: 's4', points: xy(val, 'psnr_gray') },
    ]),
    lineChart('Throughput (images/s)', [{ name: 'img/s', cls: 's5', points: xy(steps, 'img_per_s') }], { yMin: 0 }),
    lineChart('Data stall', [{ name: 'waiting for data', cls: 's6', points: xy(steps, 'data_stall') }], { yMin: 0, yMax: 1, percent: true }),
  );
  drawStep(name);
}

/** Redraws the charts of the runs that changed, once per frame at most. */
function schedule(name: string): void {
  if (dirty.size === 0) requestAnimationFrame(() => {
    for (const n of dirty) drawCharts(n);
    dirty.clear();
  });
  dirty.add(name);
}

const events = new EventSource('api/events');
events.addEventListener('open', () => {
  status.textContent = 'Live: the page follows the runs as they train.';
  document.body.dataset['live'] = 'true';
});
events.addEventListener('error', () => {
  status.textContent = 'Disconnected from pipe serve; reconnecting…';
  document.body.dataset['live'] = 'false';
});
events.addEventListener('runs', (e) => {
  const runs = JSON.parse((e as MessageEvent<string>).data) as RunSummary[];
  const names = new Set(runs.map((r) => r.name));
  for (const [n, c] of cards) if (!names.has(n)) {
    c.root.remove();
    cards.delete(n);
    summaries.delete(n);
    metrics.delete(n);
  }
  for (const r of runs) {
    summaries.set(r.name, r);
    drawSummary(r);
    if (!metrics.has(r.name)) schedule(r.name);
  }
  if (runs.length === 0) list.replaceChildren(h('p', {}, 'No runs yet: pipe train --out runs/NAME writes one here.'));
  else list.querySelector(':scope > p')?.remove();
});
events.addEventListener('metrics', (e) => {
  const d = JSON.parse((e as MessageEvent<string>).data) as MetricsDelta;
  let held = metrics.get(d.run);
  if (d.reset || !held) metrics.set(d.run, (held = []));
  for (const m of d.lines) held.push(m);
  schedule(d.run);
});
