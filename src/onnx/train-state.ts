/**
 * The ONNX training engine's state: every weight (batch-norm moving statistics included) and the optimizer's
 * two slots per trainable weight, kept in the training graph's layout (layout.ts: conv kernels [out, in, k, k],
 * the first global FC's rows in NCHW-flatten order) in three contiguous Float32Arrays, so that each weight's
 * graph input is a view (no copy when fed) and its next value is written by ONNX Runtime into the view of the
 * other set. Conversion to colorpipe's names and layout happens only when weights or slots cross the engine's
 * boundary (checkpoints, setWeights).
 */
import type { NetworkTable } from '../network/table.js';
import { weightSpecs, type NamedWeight } from '../network/weights.js';
import { flattenGeometry, hwioToOihw, nhwcRowOf, oihwToHwio, permuteRows } from './layout.js';

export interface StateEntry {
  /** colorpipe's name (`ll_conv1/kernel`): also the graph input's name. */
  name: string;
  /** colorpipe's shape. */
  shape: number[];
  /** The shape in the training graph. */
  graphShape: number[];
  size: number;
  trainable: boolean;
  /** Offset of its values in a state array (all weights; or, for slots, among the trainable ones). */
  offset: number;
  slotOffset: number;
  toGraph(src: Float32Array): Float32Array;
  fromGraph(src: Float32Array, dst: Float32Array): void;
}

/** The state's entries in the canonical order (src/network/weights.ts weightSpecs). */
export function stateEntries(t: NetworkTable): StateEntry[] {
  const { side, channels } = flattenGeometry(t);
  const firstFc = t.global.find((l) => l.kind === 'dense')!.name;
  let offset = 0;
  let slotOffset = 0;
  return weightSpecs(t).map((s) => {
    const size = s.shape.reduce((a, b) => a * b, 1);
    const base = { name: s.name, shape: s.shape, size, trainable: s.trainable, offset, slotOffset };
    offset += size;
    if (s.trainable) slotOffset += size;
    if (s.shape.length === 4) {
      const [k, , inC, out] = s.shape as [number, number, number, number];
      return {
        ...base,
        graphShape: [out, inC, k, k],
        toGraph: (src) => hwioToOihw(src, k, inC, out),
        fromGraph: (src, dst) => oihwToHwio(src, k, inC, out, dst),
      };
    }
    if (s.layer === firstFc && s.name.endsWith('/kernel')) {
      const out = s.shape[1]!;
      const rowOf = nhwcRowOf(side * side, channels);
      const inverse = new Int32Array(s.shape[0]!);
      for (let r = 0; r < inverse.length; r++) inverse[rowOf(r)] = r;
      return {
        ...base,
        graphShape: s.shape,
        toGraph: (src) => permuteRows(src, out, rowOf),
        fromGraph: (src, dst) => void permuteRows(src, out, (r) => inverse[r]!, dst),
      };
    }
    return { ...base, graphShape: s.shape, toGraph: (src) => src.slice(), fromGraph: (src, dst) => dst.set(src) };
  });
}

/** One set of state arrays: the weights and, per slot, the trainable weights' values. */
export interface StateSet {
  weights: Float32Array;
  slots: [Float32Array, Float32Array];
}

export function stateSize(entries: StateEntry[]): { weights: number; slots: number } {
  const last = entries[entries.length - 1]!;
  return { weights: last.offset + last.size, slots: entries.filter((e) => e.trainable).reduce((a, e) => a + e.size, 0) };
}

export function newStateSet(entries: StateEntry[]): StateSet {
  const n = stateSize(entries);
  return { weights: new Float32Array(n.weights), slots: [new Float32Array(n.slots), new Float32Array(n.slots)] };
}

export function weightView(set: StateSet, e: StateEntry): Float32Array {
  return set.weights.subarray(e.offset, e.offset + e.size);
}

export function slotView(set: StateSet, slot: 0 | 1, e: StateEntry): Float32Array {
  return set.slots[slot].subarray(e.slotOffset, e.slotOffset + e.size);
}

/** The weights of a set in colorpipe's names and layout (copies). */
export function readWeights(entries: StateEntry[], set: StateSet): NamedWeight[] {
  return entries.map((e) => {
    const data = new Float32Array(e.size);
    e.fromGraph(weightView(set, e), data);
    return { name: e.name, shape: [...e.shape], data };
  });
}

/** One slot of every trainable weight, named `W/<suffix>`, in colorpipe's layout (copies). */
export function readSlots(entries: StateEntry[], set: StateSet, slot: 0 | 1, suffix: string): NamedWeight[] {
  return entries.filter((e) => e.trainable).map((e) => {
    const data = new Float32Array(e.size);
    e.fromGraph(slotView(set, slot, e), data);
    return { name: `${e.name}/${suffix}`, shape: [...e.shape], data };
  });
}
