/**
 * Which training engine a run uses (`--engine tfjs|torch|auto`) and its setup: tfjs (src/tfjs/, this thread)
 * or PyTorch (src/torch/, a worker process per device).
 */
import type { Config } from '../config.js';
import { oneOf } from '../core/validate.js';
import { setupTfjs, type BackendChoice, type TfjsBackend } from '../tfjs/backend.js';
import { tfjsTrainEngine } from '../tfjs/train-engine.js';
import type { TrainEngine } from './engine.js';

export type EngineChoice = 'auto' | 'tfjs' | 'torch';
export const ENGINES: readonly EngineChoice[] = ['auto', 'tfjs', 'torch'];

export interface CreateEngineOptions {
  engine: EngineChoice;
  config: Config;
  /** tfjs's backend. */
  backend?: BackendChoice;
  /** A tfjs backend already set up (used instead of setting one up). */
  tfjsBackend?: TfjsBackend;
  /** tfjs webgpu: accept a software adapter. */
  softwareGpu?: boolean;
  /** tfjs wasm threads. */
  threads?: number;
}

/**
 * The training engine asked for, set up for `config`.
 * @throws InvalidOptionError for an unknown engine; EngineUnavailableError when it cannot run here.
 */
export async function createTrainEngine(o: CreateEngineOptions): Promise<TrainEngine> {
  oneOf(o.engine, 'options.engine', ENGINES);
  const backend = o.tfjsBackend ?? await setupTfjs({
    backend: o.backend ?? 'auto',
    ...(o.softwareGpu ? { softwareGpu: true } : {}),
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
  });
  return tfjsTrainEngine(backend, o.config);
}
