/**
 * The batch channel to a PyTorch worker: a file in shared memory (/dev/shm, else the temp folder) holding a ring
 * of slots. Node writes a batch into a free slot with one positioned write per plane (on libuv's threads, off the
 * main thread: one copy); the worker maps the file and reads the slot in place (src/torch/py/colorpipe_torch/
 * worker.py Ring). A slot is reused once the worker has replied for it.
 *
 * Slot layout: L float32 [n*h*w], ab float32 [n*h*w*2], cls int32 [n], then the evaluation's ab float32
 * [n*(h/2)*(w/2)*2], the worker's reply.
 *
 * The file is unlinked once both sides have it open (`unlink`): a killed run leaves nothing in /dev/shm. Files a
 * killed process left before that point are removed by the next ring made on the machine (their pid is dead).
 */
import { existsSync, promises as fsp } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { LabBatch } from '../types.js';

const PREFIX = 'colorpipe-torch-';

/** Bytes of one slot for batches of up to `batch` images of size x size. */
export function slotBytes(batch: number, size: number): number {
  const px = batch * size * size;
  return 4 * (3 * px + batch + (px / 4) * 2);
}

/** Where the ring and the weight files go: /dev/shm when it is there. */
export function shmDir(): string {
  return existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the files of dead colorpipe processes from `dir` (a process killed before it unlinked them). */
export async function cleanStale(dir: string): Promise<void> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  await Promise.all(names.filter((n) => n.startsWith(PREFIX)).map(async (n) => {
    const pid = Number(n.slice(PREFIX.length).split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && !alive(pid)) await fsp.rm(join(dir, n), { force: true });
  }));
}

/** A file name in `dir` owned by this process: `colorpipe-torch-PID-WHAT-RANDOM`. */
export function ownedPath(dir: string, what: string): string {
  return join(dir, `${PREFIX}${process.pid}-${what}-${randomBytes(4).toString('hex')}`);
}

export class Ring {
  private unlinked = false;
  private constructor(readonly path: string, private readonly fh: fsp.FileHandle, readonly slots: number, readonly slotBytes: number) {}

  static async create(slots: number, bytes: number, dir = shmDir()): Promise<Ring> {
    await cleanStale(dir);
    const path = ownedPath(dir, 'ring');
    const fh = await fsp.open(path, 'w+', 0o600);
    await fh.truncate(slots * bytes);
    return new Ring(path, fh, slots, bytes);
  }

  /** Writes a batch into `slot`. */
  async write(slot: number, b: LabBatch): Promise<void> {
    const px = b.size * b.height * b.width;
    if (4 * (3 * px + b.size) > this.slotBytes) throw new RangeError(`Expected a batch of at most ${this.slotBytes} bytes but received ${4 * (3 * px + b.size)}`);
    const L = b.L.subarray(0, px);
    const ab = b.ab.subarray(0, 2 * px);
    const cls = b.cls.subarray(0, b.size);
    await this.fh.writev([bytesOf(L), bytesOf(ab), bytesOf(cls)], slot * this.slotBytes);
  }

  /** Reads `floats` float32 values of `slot` at byte `offset` (the worker's reply). */
  async read(slot: number, offset: number, floats: number): Promise<Float32Array> {
    const out = new Float32Array(floats);
    const { bytesRead } = await this.fh.read(new Uint8Array(out.buffer), 0, out.byteLength, slot * this.slotBytes + offset);
    if (bytesRead !== out.byteLength) throw new RangeError(`The ring returned ${bytesRead} of ${out.byteLength} bytes`);
    return out;
  }

  /** Removes the file's name once the worker has mapped it (the memory lives until both sides close it). */
  async unlink(): Promise<void> {
    if (this.unlinked) return;
    this.unlinked = true;
    await fsp.rm(this.path, { force: true });
  }

  async close(): Promise<void> {
    await this.unlink();
    await this.fh.close().catch(() => undefined);
  }
}

function bytesOf(a: Float32Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
