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
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join, resolve } from 'node:path';
import type { NamedTensor } from '@tensorflow/tfjs-core/dist/tensor_types.js';
import { io } from '@tensorflow/tfjs-core';
import type { Config } from '../config.js';
import { cleanTemps, exists, symlinkAtomic, withPath, writeDirAtomic, writeFileAtomic } from '../core/atomic.js';
import { ColorpipeError, printable, reasonOf } from '../core/errors.js';
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
  /** Size and SHA-256 of the checkpoint's files, verified on resume (absent in checkpoints made before). */
  files?: Record<string, { bytes: number; sha256: string }>;
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
  let stateJSON = '';
  // A write's ENOSPC names no file: each write names its own (writeDirAtomic turns the temp directory's name
  // into the checkpoint's, and names the checkpoint itself for the model's two files).
  const named = async (file: string, write: () => Promise<void>) => {
    try {
      await write();
    } catch (err) {
      throw withPath(err, file);
    }
  };
  await writeDirAtomic(target, async (tmp) => {
    await o.model.save(fileSaveHandler(tmp, o.modelMeta));
    const optimizer = join(tmp, 'optimizer.bin');
    await named(optimizer, () => fsp.writeFile(optimizer, new Uint8Array(io.CompositeArrayBuffer.join(encoded.data))));
    // Sizes and checksums of what was just written: a resume verifies them (a truncated or damaged file
    // sends it to an older checkpoint instead of a stack trace).
    state.files = {};
    for (const f of CHECKPOINT_FILES) state.files[f] = await fileDigest(join(tmp, f));
    stateJSON = JSON.stringify(state, null, 1);
    const stateFile = join(tmp, 'state.json');
    await named(stateFile, () => fsp.writeFile(stateFile, stateJSON));
  });
  intact.add(target);
  await symlinkAtomic(rel, join(runDir, 'model'));
  await writeFileAtomic(join(runDir, 'state.json'), stateJSON);
  await pruneCheckpoints(runDir, o.keep ?? 2);
  return target;
}

/**
 * Checkpoint directories known intact in this process: written by saveCheckpoint, or verified by
 * latestCheckpoint or pruneCheckpoints (which forget one found damaged). Retention consults it so that it
 * re-reads (hashes) only checkpoints it has not seen, such as the damaged one a resume fell back from.
 */
const intact = new Set<string>();

