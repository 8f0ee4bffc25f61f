/**
 * Class labels against the model's head (issue 11): a label outside [0, numClasses) would train with a
 * cross-entropy of exactly 0 and no word (tf.oneHot of an out-of-range index is all zeros), and a shard set
 * with more classes than the head would silently lose the rest.
 *
 * - `checkClassCount`: before training, each shard folder's classes.json (what `pipe shard` writes) against
 *   model.numClasses: more classes than the head is a usage error saying what to set.
 * - `checkLabels`: per sample, a label outside the head is reported once (path and reason) and the sample
 *   trains without it (its colours are still good data). With no head (numClasses 0) labels are not used.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Stage, StageContext } from '../core/pipeline.js';
import { InvalidOptionError } from '../core/errors.js';
import type { LabSample } from '../types.js';

/**
 * @throws InvalidOptionError when a classes.json beside the shards names more classes than the model's head.
 */
export async function checkClassCount(shards: readonly string[], numClasses: number): Promise<void> {
  if (numClasses === 0) return;
  for (const dir of new Set(shards.map((s) => path.dirname(path.resolve(s))))) {
    const file = path.join(dir, 'classes.json');
    let classes: unknown;
    try {
      classes = JSON.parse(await fsp.readFile(file, 'utf8'));
    } catch {
      continue; // none (or unreadable): the per-sample check still guards the labels
    }
    const n = Array.isArray(classes) ? classes.length : classes !== null && typeof classes === 'object' ? Object.keys(classes).length : 0;
    if (n > numClasses) {
      throw new InvalidOptionError(
        `${file} names ${n} classes but the model's head has ${numClasses} (model.numClasses): set model.numClasses to ${n} in the config, or 0 for no class head`,
      );
    }
  }
}

/** The per-sample check (see the module comment). */
export function checkLabels<T extends LabSample & { url?: string }>(numClasses: number): Stage<T, T> {
  return async function* checkLabelsStage(source: AsyncIterable<T>, ctx: StageContext): AsyncGenerator<T> {
    for await (const s of source) {
      if (numClasses > 0 && s.cls !== undefined && !(Number.isInteger(s.cls) && s.cls >= 0 && s.cls < numClasses)) {
        const where = s.position ? `${s.position.shard}#${s.key}` : s.key;
        ctx.reporter.report('labels', where, `class label ${s.cls} outside the model's ${numClasses} classes (0..${numClasses - 1}): trained without a label`);
        const { cls: _dropped, ...rest } = s;
        yield rest as T;
        continue;
      }
      yield s;
    }
  };
}
