/**
 * The ONNX training engine's state: every weight (batch-norm moving statistics included) and the optimizer's
 * two slots per trainable weight, kept in the training graph's layout (layout.ts: conv kernels [out, in, k, k],
 * the first global FC's rows in NCHW-flatten order) in three contiguous Float32Arrays, so that each weight's
 * graph input is a view (no copy when fed). Conversion to colorpipe's names and layout happens only when weights
 * or slots cross the engine's boundary (checkpoints, setWeights).
 *
 * Groups: the graph updates the state by group, each a contiguous range of the arrays read as one more input
 * (a view of the same memory) and written as one output into the other set: the small trainable weights
 * together (one optimizer update instead of a dozen nodes per bias or batch-norm vector), each large one alone
 * (no concatenation of its gradient), and the moving statistics together.
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

/** Trainable weights with fewer values share one optimizer update (their gradients concatenated). */
export const SMALL_WEIGHT = 65536;

export interface StateGroup {
  /** The graph input holding the group's weights (its slots: `<name>/<slot>`). */
  name: string;
  /** In the order of the arrays. */
  entries: StateEntry[];
  offset: number;
  slotOffset: number;
  size: number;
  trainable: boolean;
}

export interface StateLayout {
  /** The canonical order (src/network/weights.ts weightSpecs). */
  entries: StateEntry[];
  groups: StateGroup[];
  weights: number;
  slots: number;
}

/** The state's entries and groups for a network table (see the module comment). */
export function stateLayout(t: NetworkTable): StateLayout {
  const entries = stateEntries(t);
  const trainable = entries.filter((e) => e.trainable);
  const lists: Array<[string, StateEntry[], boolean]> = [
    ['state/small', trainable.filter((e) => e.size < SMALL_WEIGHT), true],
    ...trainable.filter((e) => e.size >= SMALL_WEIGHT).map((e): [string, StateEntry[], boolean] => [`state/${e.name}`, [e], true]),
    ['state/moving', entries.filter((e) => !e.trainable), false],
  ];
  let offset = 0;
  let slotOffset = 0;
  const groups: StateGroup[] = [];
  for (const [name, list, isTrainable] of lists) {
    if (!list.length) continue;
    const group: StateGroup = { name, entries: list, offset, slotOffset, size: 0, trainable: isTrainable };
    for (const e of list) {
      e.offset = offset + group.size;
      if (isTrainable) e.slotOffset = slotOffset + group.size;
      group.size += e.size;
    }
    offset += group.size;
    if (isTrainable) slotOffset += group.size;
    groups.push(group);
  }
  return { entries, groups, weights: offset, slots: slotOffset };
}

function stateEntries(t: NetworkTable): StateEntry[] {
  const { side, channels } = flattenGeometry(t);
  const firstFc = t.global.find((l) => l.kind === 'dense')!.name;
  return weightSpecs(t).map((s) => {
    const size = s.shape.reduce((a, b) => a * b, 1);
    // Offsets are set by stateLayout.
    const base = { name: s.name, shape: s.shape, size, trainable: s.trainable, offset: 0, slotOffset: 0 };
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

export function newStateSet(layout: StateLayout): StateSet {
  return { weights: new Float32Array(layout.weights), slots: [new Float32Array(layout.slots), new Float32Array(layout.slots)] };
}

/** The values of an entry or a group in a set's weights. */
export function weightView(set: StateSet, e: Pick<StateEntry, 'offset' | 'size'>): Float32Array {
  return set.weights.subarray(e.offset, e.offset + e.size);
}

/** The values of a trainable entry or group in one of a set's slots. */
export function slotView(set: StateSet, slot: 0 | 1, e: Pick<StateEntry, 'slotOffset' | 'size'>): Float32Array {
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
