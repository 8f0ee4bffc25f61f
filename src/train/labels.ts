/**
 * Class labels against the model's head (issue 11): a label outside [0, numClasses) would train with a
 * cross-entropy of exactly 0 and no word (tf.oneHot of an out-of-range index is all zeros), and a shard set
 * with more classes than the head would silently lose the rest.
 *
 * - `checkClassCount`: before training, each shard folder's classes.json (what `pipe shard` writes) against
 *   model.numClasses: more classes than the head is a usage error saying what to set.
 * - `labelProblem`: per sample, in the loader's merge (loader/merge.ts), a label outside the head is reported
 *   once per run (path and reason, whichever process read it) and the sample trains without it (its colours
 *   are still good data). With no head (numClasses 0) labels are not used.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InvalidOptionError } from '../core/errors.js';

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

/**
 * Why class label `cls` cannot train a head of `numClasses` (outside [0, numClasses)), or null when it can or
 * when there is no head (numClasses 0: labels are not used). The loader's merge applies it to every sample,
 * reporting each sample once per run and training it without the label (merge.ts).
 */
export function labelProblem(cls: number, numClasses: number): string | null {
  if (numClasses === 0 || (Number.isInteger(cls) && cls >= 0 && cls < numClasses)) return null;
  return `class label ${cls} outside the model's ${numClasses} classes (0..${numClasses - 1}): trained without a label`;
}
