/**
 * Registers tfjs-core's gradient functions for the single (CommonJS) tfjs-core instance Node loads.
 *
 * Why this exists: tfjs-core no longer registers gradients by itself; '@tensorflow/tfjs' (the umbrella, not a
 * dependency here) and tfjs-layers' ES-module entry do it with `import '@tensorflow/tfjs-core/dist/
 * register_all_gradients'`. Node loads the CommonJS bundles (tf-core.node.js, tf-layers.node.js), which
 * contain no gradients, and the ES-module files under dist/gradients cannot be imported by Node (extensionless
 * relative imports, and they would bind to a second tfjs-core instance anyway). Without this, the first
 * training step fails with "Cannot compute gradient: gradient function not found for Sum".
 *
 * So this module reads the installed tfjs-core's own dist/gradients/*_grad.js (the exact code the umbrella
 * registers, version-matched by construction), rewrites their `import`/`export` lines to bind to the loaded
 * CommonJS instance, and registers every gradient config. Imports that instance does not export (a few
 * internal ops such as conv2DBackpropFilter) are provided below as thin `runKernel` wrappers, as tfjs defines
 * them. A gradient whose imports cannot be resolved is skipped and listed by `registerAllGradients()`.
 *
 * Called by setupTfjs; idempotent.
 */
import { createRequire } from 'node:module';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, Tensor, Tensor4D } from '@tensorflow/tfjs-core';

const require = createRequire(import.meta.url);

type Ns = Record<string, unknown>;

const reshape4 = (t: Tensor): [Tensor4D, boolean] =>
  t.rank === 3 ? [tf.reshape(t, [1, t.shape[0]!, t.shape[1]!, t.shape[2]!]) as Tensor4D, true] : [t as Tensor4D, false];
const unreshape = (t: Tensor, was3: boolean): Tensor => (was3 ? tf.reshape(t, t.shape.slice(1)) : t);

/** tfjs-core's internal (not exported) ops that some gradients import, defined as tfjs defines them. */
const internalOps: Ns = {
  conv2DBackpropFilter: (x: Tensor, dy: Tensor, filterShape: number[], strides: unknown, pad: unknown, dataFormat = 'NHWC', dimRoundingMode?: unknown) =>
    tf.engine().runKernel(tf.Conv2DBackpropFilter, { x: reshape4(x)[0], dy: reshape4(dy)[0] }, { strides, pad, dataFormat, dimRoundingMode, filterShape } as never),
  conv2DBackpropInput: (xShape: number[], dy: Tensor, filter: Tensor, strides: unknown, pad: unknown, dataFormat = 'NHWC', dimRoundingMode?: unknown) => {
    const [dy4, was3] = reshape4(dy);
    const inputShape = was3 ? [1, ...xShape] : xShape;
    const r = tf.engine().runKernel(tf.Conv2DBackpropInput, { dy: dy4, filter }, { strides, pad, dataFormat, dimRoundingMode, inputShape } as never) as Tensor;
    return unreshape(r, was3);
  },
  depthwiseConv2dNativeBackpropInput: (xShape: number[], dy: Tensor, filter: Tensor, strides: unknown, pad: unknown, dilations: unknown = [1, 1], dimRoundingMode?: unknown) => {
    const [dy4, was3] = reshape4(dy);
    const r = tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropInput, { dy: dy4, filter }, { strides, pad, dimRoundingMode, dilations, inputShape: xShape } as never) as Tensor;
    return unreshape(r, was3);
  },
  depthwiseConv2dNativeBackpropFilter: (x: Tensor, dy: Tensor, filterShape: number[], strides: unknown, pad: unknown, dilations: unknown = [1, 1], dimRoundingMode?: unknown) =>
    tf.engine().runKernel(tf.DepthwiseConv2dNativeBackpropFilter, { x: reshape4(x)[0], dy: reshape4(dy)[0] }, { strides, pad, dimRoundingMode, dilations, filterShape } as never),
  maxPoolGrad: (dy: Tensor, input: Tensor, output: Tensor, filterSize: unknown, strides: unknown, pad: unknown, dimRoundingMode?: unknown) =>
    tf.engine().runKernel(tf.MaxPoolGrad, { dy, input, output }, { filterSize, strides, pad, dimRoundingMode } as never),
  avgPoolGrad: (dy: Tensor, input: Tensor, filterSize: unknown, strides: unknown, pad: unknown) => {
    const [dy4, was3] = reshape4(dy);
    const [in4] = reshape4(input);
    const r = tf.engine().runKernel(tf.AvgPoolGrad, { dy: dy4, input: in4 }, { filterSize, strides, pad } as never) as Tensor;
    return unreshape(r, was3);
  },
};

