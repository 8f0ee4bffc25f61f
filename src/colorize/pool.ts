/**
 * The worker pool of colorize's prepare and write stages (worker.ts: decode and prepare; compose and encode).
 * A leaf of the colorize room: it names the worker file by URL and imports none of the stages, so nothing
 * here pulls the stages into the workers or the workers into the stages.
 */
import os from 'node:os';
import { Piscina } from 'piscina';
import { invalidOption, positiveInt } from '../core/validate.js';

/** The worker file, next to this one in src/ or dist/src/. */
export const COLORIZE_WORKER = new URL('./worker.js', import.meta.url).href;

/**
 * A pool for the prepare and write stages (worker.ts), `threads` threads, each taking up to `tasksPerWorker`
 * tasks at once (default 2).
 *
 * Why several tasks per worker: piscina queues tasks on the main thread and hands one to a worker when it has
 * room. The main thread can be busy for a long time inside a synchronous engine call (wasm, cpu); tasks
 * already handed over keep the workers going meanwhile, tasks still queued do not. So give each worker as
 * many tasks as the stages keep in flight (colorizeGraph does); the stages bound what is in flight (the pool
 * has no maxQueue).
 * @throws InvalidOptionError for a wrong thread or task count.
 */
export function createColorizePool(threads = os.availableParallelism(), tasksPerWorker = 2): Piscina {
  positiveInt(threads, 'options.threads');
  positiveInt(tasksPerWorker, 'tasksPerWorker');
  return new Piscina({ filename: COLORIZE_WORKER, minThreads: threads, maxThreads: threads, concurrentTasksPerWorker: tasksPerWorker });
}

/**
 * The pool options shared by prepare and write, validated: `given` ('inline', a caller's pool, or undefined:
 * the stage creates a colorize pool of `threads`) and `concurrency`, images in flight (default: the pool's
 * threads + 1; 1 inline).
 * @throws InvalidOptionError at once for a wrong pool, threads or concurrency.
 */
export function poolSettings(options: { pool?: Piscina | 'inline'; threads?: number; concurrency?: number }): {
  given: Piscina | 'inline' | undefined;
  threads: number;
  concurrency: number;
} {
  const given = options.pool;
  if (given !== undefined && given !== 'inline' && !(given instanceof Piscina)) {
    throw invalidOption('options.pool', "'inline' or a Piscina pool", given);
  }
  const threads = positiveInt(options.threads ?? os.availableParallelism(), 'options.threads');
  const concurrency = positiveInt(
    options.concurrency ?? (given === 'inline' ? 1 : (given instanceof Piscina ? given.options.maxThreads : threads) + 1),
    'options.concurrency',
  );
  return { given, threads, concurrency };
}
