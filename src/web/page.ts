/**
 * The colorize view (index.html): the models on offer (models.json: `pipe serve`'s runs, or the one model of a
 * `pipe export --web` folder), photos dropped or picked (several at once), each colorized by the worker
 * (worker.ts) with its progress, shown in a before/after comparison (slider.ts) with the provider and the time it
 * took, and a download at full size. Changing the model, the provider or the style reference colorizes the photos
 * again.
 */
import type { ExecutionChoice, FromWorker, ModelEntry, ModelList, ToWorker } from './api.js';
import { byId, getJson, h, seconds } from './dom.js';
import { beforeAfter } from './slider.js';

interface Item {
  id: number;
  file: File;
  li: HTMLLIElement;
  progress: HTMLProgressElement;
  meta: HTMLElement;
  before: string;
  after: string | null;
}

const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'colorpipe-colorize' });
const send = (m: ToWorker) => worker.postMessage(m);

const modelSelect = byId<HTMLSelectElement>('model');
const epSelect = byId<HTMLSelectElement>('ep');
const files = byId<HTMLInputElement>('files');
const styleInput = byId<HTMLInputElement>('style');
const styleClear = byId<HTMLButtonElement>('style-clear');
const drop = byId('drop');
const results = byId<HTMLOListElement>('results');
const status = byId('status');

const items = new Map<number, Item>();
let nextId = 1;
let models: ModelEntry[] = [];

/** The model for the selection, its url made absolute (the worker resolves urls against its own script). */
function selectedModel(): ModelEntry | undefined {
  const m = models.find((x) => x.name === modelSelect.value);
  return m && { ...m, url: new URL(m.url, document.baseURI).href };
}

function loadModel(): void {
  const model = selectedModel();
  if (!model) return;
  status.textContent = `Loading ${model.name}…`;
  document.body.dataset['model'] = 'loading';
  send({ type: 'model', model, ep: epSelect.value as ExecutionChoice });
}

function colorize(item: Item): void {
  item.li.dataset['state'] = 'working';
  item.progress.value = 0;
  item.progress.hidden = false;
  send({ type: 'colorize', id: item.id, file: item.file, name: item.file.name });
}

function rerunAll(): void {
  for (const item of items.values()) colorize(item);
}

function addFiles(list: FileList | File[]): void {
  for (const file of Array.from(list)) {
    if (!file.type.startsWith('image/')) {
      status.textContent = `${file.name} is not an image`;
      continue;
    }
    const id = nextId++;
    const before = URL.createObjectURL(file);
    const progress = h('progress', { max: 1, value: 0, 'aria-label': `Colorizing ${file.name}` });
    const meta = h('p', { class: 'meta' }, `${file.name}: waiting`);
    const li = h('li', { class: 'result', 'data-id': id, 'data-state': 'waiting' }, h('h2', {}, file.name), progress, meta);
    results.prepend(li);
    const item: Item = { id, file, li, progress, meta, before, after: null };
    items.set(id, item);
    colorize(item);
  }
}

function showResult(item: Item, m: Extract<FromWorker, { type: 'result' }>): void {
  if (item.after) URL.revokeObjectURL(item.after);
  item.after = URL.createObjectURL(m.blob);
  const name = item.file.name;
  const before = h('img', { src: item.before, alt: `${name}, original`, class: 'before', draggable: 'false' });
  const after = h('img', { src: item.after, alt: `${name}, colorized`, class: 'after', draggable: 'false' });
  const stem = name.replace(/\.[^.]+$/, '');
  const ext = m.blob.type === 'image/jpeg' ? 'jpg' : m.blob.type.split('/')[1] ?? 'png';
  const download = h('a', { class: 'download', href: item.after, download: `${stem}-colorized.${ext}` }, `Download (${m.width} × ${m.height})`);
  item.li.querySelector('.compare')?.remove();
  item.li.querySelector('.download')?.remove();
  item.progress.hidden = true;
  item.meta.textContent = `${name}: ${m.width} × ${m.height}, ${m.backend}, ${seconds(m.timings.total)} (network ${seconds(m.timings.network)})`;
  item.li.append(beforeAfter(before, after, name), download);
  item.li.dataset['state'] = 'done';
  item.li.dataset['backend'] = m.backend;
  item.li.dataset['timings'] = JSON.stringify(m.timings);
}

worker.onmessage = (e: MessageEvent<FromWorker>) => {
  const m = e.data;
  switch (m.type) {
    case 'model':
      status.textContent = `${m.name} on ${m.backend}: loaded in ${seconds(m.loadMs)}${m.cached ? ' (from the browser’s cache)' : ''}`;
      document.body.dataset['model'] = 'ready';
      document.body.dataset['backend'] = m.backend;
      return;
    case 'style':
      if (!m.ok) status.textContent = m.message ?? 'The style reference could not be read';
      rerunAll();
      return;
    case 'progress': {
      const item = items.get(m.id);
      if (!item) return;
      item.progress.value = m.fraction;
      item.meta.textContent = `${item.file.name}: ${m.stage}…`;
      return;
    }
    case 'result': {
      const item = items.get(m.id);
      if (item) showResult(item, m);
      return;
    }
    case 'error': {
      const item = m.id === undefined ? undefined : items.get(m.id);
      if (item) {
        item.li.dataset['state'] = 'error';
        item.progress.hidden = true;
        item.meta.textContent = m.message;
      } else {
        status.textContent = m.message;
        document.body.dataset['model'] = 'error';
      }
    }
  }
};
worker.onerror = (e) => {
  status.textContent = `The colorize worker failed: ${e.message}`;
};

files.addEventListener('change', () => {
  if (files.files) addFiles(files.files);
  files.value = '';
});
styleInput.addEventListener('change', () => {
  const f = styleInput.files?.[0] ?? null;
  styleClear.hidden = f === null;
  send({ type: 'style', file: f });
});
styleClear.addEventListener('click', () => {
  styleInput.value = '';
  styleClear.hidden = true;
  send({ type: 'style', file: null });
});
modelSelect.addEventListener('change', () => {
  const u = new URL(location.href);
  u.searchParams.set('run', modelSelect.value);
  history.replaceState(null, '', u);
  loadModel();
  rerunAll();
});
epSelect.addEventListener('change', () => {
  loadModel();
  rerunAll();
});
for (const ev of ['dragenter', 'dragover'] as const) {
  drop.addEventListener(ev, (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
}
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  if (e.dataTransfer?.files) addFiles(e.dataTransfer.files);
});

async function start(): Promise<void> {
  const list = await getJson<ModelList>('models.json');
  models = list.models;
  if (list.mode === 'static') byId('runs-link').hidden = true;
  const asked = new URL(location.href).searchParams.get('run');
  const ep = new URL(location.href).searchParams.get('ep');
  if (ep === 'webgpu' || ep === 'wasm') epSelect.value = ep;
  for (const m of models) modelSelect.append(h('option', { value: m.name }, m.step === undefined ? m.name : `${m.name} (step ${m.step})`));
  if (models.length === 0) {
    status.textContent = 'No trained model yet: train one with pipe train, then reload.';
    files.disabled = true;
    document.body.dataset['model'] = 'none';
    return;
  }
  modelSelect.value = models.some((m) => m.name === asked) ? asked! : (list.selected ?? models[0]!.name);
  loadModel();
}

start().catch((err: Error) => {
  status.textContent = `Could not read the models: ${err.message}`;
  document.body.dataset['model'] = 'error';
});
