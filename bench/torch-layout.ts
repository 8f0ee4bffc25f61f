/**
 * A colorizer's weights in PyTorch's layouts, by colorpipe's names: what bench/fidelity.ts hands to
 * bench/torch_fidelity.py (the same network in PyTorch, bench/torch_model.py) and takes back.
 *
 * Names are the tfjs ones without tfjs's uniquifying suffix: `<layer>/kernel`, `<layer>/bias`,
 * `<layer>_bn/gamma|beta|moving_mean|moving_variance`. Layouts:
 * - conv kernel: tfjs [kh, kw, in, out] -> torch [out, in, kh, kw];
 * - dense kernel: tfjs [in, out] -> torch [out, in]; the dense layer right after the global path's flatten
 *   (gl_fc1) also has its inputs reordered: tfjs flattens an NHWC map (index (h * W + w) * C + c), PyTorch an
 *   NCHW one (index (c * H + h) * W + w);
 * - biases and batch-norm vectors: unchanged ([C]; torch's running_mean / running_var are keras's moving_mean /
 *   moving_variance, same semantics: the unbiased batch variance enters the moving one).
 */
import type { LayersModel } from '@tensorflow/tfjs-layers';
import * as tf from '@tensorflow/tfjs-core';
import { sameOut, type NetworkTable } from '../src/network/table.js';

export interface NamedWeight {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** The input map [H, W, C] of each dense layer that follows a flatten (gl_fc1), by layer name. */
export function flattenInputs(t: NetworkTable): Map<string, [number, number, number]> {
  const m = new Map<string, [number, number, number]>();
  let s = t.inputSize;
  let c = 1;
  for (const l of t.low) {
    s = sameOut(s, l.stride!);
    c = l.out!;
  }
  let flat: [number, number, number] | null = null;
  for (const l of t.global) {
    if (l.kind === 'conv') {
      s = sameOut(s, l.stride!);
      c = l.out!;
    } else if (l.kind === 'flatten') {
      flat = [s, s, c];
    } else if (l.kind === 'dense' && flat) {
      m.set(l.name, flat);
      flat = null;
    }
  }
  return m;
}

/** Transposes a row-major array by a permutation of its axes (numpy's transpose). */
export function permute(data: Float32Array, shape: number[], perm: number[]): { data: Float32Array; shape: number[] } {
  const rank = shape.length;
  if (perm.length !== rank || [...perm].sort().some((p, i) => p !== i)) throw new RangeError(`Expected a permutation of ${rank} axes but received [${perm.join(', ')}]`);
  const outShape = perm.map((p) => shape[p]!);
  const inStrides = new Array<number>(rank);
  for (let i = rank - 1, s = 1; i >= 0; i--) {
    inStrides[i] = s;
    s *= shape[i]!;
  }
  const strides = perm.map((p) => inStrides[p]!);
  const out = new Float32Array(data.length);
  const idx = new Array<number>(rank).fill(0);
  for (let o = 0; o < out.length; o++) {
    let src = 0;
    for (let i = 0; i < rank; i++) src += idx[i]! * strides[i]!;
    out[o] = data[src]!;
    for (let i = rank - 1; i >= 0; i--) {
      if (++idx[i]! < outShape[i]!) break;
      idx[i] = 0;
    }
  }
  return { data: out, shape: outShape };
}

/** One weight from tfjs's layout to torch's (see the module comment); `flat` is [H, W, C] for gl_fc1's kernel. */
export function toTorch(w: NamedWeight, flat?: [number, number, number]): NamedWeight {
  if (!w.name.endsWith('/kernel')) return { ...w, shape: [...w.shape], data: w.data.slice() };
  if (w.shape.length === 4) return { name: w.name, ...permute(w.data, w.shape, [3, 2, 0, 1]) };
  if (!flat) return { name: w.name, ...permute(w.data, w.shape, [1, 0]) };
  // [H*W*C, out] (rows NHWC) -> view [H, W, C, out] -> [out, C, H, W] -> [out, C*H*W]
  const [h, wd, c] = flat;
  const out = w.shape[1]!;
  if (w.shape[0] !== h * wd * c) throw new RangeError(`${w.name}: expected ${h * wd * c} inputs (${h}x${wd}x${c}) but received ${w.shape[0]}`);
  const p = permute(w.data, [h, wd, c, out], [3, 2, 0, 1]);
  return { name: w.name, shape: [out, c * h * wd], data: p.data };
}

/** The inverse of toTorch: `shape` is the tfjs shape the weight must take. */
export function fromTorch(w: NamedWeight, tfjsShape: number[], flat?: [number, number, number]): NamedWeight {
  if (!w.name.endsWith('/kernel')) return { name: w.name, shape: [...tfjsShape], data: w.data.slice() };
  if (tfjsShape.length === 4) return { name: w.name, ...permute(w.data, w.shape, [2, 3, 1, 0]) };
  if (!flat) return { name: w.name, ...permute(w.data, w.shape, [1, 0]) };
  const [h, wd, c] = flat;
  const out = tfjsShape[1]!;
  const p = permute(w.data, [out, c, h, wd], [2, 3, 1, 0]);
  return { name: w.name, shape: [h * wd * c, out], data: p.data };
}

export interface WeightSlot {
  /** colorpipe's name, e.g. ll_conv1/kernel. */
  name: string;
  variable: tf.Variable;
  /** tfjs shape. */
  shape: number[];
  /** [H, W, C] of the flatten before it (gl_fc1's kernel). */
  flat?: [number, number, number];
}

/** Every weight of a model's layers (batch-norm moving statistics included) by colorpipe's name, tfjs layout. */
export function weightSlots(model: LayersModel, table: NetworkTable): WeightSlot[] {
  const flats = flattenInputs(table);
  const out: WeightSlot[] = [];
  for (const l of model.layers) {
    for (const w of l.weights) {
      const flat = w.originalName.endsWith('/kernel') ? flats.get(l.name) : undefined;
      out.push({ name: w.originalName, variable: w.read() as tf.Variable, shape: [...w.shape] as number[], ...(flat ? { flat } : {}) });
    }
  }
  return out;
}

/** The weights of a colorizer's inference model (which holds every weight), in torch's layouts. */
export async function exportTorchWeights(model: LayersModel, table: NetworkTable): Promise<NamedWeight[]> {
  const out: NamedWeight[] = [];
  for (const w of weightSlots(model, table)) {
    const data = (await w.variable.data()) as Float32Array;
    out.push(toTorch({ name: w.name, shape: w.shape, data }, w.flat));
  }
  return out;
}

/**
 * Writes weights given in torch's layouts into a colorizer's model.
 * @throws RangeError when a weight is missing or has the wrong size.
 */
export function importTorchWeights(model: LayersModel, table: NetworkTable, weights: NamedWeight[]): void {
  const byName = new Map(weights.map((w) => [w.name, w]));
  for (const w of weightSlots(model, table)) {
    const src = byName.get(w.name);
    if (!src) throw new RangeError(`Expected a weight named ${w.name} but it is missing`);
    const size = w.shape.reduce((a, b) => a * b, 1);
    if (src.data.length !== size) throw new RangeError(`Expected ${size} values for ${w.name} but received ${src.data.length}`);
    const t = fromTorch(src, w.shape, w.flat);
    tf.tidy(() => w.variable.assign(tf.tensor(t.data, w.shape, 'float32')));
  }
}