/** What a specifier of a dist/gradients file resolves to in the CommonJS instance (searched in order). */
function namespacesFor(spec: string): Ns[] {
  const t = tf as unknown as Ns;
  switch (spec) {
    case '../util':
      return [tf.util as unknown as Ns];
    case '../engine':
      return [{ ENGINE: tf.engine() }];
    case '../base':
      return [t];
    case '../ops/broadcast_util':
      return [tf.broadcast_util as unknown as Ns];
    case '../ops/slice_util':
      return [tf.slice_util as unknown as Ns];
    case '../ops/axis_util':
    case '../ops/conv_util':
    case '../ops/selu_util':
      return [tf.backend_util as unknown as Ns];
    default:
      return [t, internalOps];
  }
}

function resolveName(spec: string, name: string): unknown {
  for (const ns of namespacesFor(spec)) if (name in ns) return ns[name];
  return undefined;
}

let registered: { registered: string[]; skipped: string[] } | null = null;

/**
 * Registers every tfjs-core gradient that resolves against the loaded instance (about 100). Returns the kernel
 * names registered and the gradient files skipped (with the missing import). Idempotent.
 */
export function registerAllGradients(): { registered: string[]; skipped: string[] } {
  if (registered) return registered;
  const dir = join(dirname(require.resolve('@tensorflow/tfjs-core/package.json')), 'dist', 'gradients');
  const cache = new Map<string, Ns>();
  const skipped: string[] = [];
  const names: string[] = [];

  const load = (file: string): Ns => {
    const hit = cache.get(file);
    if (hit) return hit;
    const src = readFileSync(join(dir, file), 'utf8');
    const exportsObj: Ns = {};
    const missing: string[] = [];
    const bind = (spec: string, name: string): unknown => {
      if (spec.startsWith('./')) return load(spec.slice(2) + '.js')[name];
      const v = resolveName(spec, name);
      if (v === undefined) missing.push(`${name} from ${spec}`);
      return v;
    };
    const exported: string[] = [];
    const body = src
      .replace(/^\/\/# sourceMappingURL=.*$/m, '')
      .replace(/^import \* as (\w+) from '([^']+)';$/gm, (_m, ns: string, spec: string) => {
        const list = spec.startsWith('./') ? [load(spec.slice(2) + '.js')] : namespacesFor(spec);
        return `const ${ns} = __ns(${JSON.stringify(spec)}, ${list.length});`;
      })
      .replace(/^import \{([^}]*)\} from '([^']+)';$/gm, (_m, names: string, spec: string) =>
        names
          .split(',')
          .map((n) => n.trim())
          .filter(Boolean)
          .map((n) => {
            const [orig, local] = n.split(/\s+as\s+/).map((s) => s.trim());
            return `const ${local ?? orig} = __bind(${JSON.stringify(spec)}, ${JSON.stringify(orig)});`;
          })
          .join('\n'),
      )
      .replace(/^export (const|function) (\w+)/gm, (_m, kind: string, name: string) => {
        exported.push(name);
        return `${kind} ${name}`;
      });
    if (/^\s*(import|export)\s/m.test(body)) throw new Error(`colorpipe gradients: unsupported module syntax in ${file}`);
    const nsOf = (spec: string): Ns => {
      if (spec.startsWith('./')) return load(spec.slice(2) + '.js');
      const list = namespacesFor(spec);
      return list.length === 1 ? list[0]! : Object.assign({}, ...list.slice().reverse());
    };
    const fn = new Function('__bind', '__ns', '__exports', `"use strict";\n${body}\n;${exported.map((n) => `__exports.${n} = ${n};`).join('\n')}`);
    fn(bind, nsOf, exportsObj);
    if (missing.length) exportsObj['__missing'] = missing;
    cache.set(file, exportsObj);
    return exportsObj;
  };

  for (const file of readdirSync(dir).filter((f) => f.endsWith('_grad.js')).sort()) {
    let mod: Ns;
    try {
      mod = load(file);
    } catch (err) {
      skipped.push(`${file}: ${(err as Error).message}`);
      continue;
    }
    const missing = mod['__missing'] as string[] | undefined;
    if (missing) {
      skipped.push(`${file}: missing ${missing.join(', ')}`);
      continue;
    }
    for (const [k, v] of Object.entries(mod)) {
      if (!k.endsWith('GradConfig')) continue;
      const cfg = v as GradConfig;
      if (tf.getGradient(cfg.kernelName) == null) tf.registerGradient(cfg);
      names.push(cfg.kernelName);
    }
  }
  registered = { registered: names, skipped };
  return registered;
}
