/**
 * The colorizer's inference graph as ONNX nodes and initializers (NCHW), from the layer table (table.ts) and
 * the trained weights. What makes it compute exactly what the tfjs inference model computes:
 *
 * - Batch norm is folded into the convolution before it: the inference-mode ColorpipeBatchNorm (layers.ts) is
 *   tf.batchNorm with the moving statistics, y = gamma * (x - mean) / sqrt(var + eps) + beta, then ReLU; so
 *   W' = W * s and b' = beta + s * (bias - mean) per output channel, s = gamma / sqrt(var + eps) (float64,
 *   stored as float32), and one Conv + Relu remain.
 * - TF 'same' padding as explicit pads. At stride 1 a 3x3 pads 1 on every side. At stride 2 on an even size TF
 *   pads 0 before and 1 after (table.ts); the local path's H and W are multiples of 8, so each of its three
 *   stride-2 convolutions sees an even size and [0, 0, 1, 1] is right for every allowed input. The global path
 *   has a fixed size S, so its pads are computed from the size each layer sees (S / 8 may be odd: S = 40).
 * - tfjs flattens the global map as [h, w, C]; ONNX's Flatten of NCHW gives [C, h, w]. The first FC's kernel
 *   rows are permuted to match instead of transposing the activations at run time.
 * - Upsampling: Resize nearest, asymmetric, floor: output (y, x) reads input (floor(y / 2), floor(x / 2)),
 *   tfjs's upSampling2d 'nearest'.
 * - Fusion (the paper's Eq. 1): `concat` replicates the global features over the mid-level map (Expand to the
 *   runtime shape [N, 1, H, W], so the global batch may be N or 1) and applies the 1x1 convolution to the
 *   concatenation; `split` (the default) computes the same sum as conv(mid, W_mid) + W_g . features: the
 *   global half of the 1x1 convolution is the same at every position, so it runs once per image as a Gemm
 *   and is added by broadcasting (equal up to float rounding; half the fusion layer's work).
 */
import type { NetworkTable, LayerSpec } from '../network/table.js';
import { sameOut } from '../network/table.js';
import { floatTensor, floatValueInfo, int64Tensor, type GraphMessage } from './proto.js';
import { ONNX_NAMES } from '../network/onnx-io.js';
import { Nodes } from './nodes.js';
import { hwioToOihw, nhwcRowOf, permuteRows, samePads } from './layout.js';

/** The graph's input and output names (network/onnx-io.ts: the runtimes read them from there). */
export { ONNX_NAMES };

export type FusionMode = 'split' | 'concat';

/**
 * The trained weights of one layer as tfjs stores them: conv [kernel [kh, kw, in, out], bias?]; dense
 * [kernel [in, out], bias]; batch norm (`<conv>_bn`) [gamma, beta, moving_mean, moving_variance].
 */
export type WeightReader = (layer: string) => Float32Array[];

export interface GraphOptions {
  fusion?: FusionMode;
  name?: string;
}


class GraphBuilder extends Nodes {
  constructor(private readonly weights: WeightReader, private readonly eps: number) {
    super();
  }

  /** W [out, in, k, k] and b [out] of a conv layer in ONNX order, its BN folded in. Shared by both paths. */
  private convParams(spec: LayerSpec): { w: string; b: string; inC: number } {
    const name = spec.name;
    if (this.has(`${name}.weight`)) return { w: `${name}.weight`, b: `${name}.bias`, inC: this.inC.get(name)! };
    const [kernel, bias] = this.weights(name);
    const k = spec.kernel!;
    const out = spec.out!;
    const inC = kernel!.length / (k * k * out);
    const scale = new Float64Array(out).fill(1);
    const shift = new Float64Array(out);
    if (spec.bias) shift.set(bias!);
    if (spec.bn) {
      const [gamma, beta, mean, variance] = this.weights(`${name}_bn`);
      for (let o = 0; o < out; o++) {
        const s = gamma![o]! / Math.sqrt(variance![o]! + this.eps);
        scale[o] = s;
        shift[o] = beta![o]! + s * (shift[o]! - mean![o]!);
      }
    }
    // tfjs [kh, kw, in, out] -> ONNX [out, in, kh, kw], scaled per output channel.
    const w = hwioToOihw(kernel!, k, inC, out);
    const per = inC * k * k;
    for (let i = 0; i < w.length; i++) w[i] = w[i]! * scale[Math.floor(i / per)]!;
    this.inC.set(name, inC);
    this.init(floatTensor(`${name}.weight`, [out, inC, k, k], w));
    this.init(floatTensor(`${name}.bias`, [out], Float32Array.from(shift)));
    return { w: `${name}.weight`, b: `${name}.bias`, inC };
  }
  private readonly inC = new Map<string, number>();

