/**
 * The network's weights as every engine exchanges them: by colorpipe's name (`<layer>/<weight>`), in the tfjs
 * Layers layout that model.json + weights.bin store (conv kernel [kh, kw, in, out], dense kernel [in, out] with
 * the flatten's inputs in NHWC order, batch-norm vectors [C]). The tfjs engine reads its variables into this
 * form, the PyTorch engine converts to and from it at its boundary, and ONNX export and checkpoints take it.
 *
 * `weightSpecs` is the canonical order: the layer table's order (low, mid, global, fusion, colorization,
 * classifier), each layer's weights in tfjs's order (kernel, bias; gamma, beta, moving_mean, moving_variance).
 * Optimizer moments follow the trainable weights in that order.
 */
import { InvalidOptionError } from '../core/errors.js';
import { sameOut, type LayerSpec, type NetworkTable } from './table.js';

export interface NamedWeight {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface WeightSpec {
  name: string;
  shape: number[];
  /** False for batch norm's moving statistics (updated by the forward pass, not by the optimizer). */
  trainable: boolean;
  /** The layer it belongs to (`ll_conv1`, `ll_conv1_bn`). */
  layer: string;
}

const size = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Every weight of the network a table describes, in the canonical order (see the module comment). */
export function weightSpecs(t: NetworkTable): WeightSpec[] {
  const out: WeightSpec[] = [];
  const add = (layer: string, name: string, shape: number[], trainable = true) => out.push({ name: `${layer}/${name}`, shape, trainable, layer });
  const conv = (l: LayerSpec, inC: number): number => {
    add(l.name, 'kernel', [l.kernel!, l.kernel!, inC, l.out!]);
    if (l.bias) add(l.name, 'bias', [l.out!]);
    if (l.bn) {
      const bn = `${l.name}_bn`;
      add(bn, 'gamma', [l.out!]);
      add(bn, 'beta', [l.out!]);
      add(bn, 'moving_mean', [l.out!], false);
      add(bn, 'moving_variance', [l.out!], false);
    }
    return l.out!;
  };
  const dense = (l: LayerSpec, inC: number): number => {
    add(l.name, 'kernel', [inC, l.out!]);
    add(l.name, 'bias', [l.out!]);
    return l.out!;
  };
  let c = 1;
  let s = t.inputSize;
  for (const l of t.low) {
    c = conv(l, c);
    s = sameOut(s, l.stride!);
  }
  const lowC = c;
  for (const l of t.mid) c = conv(l, c);
  const midC = c;
  let g = lowC;
  let gs = s;
  let fc2 = 0;
  for (const l of t.global) {
    if (l.kind === 'conv') {
      g = conv(l, g);
      gs = sameOut(gs, l.stride!);
    } else if (l.kind === 'flatten') g = gs * gs * g;
    else if (l.kind === 'dense') {
      g = dense(l, g);
      if (l.name === 'gl_fc2') fc2 = g;
    }
  }
  c = conv(t.fusion[1]!, midC + g);
  for (const l of t.color) if (l.kind === 'conv') c = conv(l, c);
  let k = fc2;
  for (const l of t.classifier) k = dense(l, k);
  return out;
}

/**
 * `weights` in the canonical order, checked against the table: every weight present with its shape.
 * @throws InvalidOptionError naming `source` and the first weight missing or of the wrong shape.
 */
export function orderWeights(t: NetworkTable, weights: Iterable<NamedWeight>, source: string): NamedWeight[] {
  const byName = new Map<string, NamedWeight>();
  for (const w of weights) byName.set(w.name, w);
  return weightSpecs(t).map((s) => {
    const w = byName.get(s.name);
    if (!w) throw new InvalidOptionError(`${source} has no weight ${s.name}: it does not match colorpipe's layer table`);
    if (w.data.length !== size(s.shape) || w.shape.length !== s.shape.length || w.shape.some((d, i) => d !== s.shape[i])) {
      throw new InvalidOptionError(`${source}: ${s.name} has shape [${w.shape.join(', ')}], the layer table says [${s.shape.join(', ')}]`);
    }
    return w;
  });
}

/** A layer's weights in tfjs's order (conv [kernel, bias?]; `<conv>_bn` [gamma, beta, mean, variance]; dense [kernel, bias]). */
export function layerReader(weights: Iterable<NamedWeight>): (layer: string) => Float32Array[] {
  const byLayer = new Map<string, Float32Array[]>();
  for (const w of weights) {
    const layer = w.name.slice(0, w.name.lastIndexOf('/'));
    let list = byLayer.get(layer);
    if (!list) byLayer.set(layer, (list = []));
    list.push(w.data);
  }
  return (layer) => {
    const list = byLayer.get(layer);
    if (!list) throw new InvalidOptionError(`The model has no layer ${layer}: it does not match colorpipe's layer table`);
    return list;
  };
}

/** Total floats of a list of weights. */
export function floatCount(weights: Array<{ shape: number[] }>): number {
  return weights.reduce((a, w) => a + size(w.shape), 0);
}
