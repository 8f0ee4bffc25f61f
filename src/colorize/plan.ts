/**
 * What colorize does with paths, decided before any image is read:
 * - checkPaths: --in exists; --out is not a file, not --in and not inside it (real paths: symlinks resolved).
 * - planFiles: the sorted input files (the files stage's listing), this rank's part (index % world === rank),
 *   each input's output path (outputFor), name collisions (a.jpg and a.png with --format png: the second is
 *   reported, never written over the first) and existing outputs (skipped unless overwrite).
 * - outputFor, isInside, realPathOf: the rules the write stage applies again, race-free, at each write.
 *
 * Errors: checkPaths throws InvalidOptionError (a usage error); planFiles throws listImageFiles' for a missing
 * input, and hands back (in `error`) what the reporter threw for a collision (BadInputError with onError
 * 'fail'), with the part of the plan made until then.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InvalidOptionError, type Reporter } from '../core/errors.js';
import { listImageFiles, type ImageFile } from '../stages/files.js';
import { rankAndWorld } from '../core/validate.js';
import { extFormat, formatExtension, type FormatChoice, type OutputFormat } from './formats.js';

/** True when `p` is `root` or inside it (both absolute, resolved). */
export function isInside(p: string, root: string): boolean {
  const rel = path.relative(root, p);
  return rel === '' || (!rel.startsWith('..' + path.sep) && rel !== '..' && !path.isAbsolute(rel));
}

/** The real path of `p`, or of its nearest existing ancestor joined with the rest (p need not exist). */
export async function realPathOf(p: string): Promise<string> {
  const abs = path.resolve(p);
  let head = abs;
  const tail: string[] = [];
  for (;;) {
    try {
      return path.join(await fsp.realpath(head), ...tail.reverse());
    } catch {
      const up = path.dirname(head);
      if (up === head) return abs;
      tail.push(path.basename(head));
      head = up;
    }
  }
}

/**
 * The output's format and relative path: 'same' is the format the input's extension names, else the one its
 * content shows (`detected`), else png; the extension changes only when it does not name the output format
 * (photo.JPEG stays photo.JPEG with 'same' or 'jpg'; photo.png becomes photo.jpg with 'jpg').
 */
export function outputFor(relPath: string, format: FormatChoice, detected: OutputFormat | null): { relPath: string; format: OutputFormat } {
  const base = relPath.slice(relPath.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  const ext = dot > 0 ? base.slice(dot + 1) : '';
  const byExt = extFormat(ext);
  const fmt: OutputFormat = format === 'same' ? (byExt ?? detected ?? 'png') : format === 'jpg' ? 'jpeg' : format;
  if (byExt === fmt) return { relPath, format: fmt };
  const stem = dot > 0 ? relPath.slice(0, relPath.length - ext.length - 1) : relPath;
  return { relPath: `${stem}.${formatExtension(fmt)}`, format: fmt };
}

/**
 * Checks --in and --out: the input exists, --out is not a file, not --in and not inside it (real paths).
 * @throws InvalidOptionError.
 */
export async function checkPaths(input: string, out: string): Promise<{ inputReal: string; inputIsFile: boolean; outReal: string }> {
  const st = await fsp.stat(input).catch(() => null);
  if (!st) throw new InvalidOptionError(`Expected an existing directory or image file for --in but ${input} does not exist`);
  const inputReal = await fsp.realpath(input);
  const outReal = await realPathOf(out);
  const outSt = await fsp.stat(out).catch(() => null);
  if (outSt && !outSt.isDirectory()) throw new InvalidOptionError(`Expected a directory for --out but ${out} is a file`);
  if (st.isDirectory() && isInside(outReal, inputReal)) {
    throw new InvalidOptionError(
      outReal === inputReal
        ? `Refusing to write into the input: --out ${out} is --in ${input}`
        : `Refusing to write into the input: --out ${out} is inside --in ${input}`,
    );
  }
  if (st.isFile() && outReal === inputReal) throw new InvalidOptionError(`Refusing to write over the input ${input}`);
  return { inputReal, inputIsFile: st.isFile(), outReal };
}

export interface PlanOptions {
  input: string;
  out: string;
  format: FormatChoice;
  overwrite: boolean;
  /** This process's part: the files whose index % world === rank (validated as the files stage does). */
  rank?: number;
  world?: number;
  /** Collisions are reported here (stage 'files', the input's absolute path). */
  reporter: Reporter;
}

export interface Plan {
  /** This rank's inputs. */
  total: number;
  /** The inputs to colorize, with their index in the full sorted listing. */
  todo: (ImageFile & { index: number })[];
  /** Inputs whose output exists (and no overwrite). */
  skipped: number;
  /** What the reporter threw (BadInputError with onError 'fail'): the plan stops there. */
  error?: unknown;
}

/**
 * The stable, disjoint part of this rank, then the outputs already there (skipped before any read) and the
 * inputs whose output another input of this run already claims (reported, left out).
 * @throws InvalidOptionError for a wrong rank or world, or a missing input.
 */
export async function planFiles(o: PlanOptions): Promise<Plan> {
  const { rank, world } = rankAndWorld(o);
  const outRoot = path.resolve(o.out);
  const all = await listImageFiles(o.input, undefined, (p, reason) => o.reporter.notice('files', p, reason));
  const mine = all.map((f, index) => ({ ...f, index })).filter((f) => f.index % world === rank);
  const plan: Plan = { total: mine.length, todo: [], skipped: 0 };
  const targets = new Map<string, string>();
  try {
    for (const f of mine) {
      const target = path.join(outRoot, ...outputFor(f.relPath, o.format, extFormat(path.extname(f.relPath))).relPath.split('/'));
      const first = targets.get(target);
      if (first !== undefined) {
        o.reporter.report('files', f.abs, `its output ${target} is also the output of ${first}; rename one of them or choose another --format`);
        continue;
      }
      targets.set(target, f.abs);
      if (!o.overwrite && (await fsp.lstat(target).then(() => true, () => false))) {
        plan.skipped++;
        continue;
      }
      plan.todo.push(f);
    }
  } catch (err) {
    plan.error = err;
  }
  return plan;
}