  /** Conv (+ folded BN) + activation. `size`: the input's fixed spatial size, or 'divisible' (dynamic). */
  conv(spec: LayerSpec, x: string, prefix: string, size: number | 'divisible', output?: string): string {
    const { w, b } = this.convParams(spec);
    const k = spec.kernel!;
    const s = spec.stride!;
    const [before, after] = samePads(size, k, s);
    const y = this.add('Conv', [x, w, b], `${prefix}${spec.name}`, {
      kernel_shape: [k, k],
      strides: [s, s],
      pads: [before, before, after, after],
      dilations: [1, 1],
      group: 1,
    });
    return this.activation(spec, y, `${prefix}${spec.name}`, output);
  }

  /** The activation after `x` (named `output` when given, else `<name>/<activation>`). */
  activation(spec: LayerSpec, x: string, name: string, output?: string): string {
    if (spec.activation === 'relu') return this.add('Relu', [x], output ?? `${name}/relu`);
    if (spec.activation === 'sigmoid') return this.add('Sigmoid', [x], output ?? `${name}/sigmoid`);
    if (output) return this.add('Identity', [x], output);
    return x;
  }

  /** Gemm + activation for a dense layer; `rows` permutes the kernel's input rows (the NHWC flatten). */
  dense(spec: LayerSpec, x: string, rows?: (onnxRow: number) => number, output?: string): string {
    const [kernel, bias] = this.weights(spec.name);
    const out = spec.out!;
    const inC = kernel!.length / out;
    const k = rows ? permuteRows(kernel!, out, rows) : kernel!;
    const w = this.init(floatTensor(`${spec.name}.weight`, [inC, out], k));
    const b = this.init(floatTensor(`${spec.name}.bias`, [out], bias!));
    // Gemm's defaults: alpha = beta = 1, no transposes (the kernel is stored [in, out]).
    const linear = spec.activation === 'linear' || spec.activation === undefined;
    const y = this.add('Gemm', [x, w, b], linear && output ? output : spec.name);
    return linear ? y : this.activation(spec, y, spec.name, output);
  }
}

/**
 * The inference graph of a network table with its weights: inputs L_local [N, 1, H, W] and L_global
 * [G, 1, S, S] (G = N, or 1 for one global image shared by the batch), outputs ab [N, 2, H/2, W/2]
 * ((ab + 128) / 255, in [0, 1]) and, with a class head, logits [G, numClasses].
 */