async function isIntact(dir: string): Promise<boolean> {
  if (intact.has(dir)) return true;
  if ('reason' in (await verify(dir))) return false;
  intact.add(dir);
  return true;
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

/**
 * Retention: keeps the checkpoint state.json names and the newest intact ones up to `keep` in all; removes the
 * rest, damaged ones included. A damaged checkpoint (one a resume fell back from, see latestCheckpoint) never
 * counts toward `keep`, so it is never kept in place of an older intact one.
 */
async function pruneCheckpoints(runDir: string, keep: number): Promise<void> {
  await cleanTemps(join(runDir, 'checkpoints'));
  const current = (JSON.parse(await fsp.readFile(join(runDir, 'state.json'), 'utf8')) as TrainState).checkpoint;
  const kept = new Set(current ? [current] : []);
  for (const n of (await listCheckpoints(runDir)).reverse()) {
    const rel = join('checkpoints', n);
    if (kept.size >= keep) break;
    if (!kept.has(rel) && (await isIntact(join(runDir, rel)))) kept.add(rel);
  }
  const doomed = (await listCheckpoints(runDir)).filter((n) => !kept.has(join('checkpoints', n)));
  await Promise.all(doomed.map((n) => fsp.rm(join(runDir, 'checkpoints', n), { recursive: true, force: true })));
}

export interface LoadedCheckpoint {
  dir: string;
  state: TrainState;
  /** Optimizer weights as raw data + specs; turn into tensors with `optimizerTensors`. */
  optimizerData: ArrayBuffer;
}

/** The files a checkpoint holds besides state.json, verified on load. */
const CHECKPOINT_FILES = ['model.json', 'weights.bin', 'optimizer.bin'] as const;

async function fileDigest(file: string): Promise<{ bytes: number; sha256: string }> {
  const b = await fsp.readFile(file);
  return { bytes: b.byteLength, sha256: createHash('sha256').update(b).digest('hex') };
}

/** Why a checkpoint's state.json cannot be resumed from, or null when its shape is sound. */
function badState(s: unknown): string | null {
  const t = s as Partial<TrainState> | null;
  if (t === null || typeof t !== 'object') return 'state.json is not an object';
  if (!Number.isInteger(t.step) || (t.step as number) < 0) return `state.json: step ${JSON.stringify(t.step)} is not a non-negative integer`;
  if (!Number.isInteger(t.epoch) || (t.epoch as number) < 0) return `state.json: epoch ${JSON.stringify(t.epoch)} is not a non-negative integer`;
  if (t.config === null || typeof t.config !== 'object' || typeof t.config.model !== 'object') return 'state.json: no config';
  if (!t.optimizer || !Array.isArray(t.optimizer.specs)) return 'state.json: no optimizer specs';
  return null;
}

/** Verifies a checkpoint directory: its state and, when recorded (every checkpoint since they were), its files. */
async function verify(dir: string): Promise<{ state: TrainState } | { reason: string }> {
  let state: TrainState;
  try {
    state = JSON.parse(await fsp.readFile(join(dir, 'state.json'), 'utf8')) as TrainState;
  } catch (err) {
    return { reason: `state.json: ${(err as Error).message.split('\n')[0]}` };
  }
  const bad = badState(state);
  if (bad) return { reason: bad };
  for (const f of CHECKPOINT_FILES) {
    let got: { bytes: number; sha256: string };
    try {
      got = await fileDigest(join(dir, f));
    } catch {
      return { reason: `${f} is missing` };
    }
    const want = state.files?.[f];
    if (want && want.bytes !== got.bytes) return { reason: `${f} has ${got.bytes} bytes, ${want.bytes} were written` };
    if (want && want.sha256 !== got.sha256) return { reason: `${f} does not match the checksum written with it` };
  }
  return { state };
}

/**
 * The newest intact checkpoint of a run, or null when it has none. Each candidate (the one state.json names,
 * then the checkpoint directories newest first) is verified; a damaged one is passed to `onDamaged` (default:
 * one warning line on stderr) and the next older one is tried. A run-level state.json that cannot be used
 * (not JSON, a bad step, no checkpoint named, or one that is gone) is passed to `onStateIgnored` with the
 * checkpoint used instead (null: none), once the search is over (default: one warning line naming the file).
 * @throws ColorpipeError 'ERR_CHECKPOINT' when checkpoints exist but none is intact (starting over silently
 *   would throw the run away).
 */
export async function latestCheckpoint(
  runDir: string,
  onDamaged: (dir: string, reason: string) => void = (dir, reason) =>
    process.stderr.write(`colorpipe: checkpoint ${printable(dir)} is damaged (${printable(reason)}): trying an older one\n`),
  onStateIgnored: (file: string, reason: string, used: string | null) => void = (file, reason, used) =>
    process.stderr.write(
      `colorpipe: ${printable(file)} is damaged (${printable(reason)}): ignored; ` +
        `${used ? `resuming from the newest intact checkpoint, ${printable(used)}` : 'no checkpoint to resume from'}\n`,
    ),
): Promise<LoadedCheckpoint | null> {
  runDir = resolve(runDir);
  const stateFile = join(runDir, 'state.json');
  const candidates: string[] = [];
  let ignored: string | null = null;
  try {
    const named = runStateCheckpoint(JSON.parse(await fsp.readFile(stateFile, 'utf8')));
    if (typeof named !== 'string') ignored = named.reason;
    else if (!(await exists(join(runDir, named)))) ignored = `it names ${named}, which is missing`;
    else candidates.push(named);
  } catch (err) {
    // None: a fresh run, or one killed before its first commit; the checkpoint directories decide.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') ignored = reasonOf(err);
  }
  for (const n of (await listCheckpoints(runDir)).reverse()) candidates.push(join('checkpoints', n));
  const tried = new Set<string>();
  let damaged = 0;
  let found: LoadedCheckpoint | null = null;
  for (const rel of candidates) {
    const dir = join(runDir, rel);
    if (tried.has(dir)) continue;
    tried.add(dir);
    if (!(await exists(dir))) continue;
    const v = await verify(dir);
    if ('reason' in v) {
      damaged++;
      intact.delete(dir);
      onDamaged(dir, v.reason);
      continue;
    }
    intact.add(dir);
    const b = await fsp.readFile(join(dir, 'optimizer.bin'));
    found = { dir, state: v.state, optimizerData: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer };
    break;
  }
  if (ignored !== null) onStateIgnored(stateFile, ignored, found?.dir ?? null);
  if (found === null && damaged > 0) {
    throw new ColorpipeError('ERR_CHECKPOINT', `every checkpoint in ${runDir} is damaged (${damaged}); nothing to resume from`);
  }
  return found;
}

/** The checkpoint a run-level state.json names (relative to the run), or why it cannot be used. */
function runStateCheckpoint(s: unknown): string | { reason: string } {
  const bad = badState(s);
  if (bad !== null) return { reason: bad.replace(/^state\.json(: | is )/, '') };
  const rel = (s as TrainState).checkpoint;
  if (typeof rel !== 'string' || !/^checkpoints[\\/]step-\d{8}$/.test(rel)) return { reason: `checkpoint ${JSON.stringify(rel)} is not a checkpoint directory` };
  return rel;
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
