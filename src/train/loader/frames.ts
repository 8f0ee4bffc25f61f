/**
 * What crosses a boundary inside the loader: the frames a rank's stream is made of (in-process, or on a child's
 * binary pipe, fd 3; never JSON IPC), the messages of the hub worker, and the one conversion of a kept frame
 * into the network's floats (toSample).
 *
 * Wire format, little-endian: [u32 n = bytes after this field][u32 h = header bytes][header JSON][payload].
 * The payload of a 'sample' frame is L then ab (3 bytes a pixel instead of 12 as floats); other frames have
 * none. A parsed frame's planes are views on the received chunk, not copies.
 */
import type { LabSample, ShardPosition } from '../../types.js';
import { ColorpipeError, InvalidOptionError, Reporter, type ErrorCode } from '../../core/errors.js';
import { dequantizeAb, dequantizeL } from '../../color/lab.js';

/** A sample from the loader: Lab normalized for the network, with the rank that read it and its position. */
export type LoaderSample = LabSample & { rank: number; position: ShardPosition; replayed?: boolean };

export type Frame =
  | {
      t: 'sample';
      rank: number;
      key: string;
      cls?: number;
      position: ShardPosition;
      width: number;
      height: number;
      /** round(L * 2.55), length width * height. */
      L: Uint8Array;
      /** round(ab) + 128, interleaved, length 2 * width * height. */
      ab: Uint8Array;
      /** A note on the input (only its first frame was decoded), named as reports name it; see merge.ts. */
      note?: { key: string; reason: string };
    }
  | { t: 'drop'; rank: number; key: string; position: ShardPosition; stage: 'decode' | 'filter'; reason: string }
  | { t: 'end'; rank: number; epoch: number }
  | { t: 'report'; stage: string; key: string; reason: string }
  | NoticeMessage
  | { t: 'fatal'; code: string; message: string }
  | { t: 'done' };

export type SampleFrame = Frame & { t: 'sample' };
export type DropFrame = Frame & { t: 'drop' };
export type ReportMessage = { t: 'report'; stage: string; key: string; reason: string };
/** A Reporter notice (never fatal) crossing the same boundaries as reports. */
export type NoticeMessage = { t: 'notice'; stage: string; key: string; reason: string };

/** Messages from the hub worker (hub.ts) to the loader's iterator (via-hub.ts). */
export type HubMessage =
  | { t: 'sample'; s: LoaderSample }
  | ReportMessage
  | NoticeMessage
  | { t: 'filtered'; key: string; reason: string }
  | { t: 'error'; name: string; code: string; message: string }
  | { t: 'done' };

/**
 * A Reporter that decides nothing itself: every bad input becomes a 'report' message (every notice a 'notice'
 * message) to the process or thread that owns the real reporter (a child's pipe, the hub's port), whose onError
 * then applies in order.
 */
export class ForwardingReporter extends Reporter {
  constructor(private readonly forward: (m: ReportMessage | NoticeMessage) => void) {
    super({ onError: 'skip', log: null });
  }
  override report(stage: string, key: string, reason: string): void {
    this.forward({ t: 'report', stage, key, reason });
  }
  override notice(stage: string, key: string, reason: string): void {
    this.forward({ t: 'notice', stage, key, reason });
  }
}

/**
 * An error that crossed a process or thread boundary as { code, message } ('fatal' frame, hub 'error'), as the
 * class it was thrown as: InvalidOptionError for ERR_INVALID_OPTION (a resume state that does not fit the shard
 * list is an option error wherever it is found), a ColorpipeError with its code otherwise.
 */
export function wireError(e: { code: string; message: string }): ColorpipeError {
  // The code came from a ColorpipeError in the child (or from Node, e.g. ENOENT): kept as it was sent.
  return e.code === 'ERR_INVALID_OPTION' ? new InvalidOptionError(e.message) : new ColorpipeError(e.code as ErrorCode, e.message);
}

/** A kept frame as the network's floats (a fresh Float32Array per plane: the caller may transfer them). */
export function toSample(f: SampleFrame, replayed: boolean): LoaderSample {
  const s: LoaderSample = {
    key: f.key,
    rank: f.rank,
    position: f.position,
    width: f.width,
    height: f.height,
    L: dequantizeL(f.L),
    ab: dequantizeAb(f.ab),
  };
  if (f.cls !== undefined) s.cls = f.cls;
  if (replayed) s.replayed = true;
  return s;
}

/** Encodes a frame as the buffers to write, in order (the planes are not copied). */
export function encodeFrame(f: Frame): Uint8Array[] {
  let header: string;
  let payload = 0;
  if (f.t === 'sample') {
    const { L, ab, ...rest } = f;
    header = JSON.stringify(rest);
    payload = L.length + ab.length;
  } else {
    header = JSON.stringify(f);
  }
  const h = Buffer.from(header, 'utf8');
  const head = Buffer.allocUnsafe(8 + h.length);
  head.writeUInt32LE(4 + h.length + payload, 0);
  head.writeUInt32LE(h.length, 4);
  h.copy(head, 8);
  return f.t === 'sample' ? [head, f.L, f.ab] : [head];
}

/** Splits a byte stream into frames; feed it chunks in order. */
export class FrameParser {
  private chunks: Buffer[] = [];
  private offset = 0;
  private have = 0;
  private need = -1;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.have += chunk.length;
    const out: Frame[] = [];
    for (;;) {
      if (this.need < 0) {
        if (this.have < 4) break;
        this.need = this.take(4).readUInt32LE(0);
      }
      if (this.have < this.need) break;
      const body = this.take(this.need);
      this.need = -1;
      out.push(parseBody(body));
    }
    return out;
  }

  /** Bytes received but not yet returned as frames. */
  get pending(): number {
    return this.have;
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length - this.offset >= n) {
      out = first.subarray(this.offset, this.offset + n);
      this.offset += n;
      if (this.offset === first.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      while (at < n) {
        const c = this.chunks[0]!;
        const k = Math.min(n - at, c.length - this.offset);
        c.copy(out, at, this.offset, this.offset + k);
        at += k;
        this.offset += k;
        if (this.offset === c.length) {
          this.chunks.shift();
          this.offset = 0;
        }
      }
    }
    this.have -= n;
    return out;
  }
}

/** One frame's body (everything after its length field): the header, and for a sample its planes as views. */
export function parseBody(body: Buffer): Frame {
  const h = body.readUInt32LE(0);
  const frame = JSON.parse(body.toString('utf8', 4, 4 + h)) as Frame;
  if (frame.t === 'sample') {
    const n = frame.width * frame.height;
    const at = body.byteOffset + 4 + h;
    frame.L = new Uint8Array(body.buffer, at, n);
    frame.ab = new Uint8Array(body.buffer, at + n, 2 * n);
  }
  return frame;
}