export function buildGraph(t: NetworkTable, weights: WeightReader, options: GraphOptions = {}): GraphMessage {
  const fusion = options.fusion ?? 'split';
  const g = new GraphBuilder(weights, t.bnEpsilon);
  const S = t.inputSize;

  // Low level, shared weights: the local path at any (multiple of 8) size, the global path at S.
  let local: string = ONNX_NAMES.local;
  for (const spec of t.low) local = g.conv(spec, local, 'local/', 'divisible');
  let glob: string = ONNX_NAMES.global;
  let size = S;
  for (const spec of t.low) {
    glob = g.conv(spec, glob, 'global/', size);
    size = sameOut(size, spec.stride!);
  }

  // Global path: convolutions, flatten (NHWC order through the permuted FC rows), FCs.
  let channels = t.low[t.low.length - 1]!.out!;
  let feats = glob;
  let fc2 = '';
  let rows: ((r: number) => number) | undefined;
  for (const spec of t.global) {
    if (spec.kind === 'conv') {
      feats = g.conv(spec, feats, '', size);
      size = sameOut(size, spec.stride!);
      channels = spec.out!;
    } else if (spec.kind === 'flatten') {
      feats = g.add('Flatten', [feats], spec.name, { axis: 1 });
      // ONNX row (ch, p) of the [C, h, w] flatten is tfjs row p * C + ch of the [h, w, C] flatten.
      rows = nhwcRowOf(size * size, channels);
    } else if (spec.kind === 'dense') {
      feats = g.dense(spec, feats, rows);
      rows = undefined;
    }
    if (spec.name === 'gl_fc2') fc2 = feats;
  }

  // Mid level and fusion.
  let mid = local;
  for (const spec of t.mid) mid = g.conv(spec, mid, '', 'divisible');
  const fu = t.fusion[1]!;
  const midC = t.mid[t.mid.length - 1]!.out!;
  const featC = t.global[t.global.length - 1]!.out!;
  let fused: string;
  if (fusion === 'concat') {
    const feats4 = g.add('Reshape', [feats, g.init(int64Tensor('shape.N_C_1_1', [4], [0, -1, 1, 1]))], 'fusion/features');
    const shape = g.add('Shape', [mid], 'fusion/mid_shape');
    // [N, Cm, H, W] -> [N, 1, H, W]: Expand broadcasts [G, Cg, 1, 1] against it, G = N or 1.
    const masked = g.add('Mul', [shape, g.init(int64Tensor('fusion.mask', [4], [1, 0, 1, 1]))], 'fusion/shape_masked');
    const target = g.add('Add', [masked, g.init(int64Tensor('fusion.one', [4], [0, 1, 0, 0]))], 'fusion/tile_shape');
    const tiled = g.add('Expand', [feats4, target], 'fusion/tiled');
    const cat = g.add('Concat', [mid, tiled], 'fusion', { axis: 1 });
    fused = g.conv(fu, cat, '', 'divisible');
  } else {
    const [kernel, bias] = weights(fu.name);
    const out = fu.out!;
    // The 1x1 kernel [1, 1, Cm + Cg, out]: rows < Cm act on the mid-level map, the rest on the features.
    const wMid = new Float32Array(out * midC);
    for (let i = 0; i < midC; i++) for (let o = 0; o < out; o++) wMid[o * midC + i] = kernel![i * out + o]!;
    const wGlob = kernel!.slice(midC * out, (midC + featC) * out);
    const wm = g.init(floatTensor(`${fu.name}.weight_mid`, [out, midC, 1, 1], wMid));
    const conv = g.add('Conv', [mid, wm], `${fu.name}/mid`, { kernel_shape: [1, 1], strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: 1 });
    const wg = g.init(floatTensor(`${fu.name}.weight_global`, [featC, out], wGlob));
    const gb = g.init(floatTensor(`${fu.name}.bias`, [out], bias!));
    const perImage = g.add('Gemm', [feats, wg, gb], `${fu.name}/global`);
    const per4 = g.add('Reshape', [perImage, g.init(int64Tensor('shape.N_C_1_1', [4], [0, -1, 1, 1]))], `${fu.name}/global4`);
    const sum = g.add('Add', [conv, per4], fu.name);
    fused = g.activation(fu, sum, fu.name);
  }

  // Colorization: convolutions and nearest x2 upsampling, sigmoid at the end.
  let x = fused;
  t.color.forEach((spec, i) => {
    if (spec.kind === 'upsample') {
      const scales = g.init(floatTensor('upsample.scales', [4], [1, 1, 2, 2]));
      x = g.add('Resize', [x, '', scales], spec.name, { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' });
    } else {
      x = g.conv(spec, x, '', 'divisible', i === t.color.length - 1 ? ONNX_NAMES.ab : undefined);
    }
  });

  const outputs = [floatValueInfo(ONNX_NAMES.ab, ['N', 2, 'H_half', 'W_half'], '(ab + 128) / 255 at half the input size, NCHW')];
  if (t.classifier.length) {
    let h = fc2;
    t.classifier.forEach((spec, i) => {
      h = g.dense(spec, h, undefined, i === t.classifier.length - 1 ? ONNX_NAMES.logits : undefined);
    });
    outputs.push(floatValueInfo(ONNX_NAMES.logits, ['G', t.numClasses], 'class logits of the global image'));
  }
  return {
    name: options.name ?? 'colorpipe_colorizer',
    node: g.nodes,
    initializer: g.inits,
    input: [
      floatValueInfo(ONNX_NAMES.local, ['N', 1, 'H', 'W'], 'L / 100, NCHW; H and W multiples of 8'),
      floatValueInfo(ONNX_NAMES.global, ['G', 1, S, S], `L / 100 of the ${S}x${S} global image; G = N or 1 (one global image for the whole batch)`),
    ],
    output: outputs,
  };
}
