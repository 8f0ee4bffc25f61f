/**
 * What the server (src/serve/) and the page (src/web/) exchange, as plain JSON: the models the colorize view
 * offers (models.json, also written by `pipe export --web`), the runs view's summaries and live events, and the
 * messages between the colorize view and its Web Worker. Types only: the server imports them without loading
 * anything built for the browser.
 */
import type { TrainingScale } from '../types.js';

/** A model the colorize view can run: its ONNX export and what the page needs to size its inputs. */
export interface ModelEntry {
  /** The run's name (its folder under --runs) or the model's folder name. */
  name: string;
  /** The ONNX export, relative to the page. */
  url: string;
  /** Changes whenever the weights do: the browser's cached copy is keyed by url and version. */
  version: string;
  /** S: the global path's input side. */
  inputSize: number;
  /** How the model was trained (the local path's default scale follows it). */
  trainingScale?: TrainingScale;
  /** The checkpoint's step, when known. */
  step?: number;
}

/** models.json: the models on offer, and the one to select first. */
export interface ModelList {
  /** 'serve': `pipe serve` (the runs view exists); 'static': a folder from `pipe export --web`. */
  mode: 'serve' | 'static';
  models: ModelEntry[];
  selected?: string;
}

/** One run under --runs, as the runs view shows it. */
export interface RunSummary {
  name: string;
  /** tfjs or torch, and the backend or device that trained it. */
  engine?: string;
  backend?: string;
  /** The last checkpoint's step, and the steps the run was asked for. */
  step?: number;
  steps?: number;
  /** The config's name and the fields worth a glance (model shape, batch, optimizer, learning rate). */
  config?: { name?: string; inputSize?: number; width?: number; numClasses?: number; batch?: number; optimizer?: string; lr?: number };
  /** When the last checkpoint was written (ISO). */
  time?: string;
  /** Sample grids under samples/, newest first (file names). */
  samples: string[];
  /** Whether the run has a model the colorize view can use. */
  hasModel: boolean;
  /** Why part of the run could not be read (a file being written), when that happened. */
  note?: string;
}

/** One line of metrics.jsonl: a training step or (type 'val') a validation. */
export interface MetricRecord {
  type?: 'val';
  step: number;
  loss?: number;
  mse?: number;
  img_per_s?: number;
  data_stall?: number;
  psnr?: number;
  psnr_gray?: number;
}

/** Server-sent events of /api/events: `runs` (RunSummary[]) and `metrics` (MetricsDelta). */
export interface MetricsDelta {
  run: string;
  /** The lines replace what the page holds for the run (a new connection, a file rewritten) instead of adding. */
  reset: boolean;
  lines: MetricRecord[];
}

/** The execution provider asked for: WebGPU when the browser offers it (auto), or one of the two. */
export type ExecutionChoice = 'auto' | 'webgpu' | 'wasm';

/** Page -> worker. */
export type ToWorker =
  | { type: 'model'; model: ModelEntry; ep: ExecutionChoice }
  | { type: 'style'; file: Blob | null }
  | { type: 'colorize'; id: number; file: Blob; name: string };

/** What one colorize took, in milliseconds, stage by stage. */
export interface Timings {
  decode: number;
  prepare: number;
  network: number;
  compose: number;
  encode: number;
  total: number;
}

/** Worker -> page. */
export type FromWorker =
  | { type: 'model'; name: string; backend: string; loadMs: number; cached: boolean }
  | { type: 'style'; ok: boolean; message?: string }
  | { type: 'progress'; id: number; stage: keyof Omit<Timings, 'total'>; fraction: number }
  | { type: 'result'; id: number; blob: Blob; width: number; height: number; backend: string; timings: Timings }
  | { type: 'error'; id?: number; message: string };
