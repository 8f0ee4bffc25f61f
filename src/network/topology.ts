/**
 * The inference model's topology in the Keras functional JSON that tfjs-layers saves (model.json's
 * `modelTopology`), generated from the layer table without building the model: any engine can then write a
 * model that `tf.loadLayersModel` (with colorpipe's layers registered) and `pipe colorize` open. The tfjs
 * engine builds the same graph (src/tfjs/network.ts); test/network/topology.test.ts checks that the two JSONs
 * agree layer by layer.
 *
 * The graph: inputs local_L [B, H, W, 1] and global_L [B, S, S, 1]; the low-level layers are called twice
 * (node 0 on global_L, node 1 on local_L: the order tfjs's own graph has), the global path on node 0, the
 * mid-level path on node 1; outputs ab (co_out) and, with a class head, logits (cls_out).
 */
import type { ModelConfig } from '../config.js';
import { layerTable, type LayerSpec } from './table.js';

type Json = Record<string, unknown>;
type Inbound = Array<[string, number, number, Json]>;

/** The same version string tfjs-layers 4.22 writes (loaders only read it for messages). */
const KERAS_VERSION = 'tfjs-layers 4.22.0';

function initializer(activation: string | undefined): Json {
  return activation === 'relu'
    ? { class_name: 'VarianceScaling', config: { scale: 2, mode: 'fan_in', distribution: 'normal', seed: null } }
    : { class_name: 'VarianceScaling', config: { scale: 1, mode: 'fan_avg', distribution: 'uniform', seed: null } };
}

const ZEROS = { class_name: 'Zeros', config: {} };

function conv2d(l: LayerSpec): Json {
  return {
    filters: l.out, kernel_initializer: initializer(l.activation), kernel_regularizer: null, kernel_constraint: null,
    kernel_size: [l.kernel, l.kernel], strides: [l.stride, l.stride], padding: 'same', data_format: 'channels_last',
    dilation_rate: [1, 1], activation: l.bn ? 'linear' : l.activation, use_bias: !!l.bias, bias_initializer: ZEROS,
    bias_regularizer: null, activity_regularizer: null, bias_constraint: null, name: l.name, trainable: true,
  };
}

function dense(l: LayerSpec): Json {
  return {
    units: l.out, activation: l.activation, use_bias: true, kernel_initializer: initializer(l.activation), bias_initializer: ZEROS,
    kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null, kernel_constraint: null, bias_constraint: null,
    name: l.name, trainable: true,
  };
}

/** The Keras functional JSON of the inference model for a model config (see the module comment). */
export function modelTopology(config: ModelConfig): Json {
  const t = layerTable(config);
  const layers: Json[] = [];
  const node = (name: string, index = 0): [string, number, number, Json] => [name, index, 0, {}];
  const push = (name: string, className: string, cfg: Json, inbound: Inbound[]) =>
    layers.push({ name, class_name: className, config: cfg, inbound_nodes: inbound });
  for (const [name, shape] of [['local_L', [null, null, null, 1]], ['global_L', [null, t.inputSize, t.inputSize, 1]]] as const) {
    push(name, 'InputLayer', { batch_input_shape: shape, dtype: 'float32', sparse: false, name }, []);
  }
  /** Adds a layer (and its batch norm); `from` holds, per call (node), the tensor it consumes. Returns the output's name. */
  const add = (l: LayerSpec, from: Array<[string, number]>): string => {
    const inbound = from.map(([n, i]) => [node(n, i)] as Inbound);
    switch (l.kind) {
      case 'conv':
        push(l.name, 'Conv2D', conv2d(l), inbound);
        if (l.bn) {
          const bn = `${l.name}_bn`;
          push(bn, 'ColorpipeBatchNorm', { name: bn, trainable: true, epsilon: t.bnEpsilon, momentum: t.bnMomentum, relu: l.activation === 'relu' },
            from.map((_, i) => [node(l.name, i)]));
          return bn;
        }
        return l.name;
      case 'dense':
        push(l.name, 'Dense', dense(l), inbound);
        return l.name;
      case 'flatten':
        push(l.name, 'Flatten', { name: l.name, trainable: true }, inbound);
        return l.name;
      case 'upsample':
        push(l.name, 'UpSampling2D', { size: [2, 2], data_format: 'channels_last', interpolation: 'nearest', name: l.name, trainable: true }, inbound);
        return l.name;
      case 'fusion':
        throw new Error('the fusion layer has two inputs: added by modelTopology itself');
    }
  };
  // Low level, called on global_L (node 0), then local_L (node 1).
  let low: Array<[string, number]> = [['global_L', 0], ['local_L', 0]];
  for (const l of t.low) {
    const out = add(l, low);
    low = [[out, 0], [out, 1]];
  }
  let g = low[0]!;
  let fc2 = '';
  for (const l of t.global) {
    g = [add(l, [g]), 0];
    if (l.name === 'gl_fc2') fc2 = g[0];
  }
  let m = low[1]!;
  for (const l of t.mid) m = [add(l, [m]), 0];
  push('fusion', 'ColorpipeFusion', { name: 'fusion', trainable: true }, [[node(m[0]), node(g[0])]]);
  let c: [string, number] = [add(t.fusion[1]!, [['fusion', 0]]), 0];
  for (const l of t.color) c = [add(l, [c]), 0];
  const outputs: Array<[string, number, number]> = [[c[0], 0, 0]];
  if (t.classifier.length) {
    let k: [string, number] = [fc2, 0];
    for (const l of t.classifier) k = [add(l, [k]), 0];
    outputs.push([k[0], 0, 0]);
  }
  return {
    class_name: 'Model',
    config: { name: 'colorizer_infer', layers, input_layers: [['local_L', 0, 0], ['global_L', 0, 0]], output_layers: outputs },
    keras_version: KERAS_VERSION,
    backend: 'tensor_flow.js',
  };
}
