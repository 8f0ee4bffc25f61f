/**
 * The runs under --runs, read as `pipe train` leaves them (src/train/checkpoint.ts): a run is a folder holding
 * state.json, metrics.jsonl or a model; its model is model/model.json (model/ a link to the newest checkpoint,
 * swapped atomically). Everything here reads while training writes: a file that is missing, half there or gone
 * between two reads (a checkpoint renamed into place, an old one removed) makes that part of the summary absent
 * with a note, never an error.
 */
import { promises as fsp } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { reasonOf } from '../core/errors.js';
import type { TrainingScale } from '../types.js';
import type { RunSummary } from '../web/api.js';
import { isInside } from './files.js';

/** A run: its name (folder name) and its folder. */
export interface RunRef {
  name: string;
  dir: string;
}

/** What a run's state.json holds that the views show (train/checkpoint.ts TrainState). */
interface StateJson {
  step?: number;
  engine?: string;
  backend?: string;
  time?: string;
  checkpoint?: string;
  config?: {
    name?: string;
    model?: { inputSize?: number; width?: number; numClasses?: number };
    train?: { batch?: number; steps?: number; optimizer?: string; lr?: number };
  };
}

/** A file's JSON, or why not (missing, half written). */
async function readJson<T>(path: string): Promise<{ value?: T; error?: string }> {
  try {
    return { value: JSON.parse(await fsp.readFile(path, 'utf8')) as T };
  } catch (err) {
    return { error: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : reasonOf(err) };
  }
}

const exists = (p: string) => fsp.stat(p).then(() => true, () => false);

/** The runs under `root`, by name; none when root does not exist. Hidden folders are left out. */
export async function listRuns(root: string): Promise<RunRef[]> {
  let names: string[];
  try {
    names = (await fsp.readdir(root, { withFileTypes: true })).filter((d) => d.isDirectory() && !d.name.startsWith('.')).map((d) => d.name);
  } catch {
    return [];
  }
  const runs: RunRef[] = [];
  for (const name of names.sort()) {
    const dir = join(root, name);
    const marks = await Promise.all(['state.json', 'metrics.jsonl', 'model', 'checkpoints'].map((f) => exists(join(dir, f))));
    if (marks.some(Boolean)) runs.push({ name, dir });
  }
  return runs;
}

/** A run's model as the page needs it: where its model.json is, a version that changes with it, and its shape. */
export interface RunModel {
  /** The real path of model.json (inside the run's folder). */
  modelJson: string;
  /** The checkpoint folder (relative to the run) and model.json's modification time. */
  version: string;
  inputSize?: number;
  trainingScale?: TrainingScale;
  step?: number;
}

/**
 * The run's current model (model/model.json, through the link), or null while it has none or it is being
 * replaced. A link out of the run's folder counts as none.
 */
export async function runModel(run: RunRef): Promise<RunModel | null> {
  try {
    const [realRun, modelJson] = await Promise.all([fsp.realpath(run.dir), fsp.realpath(join(run.dir, 'model', 'model.json'))]);
    if (!isInside(realRun, modelJson)) return null;
    const [stat, json] = await Promise.all([fsp.stat(modelJson), fsp.readFile(modelJson, 'utf8')]);
    const parsed = JSON.parse(json) as { colorpipe?: { config?: { inputSize?: unknown }; trainingScale?: TrainingScale } };
    const folder = relative(realRun, join(modelJson, '..')) || '.';
    const m: RunModel = { modelJson, version: `${folder}@${Math.floor(stat.mtimeMs)}` };
    const size = parsed.colorpipe?.config?.inputSize;
    if (typeof size === 'number') m.inputSize = size;
    if (parsed.colorpipe?.trainingScale) m.trainingScale = parsed.colorpipe.trainingScale;
    const step = checkpointStep(folder);
    if (step !== undefined) m.step = step;
    return m;
  } catch {
    return null;
  }
}

/** The step of a checkpoint folder (`checkpoints/step-00000100` -> 100), if it is one. */
export function checkpointStep(folder: string): number | undefined {
  const m = /^step-(\d+)$/.exec(basename(folder));
  return m ? Number(m[1]) : undefined;
}

/** The runs view's summary of a run. */
export async function summarize(run: RunRef): Promise<RunSummary> {
  const out: RunSummary = { name: run.name, samples: [], hasModel: false };
  const state = await readJson<StateJson>(join(run.dir, 'state.json'));
  const s = state.value;
  if (s && typeof s === 'object') {
    if (typeof s.step === 'number') out.step = s.step;
    out.engine = s.engine ?? 'tfjs';
    if (s.backend) out.backend = s.backend;
    if (s.time) out.time = s.time;
    const c = s.config;
    if (c) {
      if (typeof c.train?.steps === 'number') out.steps = c.train.steps;
      out.config = {
        name: c.name, inputSize: c.model?.inputSize, width: c.model?.width, numClasses: c.model?.numClasses,
        batch: c.train?.batch, optimizer: c.train?.optimizer, lr: c.train?.lr,
      };
    }
  } else if (state.error && state.error !== 'missing') {
    out.note = `state.json could not be read (${state.error})`;
  }
  try {
    out.samples = (await fsp.readdir(join(run.dir, 'samples'))).filter((f) => f.endsWith('.png') && !f.startsWith('.')).sort().reverse();
  } catch {
    // No samples yet.
  }
  out.hasModel = (await runModel(run)) !== null;
  return out;
}
