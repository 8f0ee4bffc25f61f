/**
 * The ONNX Runtime training engine: the training engine contract (src/network/train-engine.ts) over the
 * training graph (train-graph.ts) run by onnxruntime-node's ordinary inference session, in this thread.
 *
 * State: two sets of preallocated arrays (train-state.ts). A step feeds set A (views: no copy) and has ONNX
 * Runtime write the next weights and slots into set B's views (preallocated outputs); the next step goes from
 * B to A. Nothing is allocated per step but the batch's small tensors. Weights and slots cross in colorpipe's
 * names and layout only at the boundary (checkpoints, setWeights), so a run can move between engines.
 *
 * One session per batch size and mode (train, eval), made on first use: shapes are static, which lets ONNX
 * Runtime plan its memory once. Determinism: the same weights, slots and batch give bit-identical results at a
 * fixed thread count (test/onnx/train-engine.test.ts checks it), which is what exact resume needs.
 */
import os from 'node:os';
import type * as Ort from 'onnxruntime-node';
import type { Config } from '../config.js';
import { EngineUnavailableError, InvalidOptionError } from '../core/errors.js';
import type { LabBatch } from '../types.js';
import { layerTable } from '../network/table.js';
import { ADAM_BETA1, ADAM_BETA2, ADAM_EPSILON, learningRateAt, slotNames } from '../network/training.js';
import { orderWeights, type NamedWeight } from '../network/weights.js';
import type { Evaluation, OptimizerState, StepLosses, TrainEngine } from '../network/train-engine.js';
import { initialWeights } from './init.js';
import { loadOrt, requireCudaProvider } from './session.js';
import { gradOf, nextOf, trainModel, TRAIN_IO, type TrainGraphOptions } from './train-graph.js';
import type { Formulation } from './train-ops.js';
import { newStateSet, readSlots, readWeights, slotView, stateLayout, weightView, type StateEntry, type StateSet } from './train-state.js';

export type OnnxTrainDevice = 'cpu' | 'webgpu' | 'cuda';

export interface OnnxTrainOptions {
  config: Config;
  /** Execution provider (default cpu). */
  device?: OnnxTrainDevice;
  /** CPU intra-op threads (default: the cores this process may use). */
  threads?: number;
  /** How gradients are written (train-ops.ts; default the fastest measured). */
  formulation?: Formulation;
  /** Fail rather than run any node of the graph on the CPU when the device is another (tests). */
  strictDevice?: boolean;
}

export interface OnnxTrainEngine extends TrainEngine {
  readonly runtime: 'onnx';
  /** The training graph's bytes for a batch size (benchmarks, tests). */
  graph(batch: number): Uint8Array;
  /** The losses and every trainable weight's gradient (colorpipe's names and layout) at the current weights; changes nothing. */
  gradients(batch: LabBatch): Promise<{ losses: StepLosses; gradients: NamedWeight[] }>;
}

interface Session {
  session: Ort.InferenceSession;
  /** Per direction (the set read): the state's feeds and the fetches writing the other set. */
  feeds: [Record<string, Ort.Tensor>, Record<string, Ort.Tensor>];
  fetches: [Record<string, Ort.Tensor>, Record<string, Ort.Tensor>];
  losses: Float32Array;
}

/**
 * An ONNX Runtime training engine for `config`: a fresh network (the config's seed) until setWeights.
 * @throws EngineUnavailableError when onnxruntime-node or the device is unavailable.
 */
