/**
 * The files bench/fidelity.ts shares with bench/torch_fidelity.py: raw little-endian arrays and a JSON index,
 * nothing a reader needs a library for (numpy.fromfile / numpy.memmap read them).
 *
 * - Tensors (weights): NAME.bin holds the float32 values of every tensor back to back; NAME.json is
 *   `{ "tensors": [{ "name", "shape", "offset" }] }`, offset counted in float32 values.
 * - Batches: DIR/L.bin float32 [steps, B, S, S] (NHWC with one channel), DIR/ab.bin float32 [steps, B, S, S, 2]
 *   (NHWC, interleaved a, b), DIR/cls.bin int32 [steps, B] (-1: no class), DIR/batches.json
 *   `{ "steps", "batch", "size", "keys": [[...], ...] }`. Appended one batch at a time, so a run of any length
 *   streams to disk; the index is written when the dump is closed.
 */
import { closeSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { LabBatch } from '../src/types.js';
import type { NamedWeight } from '../src/network/weights.js';

export interface TensorIndex {
  tensors: Array<{ name: string; shape: number[]; offset: number }>;
}

const bytes = (a: Float32Array | Int32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Writes BASE.bin and BASE.json (see the module comment). */
export function writeTensors(base: string, tensors: NamedWeight[]): void {
  const index: TensorIndex = { tensors: [] };
  const fd = openSync(`${base}.bin`, 'w');
  try {
    let offset = 0;
    for (const t of tensors) {
      const size = t.shape.reduce((a, b) => a * b, 1);
      if (size !== t.data.length) throw new RangeError(`${t.name}: shape [${t.shape.join(', ')}] holds ${size} values but received ${t.data.length}`);
      writeSync(fd, bytes(t.data));
      index.tensors.push({ name: t.name, shape: t.shape, offset });
      offset += size;
    }
  } finally {
    closeSync(fd);
  }
  writeFileSync(`${base}.json`, JSON.stringify(index, null, 1));
}

/** Reads tensors written by writeTensors (or by torch_fidelity.py, which writes the same format). */
export function readTensors(base: string): NamedWeight[] {
  const index = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as TensorIndex;
  const buf = readFileSync(`${base}.bin`);
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return index.tensors.map((t) => {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (t.offset + size > all.length) throw new RangeError(`${base}.bin is too short for ${t.name}`);
    return { name: t.name, shape: t.shape, data: all.slice(t.offset, t.offset + size) };
  });
}

export interface BatchIndex {
  steps: number;
  batch: number;
  size: number;
  keys: string[][];
}

/** Appends batches of one shape to DIR (see the module comment); `close()` writes the index. */
export class BatchDump {
  private readonly fds: { L: number; ab: number; cls: number };
  private readonly index: BatchIndex;

  constructor(
    readonly dir: string,
    batch: number,
    size: number,
  ) {
    this.index = { steps: 0, batch, size, keys: [] };
    this.fds = { L: openSync(join(dir, 'L.bin'), 'w'), ab: openSync(join(dir, 'ab.bin'), 'w'), cls: openSync(join(dir, 'cls.bin'), 'w') };
  }

  /** Appends one full batch. @throws RangeError for a batch of another size or shape. */
  append(b: LabBatch): void {
    const { batch: n, size: s } = this.index;
    if (b.size !== n || b.height !== s || b.width !== s) {
      throw new RangeError(`Expected a batch of ${n} at ${s}x${s} but received ${b.size} at ${b.height}x${b.width}`);
    }
    writeSync(this.fds.L, bytes(b.L.subarray(0, n * s * s)));
    writeSync(this.fds.ab, bytes(b.ab.subarray(0, n * s * s * 2)));
    writeSync(this.fds.cls, bytes(b.cls.subarray(0, n)));
    this.index.keys.push(b.keys.slice(0, n));
    this.index.steps++;
  }

  get steps(): number {
    return this.index.steps;
  }

  close(): void {
    for (const fd of Object.values(this.fds)) closeSync(fd);
    writeFileSync(join(this.dir, 'batches.json'), JSON.stringify(this.index));
  }
}

/** Reads the dump's index and returns a reader of batch `i` (0-based) as a LabBatch; `close()` closes the files. */
export function openBatchDump(dir: string): { index: BatchIndex; batch(i: number): LabBatch; close(): void } {
  const index = JSON.parse(readFileSync(join(dir, 'batches.json'), 'utf8')) as BatchIndex;
  const { batch: n, size: s } = index;
  const fds = { L: openSync(join(dir, 'L.bin'), 'r'), ab: openSync(join(dir, 'ab.bin'), 'r'), cls: openSync(join(dir, 'cls.bin'), 'r') };
  const read = (fd: number, arr: Float32Array | Int32Array, i: number) => {
    const b = bytes(arr);
    const got = readSync(fd, b, 0, b.length, i * b.length);
    if (got !== b.length) throw new RangeError(`batch ${i} is past the end of the dump in ${dir}`);
  };
  return {
    index,
    batch(i: number): LabBatch {
      const L = new Float32Array(n * s * s);
      const ab = new Float32Array(n * s * s * 2);
      const cls = new Int32Array(n);
      read(fds.L, L, i);
      read(fds.ab, ab, i);
      read(fds.cls, cls, i);
      return { size: n, height: s, width: s, L, ab, cls, keys: index.keys[i] ?? [], positions: [] };
    },
    close(): void {
      for (const fd of Object.values(fds)) closeSync(fd);
    },
  };
}
