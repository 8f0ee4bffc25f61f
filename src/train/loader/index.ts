/**
 * The training loader: shards -> decode (train crop) -> Lab + filter, scaled over processes, not threads
 * (one Node process running sharp tops out near 500-600 img/s however many threads it is given; separate
 * processes scale: issue 2, ../shared/device/README.md).
 *
 * The rooms of this folder:
 * - rank-stream.ts: a rank's stream. `world` ranks read disjoint shards (rank r reads the epoch's permuted
 *   shard indices i with i % world === r: see shards.ts), each raw sample decoded (libvips Lab, the faster
 *   path: see decode.ts) and filtered into one frame: a kept sample as quantized bytes (L * 2.55 and ab + 128,
 *   one byte each) or a 'drop' with the reason.
 * - frames.ts: those frames on a child's binary pipe, the hub's messages, the conversion to floats.
 * - processes.ts: where rank streams run: `processes` child processes (child.ts; child c hosts the ranks r
 *   with r % processes === c), or the calling thread with `processes: 0` (same frames, same order, same bytes).
 * - merge.ts: the parent's fixed merge order (shard place, sample index, rank), epoch by epoch, replay first.
 * - via-hub.ts, hub.ts: with processes, the merge runs in a worker thread (the hub) and the main thread only
 *   receives finished samples.
 * - resume.ts: LoaderResume and the one path that builds it (the shuffle stage's saved state).
 *
 * Order is deterministic, whatever the number of processes and however fast each one is: see merge.ts.
 *
 * Errors. Bad input (decode failures, shard damage) is reported to ctx.reporter as it would be in-process;
 * filtered images are counted with recordFiltered (filter.ts). A child that dies ends the run with a
 * ColorpipeError 'ERR_LOADER_CHILD' (processes.ts); the run's last checkpoint resumes exactly. An error inside
 * a child is rethrown in the parent with its code. InvalidOptionError for bad options is thrown by the
 * factory; ColorpipeError 'ERR_NO_SAMPLES' when a whole epoch of an endless run yields nothing; an abort
 * surfaces as the signal's reason.
 *
 * Cleanup: on an early stop, an abort or an error, every child is sent SIGTERM (SIGKILL after 2 s), its pipes
 * are closed, and the loader's iterator returns only once every child and the hub thread have exited. A child
 * also exits by itself when its stdin closes, so a parent killed outright leaves no orphan decoding.
 */
import os from 'node:os';
import type { StageContext } from '../../core/pipeline.js';
import type { Config } from '../../config.js';
import { finiteNumber, invalidOption, nonNegativeInt, object, positiveInt } from '../../core/validate.js';
import { expandShardSpec } from '../../webdataset/spec.js';
import { decodeSettings } from '../../stages/decode.js';
import { colourFilter, recordFiltered } from '../../stages/filter.js';
import type { LoaderSample } from './frames.js';
import type { LoaderJob } from './rank-stream.js';
import { loaderCore, type LoaderCore } from './merge.js';
import { viaHub } from './via-hub.js';
import { checkResume, resumeAfter, type LoaderResume } from './resume.js';

export type { LoaderSample } from './frames.js';
export type { LoaderResume } from './resume.js';
export { loaderResumeFrom } from './resume.js';

export interface LoaderOptions {
  /** Shard spec: brace ranges, globs, paths, or a list (see expandShardSpec). */
  urls: string | string[];
  /** augment (resize, crop, flip, scaleJitter), filter (thresholds, minSide), loader (processes, limitInputPixels). */
  config: Config;
  /** Seeds the shard order per epoch and every crop and flip (default config.train.seed). */
  seed?: number;
  /** Child processes; 0 runs everything in this process (default config.loader.processes; 0 there = cores). */
  processes?: number;
  /** Ranks the shards are split over; fixes the order (default: resume.world, else max(1, processes)),
   *  capped at the number of shards when not given explicitly. */
  world?: number;
  /**
   * The ranks (streams) of the world this loader reads, merged in order (default: all of them). A data-parallel
   * run gives each of its ranks a disjoint part of the world.
   */
  ranks?: number[];
  /** First epoch (default 0). */
  startEpoch?: number;
  /** Epochs to run (default 1; Infinity runs until the consumer stops). */
  epochs?: number;
  resume?: LoaderResume | null;
  /** Decodes in flight per process (default max(2, ceil(2 * cores / processes))). */
  concurrency?: number;
}