export async function onnxTrainEngine(o: OnnxTrainOptions): Promise<OnnxTrainEngine> {
  const ort = await loadOrt();
  const { config } = o;
  const device = o.device ?? 'cpu';
  if (device === 'cuda') requireCudaProvider(ort, 'use --device cpu, or --engine torch for GPUs');
  const threads = o.threads ?? os.availableParallelism();
  const t = layerTable(config.model);
  const S = t.inputSize;
  const K = t.classifier.length ? t.numClasses : 0;
  const optimizer = config.train.optimizer === 'adadelta' ? 'adadelta' : 'adam';
  const [s0, s1] = slotNames(optimizer);
  const layout = stateLayout(t);
  const { entries, groups } = layout;
  const trainable = entries.filter((e) => e.trainable);
  const sets: [StateSet, StateSet] = [newStateSet(layout), newStateSet(layout)];
  let cur = 0;
  let iterations = 0;
  const writeWeights = (ws: NamedWeight[]) => ws.forEach((w, i) => weightView(sets[cur], entries[i]!).set(entries[i]!.toGraph(w.data)));
  writeWeights(initialWeights(t, config.train.seed));

  const options: Ort.InferenceSession.SessionOptions = {
    executionProviders: [device],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    // Errors only: ONNX Runtime's warnings about the generated graph are not the user's to act on.
    logSeverityLevel: 3,
    extra: {
      session: {
        // Idle intra-op threads sleep instead of spinning: the loader's decode processes share the cores (measured
        // under load on 2 cores: steps 19-36% faster without spinning).
        'intra_op.allow_spinning': '0',
        ...(o.strictDevice && device !== 'cpu' ? { disable_cpu_ep_fallback: '1' } : {}),
      },
    },
  };
  const graphOf = (batch: number, mode: TrainGraphOptions['mode']) => trainModel(t, { batch, mode, optimizer, alpha: config.train.alpha, ...(o.formulation ? { formulation: o.formulation } : {}) });
  const tensor = (data: Float32Array, dims: readonly number[]) => new ort.Tensor('float32', data, dims);
  const sessions = new Map<string, Promise<Session>>();
  const open = async (batch: number, mode: TrainGraphOptions['mode']): Promise<Session> => {
    let session: Ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(graphOf(batch, mode), options);
    } catch (err) {
      const msg = (err as Error).message.split('\n')[0];
      throw new EngineUnavailableError(`ONNX Runtime could not start the training graph on ${device}: ${msg}`, { cause: err, short: `onnx ${device}: ${msg}` });
    }
    const feeds = [0, 1].map((c) => stateFeeds(sets[c]!, mode === 'train')) as Session['feeds'];
    const losses = new Float32Array(3);
    const fetches = [0, 1].map((c) => {
      const f: Record<string, Ort.Tensor> = { [TRAIN_IO.losses]: tensor(losses, [3]) };
      if (mode !== 'train') return f;
      const into = sets[1 - c]!;
      for (const group of groups) {
        f[nextOf(group.name)] = tensor(weightView(into, group), [group.size]);
        if (!group.trainable) continue;
        f[nextOf(`${group.name}/${s0}`)] = tensor(slotView(into, 0, group), [group.size]);
        f[nextOf(`${group.name}/${s1}`)] = tensor(slotView(into, 1, group), [group.size]);
      }
      return f;
    }) as Session['fetches'];
    return { session, feeds, fetches, losses };
  };
  const stateFeeds = (set: StateSet, slots: boolean) => {
    const f: Record<string, Ort.Tensor> = {};
    // Each weight for the layers, and (training) each trainable group's weights and slots for the update: views of
    // the same memory.
    for (const e of entries) f[e.name] = tensor(weightView(set, e), e.graphShape);
    if (slots) {
      for (const group of groups) {
        if (!group.trainable) continue;
        f[group.name] = tensor(weightView(set, group), [group.size]);
        f[`${group.name}/${s0}`] = tensor(slotView(set, 0, group), [group.size]);
        f[`${group.name}/${s1}`] = tensor(slotView(set, 1, group), [group.size]);
      }
    }
    return f;
  };
  const sessionFor = (batch: number, mode: TrainGraphOptions['mode']) => {
    const key = `${mode}:${batch}`;
    let s = sessions.get(key);
    if (!s) {
      s = open(batch, mode);
      sessions.set(key, s);
      s.catch(() => sessions.delete(key));
    }
    return s;
  };

  const batchFeeds = (b: LabBatch): Record<string, Ort.Tensor> => {
    if (b.height !== S || b.width !== S) throw new InvalidOptionError(`Expected ${S}x${S} batches (config.model.inputSize) but received ${b.height}x${b.width}`);
    const n = b.size;
    if (b.L.length < n * S * S || b.ab.length < n * S * S * 2) throw new InvalidOptionError(`Expected L of length ${n * S * S} and ab of ${n * S * S * 2} but received ${b.L.length} and ${b.ab.length}`);
    const f: Record<string, Ort.Tensor> = {
      [TRAIN_IO.L]: tensor(b.L.subarray(0, n * S * S), [n, 1, S, S]),
      [TRAIN_IO.ab]: tensor(b.ab.subarray(0, n * S * S * 2), [n, S, S, 2]),
    };
    if (K > 0) {
      const onehot = new Float32Array(n * K);
      let labelled = 0;
      for (let i = 0; i < n; i++) {
        const c = b.cls[i]!;
        if (c < 0) continue;
        labelled++;
        if (c < K) onehot[i * K + c] = 1;
      }
      f[TRAIN_IO.onehot] = tensor(onehot, [n, K]);
      f[TRAIN_IO.ceWeight] = tensor(Float32Array.of(labelled ? 1 / labelled : 0), []);
    }
    return f;
  };

  // Steps and evaluations run one at a time, in call order (each reads the set the previous one wrote).
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const r = queue.then(f);
    queue = r.catch(() => undefined);
    return r;
  };
  let released = false;
  const live = () => {
    if (released) throw new InvalidOptionError('The ONNX training engine was released');
  };

  const step = (b: LabBatch) =>
    serial(async (): Promise<StepLosses> => {
      live();
      const feeds = batchFeeds(b);
      const s = await sessionFor(b.size, 'train');
      const it = iterations + 1;
      const lr = learningRateAt(config.train, it);
      if (optimizer === 'adam') {
        // train-graph.ts adam(): the denominator's scale and epsilon, divided by the step (0: no update).
        const size = lr / (1 - Math.pow(ADAM_BETA1, it));
        const ibc2 = 1 / (1 - Math.pow(ADAM_BETA2, it));
        feeds[TRAIN_IO.rate] = tensor(Float32Array.of(size > 0 ? Math.sqrt(ibc2) / size : 0), []);
        feeds[TRAIN_IO.epsilon] = tensor(Float32Array.of(size > 0 ? ADAM_EPSILON / size : Infinity), []);
      } else {
        feeds[TRAIN_IO.rate] = tensor(Float32Array.of(lr), []);
      }
      await s.session.run({ ...s.feeds[cur as 0 | 1], ...feeds }, s.fetches[cur as 0 | 1]);
      cur = 1 - cur;
      iterations = it;
      return { loss: s.losses[0]!, mse: s.losses[1]!, ce: s.losses[2]! };
    });

  const evaluate = (b: LabBatch) =>
    serial(async (): Promise<Evaluation> => {
      live();
      const feeds = batchFeeds(b);
      const s = await sessionFor(b.size, 'eval');
      const out = await s.session.run({ ...s.feeds[cur as 0 | 1], ...feeds }, [TRAIN_IO.losses, TRAIN_IO.pred]);
      const [loss, mse, ce] = out[TRAIN_IO.losses]!.data as Float32Array;
      return { loss: loss!, mse: mse!, ce: ce!, ab: (out[TRAIN_IO.pred]!.data as Float32Array).slice() };
    });

  const gradients = (b: LabBatch) =>
    serial(async () => {
      live();
      const feeds = batchFeeds(b);
      const s = await sessionFor(b.size, 'gradients');
      const out = await s.session.run({ ...s.feeds[cur as 0 | 1], ...feeds });
      const [loss, mse, ce] = out[TRAIN_IO.losses]!.data as Float32Array;
      const grads = trainable.map((e) => {
        const data = new Float32Array(e.size);
        e.fromGraph(out[gradOf(e.name)]!.data as Float32Array, data);
        return { name: e.name, shape: [...e.shape], data };
      });
      return { losses: { loss: loss!, mse: mse!, ce: ce! }, gradients: grads };
    });

  return {
    runtime: 'onnx',
    gradients,
    device,
    describe: `onnxruntime ${ort.env.versions.node ?? ''} ${device}${device === 'cpu' ? ` (${threads} thread${threads === 1 ? '' : 's'})` : ''}, training graph`,
    world: 1,
    rank: 0,
    depth: 1,
    step,
    evaluate,
    graph: (batch) => graphOf(batch, 'train'),
    weights: () => serial(async () => readWeights(entries, sets[cur]!)),
    setWeights: (ws) => serial(async () => writeWeights(orderWeights(t, ws, 'the checkpoint'))),
    optimizerState: () =>
      serial(async (): Promise<OptimizerState> => ({
        iterations,
        slots: [...readSlots(entries, sets[cur]!, 0, s0), ...readSlots(entries, sets[cur]!, 1, s1)],
      })),
    setOptimizerState: (state) =>
      serial(async () => {
        const byName = new Map(state.slots.map((s) => [s.name, s]));
        const found = ([s0, s1] as const).map((suffix) =>
          trainable.map((e) => {
            const s = byName.get(`${e.name}/${suffix}`);
            if (!s || s.data.length !== e.size) {
              throw new InvalidOptionError(`The checkpoint's optimizer state has no ${e.name}/${suffix} of shape [${e.shape.join(', ')}] (${optimizer})`);
            }
            return [e, s.data] as [StateEntry, Float32Array];
          }),
        );
        found.forEach((list, slot) => list.forEach(([e, data]) => slotView(sets[cur]!, slot as 0 | 1, e).set(e.toGraph(data))));
        iterations = state.iterations;
      }),
    async release() {
      if (released) return;
      released = true;
      await queue;
      const all = await Promise.allSettled([...sessions.values()]);
      sessions.clear();
      // Every session released even if one fails to.
      await Promise.allSettled(all.map((r) => (r.status === 'fulfilled' ? r.value.session.release() : undefined)));
    },
  };
}
