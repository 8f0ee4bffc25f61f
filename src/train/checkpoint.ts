/**
 * Checkpoints: the model in the tfjs Layers format plus the training state, written atomically.
 *
 * Layout of a run directory:
 *   checkpoints/step-00000100/  model.json, weights.bin, optimizer.bin, state.json   (each dir renamed into place whole)
 *   model -> checkpoints/step-00000100                                                (symlink, swapped atomically)
 *   state.json                                                                         (written last: the commit point)
 * A run killed at any moment leaves either the previous or the new checkpoint complete; `latestCheckpoint`
 * trusts state.json and falls back to the newest complete checkpoint directory.
 */
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import type { NamedTensor } from '@tensorflow/tfjs-core/dist/tensor_types.js';
import { io } from '@tensorflow/tfjs-core';
import type { Config } from '../config.js';
import { cleanTemps, exists, symlinkAtomic, writeDirAtomic, writeFileAtomic } from '../core/atomic.js';
import { ColorpipeError } from '../core/errors.js';
import { fileSaveHandler } from '../model/io.js';

export interface TensorSpec {
  name: string;
  shape: number[];
  dtype: string;
}

/** Everything needed to continue a run exactly where it stopped. */
export interface TrainState {
  version: 1;
  step: number;
  epoch: number;
  samplesSeen: number;
  seed: number;
  config: Config;
  backend: string;
  /** The data position: loader + shuffle state (opaque to this module). */
  data: unknown;
  /** Optimizer weight specs in `optimizer.bin`, in getWeights() order. */
  optimizer: { type: string; specs: TensorSpec[] };
  /** The checkpoint directory, relative to the run directory. */
  checkpoint?: string;
  time: string;
}

export interface SaveCheckpointOptions {
  runDir: string;
  /** The model to save (the inference model: what colorize loads). */
  model: { save(handler: io.IOHandler): Promise<io.SaveResult> };
  /** Top-level keys added to model.json (network.ts modelMetadata: the model config and training scale). */
  modelMeta?: Record<string, unknown>;
  state: Omit<TrainState, 'checkpoint' | 'optimizer' | 'time'> & { optimizer: { type: string } };
  optimizerWeights: NamedTensor[];
  /** Complete checkpoints kept (older ones removed after the new one is committed). */
  keep?: number;
}

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/** Saves a checkpoint atomically and points `model` and `state.json` at it. Returns its directory. */
export async function saveCheckpoint(o: SaveCheckpointOptions): Promise<string> {
  const runDir = resolve(o.runDir);
  const rel = join('checkpoints', checkpointName(o.state.step));
  const target = join(runDir, rel);
  const encoded = await io.encodeWeights(o.optimizerWeights.map((w) => ({ name: w.name, tensor: w.tensor })));
  const state: TrainState = {
    ...o.state,
    optimizer: { type: o.state.optimizer.type, specs: encoded.specs.map((s) => ({ name: s.name, shape: s.shape, dtype: s.dtype })) },
    checkpoint: rel,
    time: new Date().toISOString(),
  };
  const stateJSON = JSON.stringify(state, null, 1);
  await writeDirAtomic(target, async (tmp) => {
    await o.model.save(fileSaveHandler(tmp, o.modelMeta));
    await fsp.writeFile(join(tmp, 'optimizer.bin'), new Uint8Array(io.CompositeArrayBuffer.join(encoded.data)));
    await fsp.writeFile(join(tmp, 'state.json'), stateJSON);
  });
  await symlinkAtomic(rel, join(runDir, 'model'));
  await writeFileAtomic(join(runDir, 'state.json'), stateJSON);
  await pruneCheckpoints(runDir, o.keep ?? 2);
  return target;
}

async function listCheckpoints(runDir: string): Promise<string[]> {
  const dir = join(runDir, 'checkpoints');
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return [];
  }
  return names.filter((n) => /^step-\d{8}$/.test(n)).sort();
}

async function pruneCheckpoints(runDir: string, keep: number): Promise<void> {
  await cleanTemps(join(runDir, 'checkpoints'));
  const all = await listCheckpoints(runDir);
  const current = JSON.parse(await fsp.readFile(join(runDir, 'state.json'), 'utf8')) as TrainState;
  const doomed = all.slice(0, Math.max(0, all.length - keep)).filter((n) => join('checkpoints', n) !== current.checkpoint);
  await Promise.all(doomed.map((n) => fsp.rm(join(runDir, 'checkpoints', n), { recursive: true, force: true })));
}

export interface LoadedCheckpoint {
  dir: string;
  state: TrainState;
  /** Optimizer weights as raw data + specs; turn into tensors with `optimizerTensors`. */
  optimizerData: ArrayBuffer;
}

/** The newest complete checkpoint of a run, or null when it has none. */
export async function latestCheckpoint(runDir: string): Promise<LoadedCheckpoint | null> {
  runDir = resolve(runDir);
  const candidates: string[] = [];
  try {
    const s = JSON.parse(await fsp.readFile(join(runDir, 'state.json'), 'utf8')) as TrainState;
    if (s.checkpoint) candidates.push(s.checkpoint);
  } catch {
    // No or unreadable state.json: fall back to the checkpoint directories.
  }
  for (const n of (await listCheckpoints(runDir)).reverse()) candidates.push(join('checkpoints', n));
  for (const rel of candidates) {
    const dir = join(runDir, rel);
    try {
      const state = JSON.parse(await fsp.readFile(join(dir, 'state.json'), 'utf8')) as TrainState;
      if (!(await exists(join(dir, 'model.json')))) continue;
      const b = await fsp.readFile(join(dir, 'optimizer.bin'));
      return { dir, state, optimizerData: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer };
    } catch {
      continue;
    }
  }
  return null;
}

/** Decodes a checkpoint's optimizer weights into named tensors, in the order the optimizer expects. */
export function optimizerTensors(ck: LoadedCheckpoint): NamedTensor[] {
  const specs = ck.state.optimizer.specs as io.WeightsManifestEntry[];
  const map = io.decodeWeights(ck.optimizerData, specs);
  return specs.map((s) => {
    const t = map[s.name];
    if (!t) throw new ColorpipeError('ERR_CHECKPOINT', `optimizer weight ${s.name} missing in ${ck.dir}`);
    return { name: s.name, tensor: t };
  });
}