/**
 * The training loader, a Source for `pipeline()` (see the module comment).
 * @throws InvalidOptionError at once for a wrong option; at the first `next()` when the shard spec matches
 *   nothing or the resume state does not fit the shard list.
 * @example
 * const sh = shuffle({ size: 512, seed: 1 });
 * for await (const b of pipeline(loader({ urls: 'data/*.tar', config, epochs: Infinity }), sh, batch({ size: 32 }))) ...
 * // later: loader({ ..., resume: loaderResumeFrom(sh.state()) }) continues exactly (see resume.ts)
 */
export function loader(options: LoaderOptions): (ctx: StageContext) => AsyncIterable<LoaderSample> {
  object(options, 'options');
  const { urls, config } = options;
  if (config === null || typeof config !== 'object' || !config.augment || !config.filter || !config.loader) {
    throw invalidOption('options.config', 'a Config (makeConfig / loadConfig)', config);
  }
  const seed = finiteNumber(options.seed ?? config.train.seed, 'options.seed');
  const cores = os.availableParallelism();
  const processes = nonNegativeInt(options.processes ?? (config.loader.processes || cores), 'options.processes');
  const startEpoch = nonNegativeInt(options.startEpoch ?? 0, 'options.startEpoch');
  const epochs = options.epochs ?? 1;
  if (epochs !== Infinity) positiveInt(epochs, 'options.epochs');
  const resume = options.resume ?? null;
  if (resume !== null) checkResume(resume, startEpoch, epochs);
  const explicitWorld = options.world ?? resume?.world;
  if (explicitWorld !== undefined) positiveInt(explicitWorld, options.world !== undefined ? 'options.world' : 'options.resume.world');
  if (options.world !== undefined && resume?.world !== undefined && options.world !== resume.world) {
    throw invalidOption('options.world', `options.resume.world (${resume.world})`, options.world);
  }
  const { concurrency: _unused, ...decode } = decodeSettings({
    mode: 'train',
    resize: config.augment.resize,
    crop: config.augment.crop,
    flip: config.augment.flip,
    scaleJitter: config.augment.scaleJitter ?? null,
    seed,
    limitInputPixels: config.loader.limitInputPixels,
    minSide: config.filter.minSide,
  });
  const filter = colourFilter(config.filter);
  const concurrency = options.concurrency ?? Math.max(2, Math.ceil((2 * cores) / Math.max(1, processes)));
  positiveInt(concurrency, 'options.concurrency');

  return async function* loaderSource(ctx: StageContext): AsyncGenerator<LoaderSample> {
    const list = await expandShardSpec(urls);
    const world = explicitWorld ?? Math.max(1, Math.min(processes, list.length));
    if (world > list.length) {
      throw invalidOption('options.world', `at most ${list.length} ranks (one per shard)`, world);
    }
    const ranks = options.ranks ?? Array.from({ length: world }, (_, r) => r);
    if (ranks.length === 0 || ranks.some((r) => !Number.isInteger(r) || r < 0 || r >= world)) {
      throw invalidOption('options.ranks', `ranks in [0, ${world - 1}]`, ranks);
    }
    const after = resumeAfter(resume, world);
    const first = resume?.epoch ?? startEpoch;
    const job: LoaderJob = {
      urls: list,
      world,
      ranks,
      seed,
      startEpoch: first,
      epochs: epochs === Infinity ? null : startEpoch + epochs - first,
      after,
      decode,
      filter,
      concurrency,
    };
    const core: LoaderCore = {
      job,
      processes: Math.min(processes, ranks.length),
      end: startEpoch + epochs,
      endless: epochs === Infinity,
      replay: resume?.replay ?? [],
      resumeEpoch: resume?.epoch ?? null,
      spec: urls,
      numClasses: config.model?.numClasses ?? 0,
    };
    if (core.processes === 0) {
      yield* loaderCore(core, ctx, (key, reason) => recordFiltered(ctx.reporter, key, reason));
    } else {
      yield* viaHub(core, ctx);
    }
  };
}
