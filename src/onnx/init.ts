/**
 * A fresh network's weights for the ONNX training engine, seeded, with the initializers the other engines use
 * (tfjs's, which the PyTorch engine reproduces): He-normal truncated at two standard deviations (redrawn
 * beyond) for ReLU layers, Glorot-uniform for the outputs (sigmoid, logits), zero biases, batch norm's gamma 1,
 * beta 0, moving mean 0 and variance 1. The streams differ from tfjs's (another generator): the same seed gives
 * other, equally distributed, weights on each engine.
 */
import { Rng } from '../core/rng.js';
import type { NetworkTable } from '../network/table.js';
import { weightSpecs, type NamedWeight } from '../network/weights.js';

export function initialWeights(t: NetworkTable, seed: number): NamedWeight[] {
  const activation = new Map<string, string | undefined>();
  for (const l of [...t.low, ...t.mid, ...t.global, ...t.fusion, ...t.color, ...t.classifier]) activation.set(l.name, l.activation);
  const root = new Rng(seed);
  return weightSpecs(t).map((s) => {
    const size = s.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    const what = s.name.slice(s.name.lastIndexOf('/') + 1);
    if (what === 'gamma' || what === 'moving_variance') data.fill(1);
    if (what !== 'kernel') return { name: s.name, shape: s.shape, data };
    const rng = root.fork(s.name);
    // conv [k, k, in, out], dense [in, out]
    const receptive = s.shape.length === 4 ? s.shape[0]! * s.shape[1]! : 1;
    const fanIn = receptive * s.shape[s.shape.length - 2]!;
    const fanOut = receptive * s.shape[s.shape.length - 1]!;
    if (activation.get(s.layer) === 'relu') {
      const std = Math.sqrt(2 / fanIn);
      for (let i = 0; i < size; i++) {
        let v: number;
        do v = normal(rng);
        while (Math.abs(v) > 2);
        data[i] = v * std;
      }
    } else {
      const limit = Math.sqrt(6 / (fanIn + fanOut));
      for (let i = 0; i < size; i++) data[i] = (2 * rng.next() - 1) * limit;
    }
    return { name: s.name, shape: s.shape, data };
  });
}

/** A standard normal draw (Box-Muller). */
function normal(rng: Rng): number {
  const u = 1 - rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}
