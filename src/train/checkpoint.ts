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
import type { Config } from '../config.js';
import type { TrainingScale } from '../types.js';
import { cleanTemps, exists, symlinkAtomic, withPath, writeDirAtomic, writeFileAtomic } from '../core/atomic.js';
import { ColorpipeError, InvalidOptionError, fileErrorLine, printable, reasonOf } from '../core/errors.js';
import { RUN_RULE, insideFolder } from '../core/inside.js';
import { readModelFiles, writeModelFiles } from '../network/model-files.js';
import { modelTopology } from '../network/topology.js';
import type { NamedWeight } from '../network/weights.js';
import type { OptimizerState } from '../network/train-engine.js';

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
  /** The engine's backend or device that wrote it (wasm, webgpu, cuda, ...). */
  backend: string;
  /** The engine that wrote it (tfjs, torch, onnx); absent in checkpoints of runs before engines were named (tfjs). */
  engine?: string;
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
  /** The model's weights (the engine's, canonical order): model.json + weights.bin, what colorize loads. */
  weights: NamedWeight[];
  /** Recorded in model.json: colorize's default resolution follows it. */
  trainingScale?: TrainingScale;
  state: Omit<TrainState, 'checkpoint' | 'optimizer' | 'time'> & { optimizer: { type: string } };
  optimizer: OptimizerState;
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
  const encoded = encodeOptimizer(o.optimizer);
  const state: TrainState = {
    ...o.state,
    optimizer: { type: o.state.optimizer.type, specs: encoded.specs },
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
    const config = o.state.config.model;
    await writeModelFiles(tmp, { topology: modelTopology(config), weights: o.weights, config, ...(o.trainingScale ? { trainingScale: o.trainingScale } : {}) });
    const optimizer = join(tmp, 'optimizer.bin');
    await named(optimizer, () => fsp.writeFile(optimizer, encoded.bytes));
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

/** Checkpoints retention could not read, already reported (once per process each). */
const unreadableReported = new Set<string>();

/** Whether a checkpoint is intact, damaged, or could not be read (no evidence either way: never removed). */
async function checkIntact(dir: string): Promise<'intact' | 'damaged' | 'unreadable'> {
  if (intact.has(dir)) return 'intact';
  const v = await verify(dir);
  if ('unreadable' in v) {
    if (!unreadableReported.has(dir)) {
      unreadableReported.add(dir);
      process.stderr.write(`colorpipe: checkpoint ${printable(dir)} could not be read (${printable(v.unreadable)}): kept, not counted as intact\n`);
    }
    return 'unreadable';
  }
  if ('reason' in v) return 'damaged';
  intact.add(dir);
  return 'intact';
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
 * counts toward `keep`, so it is never kept in place of an older intact one. One that could not be read (no
 * permission, too many open files, an I/O error: see verify) is neither: it is kept, said once, and not counted.
 */
async function pruneCheckpoints(runDir: string, keep: number): Promise<void> {
  await cleanTemps(join(runDir, 'checkpoints'));
  const current = (JSON.parse(await fsp.readFile(join(runDir, 'state.json'), 'utf8')) as TrainState).checkpoint;
  const kept = new Set(current ? [current] : []);
  const unreadable = new Set<string>();
  for (const n of (await listCheckpoints(runDir)).reverse()) {
    const rel = join('checkpoints', n);
    if (kept.size >= keep) break;
    if (kept.has(rel)) continue;
    const state = await checkIntact(join(runDir, rel));
    if (state === 'intact') kept.add(rel);
    else if (state === 'unreadable') unreadable.add(rel);
  }
  const doomed = (await listCheckpoints(runDir)).filter((n) => !kept.has(join('checkpoints', n)) && !unreadable.has(join('checkpoints', n)));
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

/**
 * Read errors that show the checkpoint is not as written: the file is gone (ENOENT), or something else stands
 * where it or its folder should be (EISDIR, ENOTDIR). Any other (EACCES, EMFILE, EIO, ...) says nothing about
 * the checkpoint, only that it cannot be read now: no reason to fall back from it, nor to remove it.
 */
const DAMAGE_CODES = new Set(['ENOENT', 'EISDIR', 'ENOTDIR']);

/**
 * Verifies a checkpoint directory: its state and, when recorded (every checkpoint since they were), its files.
 * `reason`: damaged (a file gone, a size or checksum that differs from what was written, a state.json that is
 * not JSON or not a state); `unreadable`: a file could not be read for another reason (see DAMAGE_CODES), the
 * one line that says which and why.
 */
async function verify(dir: string): Promise<{ state: TrainState } | { reason: string } | { unreadable: string }> {
  const read = async <T>(name: string, fn: (file: string) => Promise<T>): Promise<T | { reason: string } | { unreadable: string }> => {
    const file = join(dir, name);
    try {
      return await fn(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { reason: `${name} is missing` };
      if (code !== undefined && DAMAGE_CODES.has(code)) return { reason: `${name}: ${fileErrorLine(err, file) ?? reasonOf(err)}` };
      return { unreadable: fileErrorLine(err, file) ?? `cannot read ${file}: ${reasonOf(err)}` };
    }
  };
  const text = await read('state.json', (f) => fsp.readFile(f, 'utf8'));
  if (typeof text !== 'string') return text;
  let state: TrainState;
  try {
    state = JSON.parse(text) as TrainState;
  } catch (err) {
    return { reason: `state.json: ${reasonOf(err)}` };
  }
  const bad = badState(state);
  if (bad) return { reason: bad };
  for (const f of CHECKPOINT_FILES) {
    const got = await read(f, fileDigest);
    if ('reason' in got || 'unreadable' in got) return got;
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
 *   would throw the run away), or when a candidate could not be read (no permission, too many open files, an I/O
 *   error): nothing says it is damaged, so it is neither skipped nor, by retention, removed.
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
    else candidates.push(await insideFolder(runDir, named, stateFile, 'checkpoint', RUN_RULE));
  } catch (err) {
    if (err instanceof InvalidOptionError) throw err;
    // None: a fresh run, or one killed before its first commit; the checkpoint directories decide.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') ignored = reasonOf(err);
  }
  // A run directory may come from elsewhere: a checkpoint that is a link leading out of it is refused, not read.
  for (const n of (await listCheckpoints(runDir)).reverse()) candidates.push(await insideFolder(runDir, join('checkpoints', n), runDir, 'checkpoint directory', RUN_RULE));
  const tried = new Set<string>();
  let damaged = 0;
  let found: LoadedCheckpoint | null = null;
  for (const dir of candidates) {
    if (tried.has(dir)) continue;
    tried.add(dir);
    if (!(await exists(dir))) continue;
    const v = await verify(dir);
    if ('unreadable' in v) {
      // Not damaged as far as anyone knows: resuming from an older checkpoint would drop its steps, and the run
      // would later write over it. The run stops, naming the file and the reason, until it can be read.
      intact.delete(dir);
      throw new ColorpipeError('ERR_CHECKPOINT', `checkpoint ${dir} could not be read, so the run does not resume from an older one: ${v.unreadable}`);
    }
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

/**
 * optimizer.bin: the step count (int32) then every slot (float32), little-endian, in the order of the specs that
 * state.json records (the encoding tfjs's io.encodeWeights used for the same file).
 */
function encodeOptimizer(o: OptimizerState): { specs: TensorSpec[]; bytes: Uint8Array } {
  const specs: TensorSpec[] = [{ name: 'iter', shape: [], dtype: 'int32' }, ...o.slots.map((s) => ({ name: s.name, shape: s.shape, dtype: 'float32' }))];
  const floats = o.slots.reduce((a, s) => a + s.data.length, 0);
  const bytes = new Uint8Array(4 + 4 * floats);
  new DataView(bytes.buffer).setInt32(0, o.iterations, true);
  let at = 4;
  for (const s of o.slots) {
    bytes.set(new Uint8Array(s.data.buffer, s.data.byteOffset, s.data.byteLength), at);
    at += s.data.byteLength;
  }
  return { specs, bytes };
}

/** A checkpoint's optimizer state (the inverse of encodeOptimizer). */
export function checkpointOptimizer(ck: LoadedCheckpoint): OptimizerState {
  const bytes = new Uint8Array(ck.optimizerData);
  const view = new DataView(ck.optimizerData);
  let at = 0;
  let iterations = 0;
  const slots: NamedWeight[] = [];
  for (const s of ck.state.optimizer.specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    if (at + 4 * n > bytes.byteLength) throw new ColorpipeError('ERR_CHECKPOINT', `optimizer.bin in ${ck.dir} is shorter than its specs (${s.name})`);
    if (s.name === 'iter') iterations = s.dtype === 'int32' ? view.getInt32(at, true) : Math.round(view.getFloat32(at, true));
    else {
      const data = new Float32Array(n);
      new Uint8Array(data.buffer).set(bytes.subarray(at, at + 4 * n));
      slots.push({ name: s.name, shape: [...s.shape], data });
    }
    at += 4 * n;
  }
  return { iterations, slots };
}

/** A checkpoint's model weights (model.json + weights.bin in its directory). */
export async function checkpointWeights(ck: LoadedCheckpoint): Promise<NamedWeight[]> {
  return (await readModelFiles(ck.dir)).weights;
}
