/**
 * The `files` source: image files from a directory (recursive), a glob, or one file, as Samples in a stable
 * order, each keeping its path relative to the input root so outputs can mirror the input tree.
 *
 * Order: relative paths sorted by code point (the same on every machine and locale). Hidden files and folders
 * (names starting with '.') are skipped. The extension filter is case-insensitive and applies to directories and
 * globs; a single file named explicitly is always taken (decode reports it if it is not an image).
 *
 * Files are read lazily, one per pulled item (put `prefetch` or `parallelMap` after decode for overlap). An
 * unreadable file (vanished, permission denied, a directory named like an image) is reported to ctx.reporter and
 * the stream goes on. A missing input root is a usage error: InvalidOptionError at the first `next()`.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import fg from 'fast-glob';
import type { StageContext } from '../core/pipeline.js';
import type { Sample } from '../types.js';
import { InvalidOptionError, reasonOf } from '../core/errors.js';
import { abortErrorOf, throwIfAborted } from '../core/abort.js';
import { invalidOption, object, rankAndWorld, string } from '../core/validate.js';
import { IMAGE_EXTENSIONS } from '../webdataset/tar.js';

export interface ImageFile {
  /** Absolute path. */
  abs: string;
  /** POSIX path relative to the input root (for a single file, its basename). */
  relPath: string;
}

/** Default image extensions (lower case, no dot). */
export const DEFAULT_IMAGE_EXTENSIONS: readonly string[] = IMAGE_EXTENSIONS;

function normalizeExtensions(extensions: readonly string[] | undefined): Set<string> {
  const list = extensions ?? DEFAULT_IMAGE_EXTENSIONS;
  if (!Array.isArray(list) || list.length === 0 || list.some((e) => typeof e !== 'string' || e.replace(/^\./, '') === '')) {
    throw invalidOption('options.extensions', 'non-empty array of extensions', extensions);
  }
  return new Set(list.map((e) => e.replace(/^\./, '').toLowerCase()));
}

function extOf(p: string): string {
  const base = p.slice(p.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot <= 0 ? '' : base.slice(dot + 1).toLowerCase();
}

function toPosix(p: string): string {
  return path.sep === '/' ? p : p.split(path.sep).join('/');
}

function compareCodePoints(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Lists the image files under `input` (a directory, searched recursively; a glob, relative to its static
 * prefix; or one file) without reading them, sorted by relative path.
 * @throws InvalidOptionError when the input does not exist or a glob matches nothing.
 */
export async function listImageFiles(
  input: string,
  extensions?: readonly string[],
  onSkip: (path: string, reason: string) => void = () => undefined,
): Promise<ImageFile[]> {
  string(input, 'options.input');
  const exts = normalizeExtensions(extensions);
  const stat = await fsp.stat(input).catch(() => null);
  if (stat?.isFile()) {
    const abs = path.resolve(input);
    return [{ abs, relPath: path.basename(abs) }];
  }
  let root: string;
  let pattern: string;
  if (stat?.isDirectory()) {
    root = path.resolve(input);
    const out = (await walkDirectory(root, onSkip)).filter((rel) => exts.has(extOf(rel))).sort(compareCodePoints);
    return out.map((rel) => ({ abs: path.join(root, rel), relPath: rel }));
  } else if (fg.isDynamicPattern(toPosix(input))) {
    const posix = toPosix(input);
    const parts = posix.split('/');
    let i = 0;
    while (i < parts.length - 1 && (parts[i] === '' || !fg.isDynamicPattern(parts[i]!))) i++;
    root = path.resolve(parts.slice(0, i).join('/') || '.');
    pattern = parts.slice(i).join('/');
  } else {
    throw new InvalidOptionError(`Expected an existing file, directory or glob for options.input but received ${input}`);
  }
  // Globs do not follow symlinked directories (fast-glob has no loop guard: a link to an ancestor never ends);
  // a directory input does, each real directory once (walkDirectory).
  const found = await fg(pattern, { cwd: root, onlyFiles: true, dot: false, unique: true, followSymbolicLinks: false });
  const out = found
    .filter((rel) => exts.has(extOf(rel)))
    .sort(compareCodePoints)
    .map((rel) => ({ abs: path.join(root, rel), relPath: rel }));
  if (out.length === 0 && !stat?.isDirectory()) {
    throw new InvalidOptionError(`Expected image files for options.input but ${input} matches none`);
  }
  return out;
}

/**
 * Every regular file under `root` (relative POSIX paths; hidden names skipped), following symlinks to files
 * and directories but entering each real directory once: a link back to an ancestor (a loop) or to a
 * directory already walked is passed to `onSkip` once (callers print it as a notice) and not entered, so a cycle of links can
 * neither hang the walk nor list a file twice. A dangling link or a chain of links that loops (ELOOP) is
 * reported too.
 */
async function walkDirectory(root: string, onSkip: (path: string, reason: string) => void): Promise<string[]> {
  const seen = new Set<string>([await fsp.realpath(root)]);
  const out: string[] = [];
  const pending: string[] = [''];
  while (pending.length > 0) {
    const rel = pending.shift()!;
    const dir = path.join(root, rel);
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      onSkip(dir, `cannot read directory: ${reasonOf(err)}`);
      continue;
    }
    entries.sort((a, b) => compareCodePoints(a.name, b.name));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const childRel = rel === '' ? e.name : `${rel}/${e.name}`;
      const abs = path.join(root, childRel);
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        try {
          const st = await fsp.stat(abs);
          isDir = st.isDirectory();
          isFile = st.isFile();
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          onSkip(abs, code === 'ELOOP' ? 'symbolic link loop' : code === 'ENOENT' ? 'dangling symbolic link' : reasonOf(err));
          continue;
        }
      }
      if (isFile) out.push(childRel);
      else if (isDir) {
        let real: string;
        try {
          real = await fsp.realpath(abs);
        } catch (err) {
          onSkip(abs, reasonOf(err));
          continue;
        }
        if (seen.has(real)) {
          onSkip(abs, `symbolic link to a directory already listed (${real}): not entered again`);
          continue;
        }
        seen.add(real);
        pending.push(childRel);
      }
    }
  }
  return out;
}

export interface FilesOptions {
  /** A directory (recursive), a glob, or one file. */
  input: string;
  /** Extensions to take (default: jpg jpeg png webp tif tiff gif avif), case-insensitive. */
  extensions?: string[];
  /** Take every world-th file starting at rank (default 0 of 1): disjoint, stable parts for scale-out. */
  rank?: number;
  world?: number;
}

/** A file sample: relPath is always set; index is the file's position in the sorted listing. */
export type FileSample = Sample & { relPath: string; index: number };

/**
 * A Source of image files as Samples: key = relPath without its extension, url = absolute path, image = the
 * file's bytes, imageExt = its lower-case extension.
 * @throws InvalidOptionError at once for bad options; at the first `next()` for a missing input.
 */
export function files(options: FilesOptions): (ctx: StageContext) => AsyncIterable<FileSample> {
  object(options, 'options');
  string(options.input, 'options.input');
  normalizeExtensions(options.extensions);
  const { rank, world } = rankAndWorld(options);
  return async function* filesSource(ctx: StageContext): AsyncGenerator<FileSample> {
    const list = await listImageFiles(options.input, options.extensions, (p, reason) => ctx.reporter.notice('files', p, reason));
    const mine: (ImageFile & { index: number })[] = [];
    for (let i = rank; i < list.length; i += world) mine.push({ ...list[i]!, index: i });
    yield* readImageFiles(mine)(ctx);
  };
}

/**
 * A Source that reads files already listed (and chosen: colorize's plan drops the outputs that exist), one
 * per pull, as files() yields them; `index` is passed on. An unreadable file is reported to ctx.reporter (by
 * its relative path, or its absolute one with `reportAs: 'abs'`) and the stream goes on. AbortError (the
 * signal's reason) when the pipeline aborts.
 */
export function readImageFiles(
  list: readonly (ImageFile & { index: number })[],
  options: { reportAs?: 'relPath' | 'abs' } = {},
): (ctx: StageContext) => AsyncIterable<FileSample> {
  const reportAs = options.reportAs ?? 'relPath';
  return async function* readFilesSource(ctx: StageContext): AsyncGenerator<FileSample> {
    for (const f of list) {
      throwIfAborted(ctx.signal);
      let image: Buffer;
      try {
        image = await fsp.readFile(f.abs, { signal: ctx.signal });
      } catch (err) {
        if (ctx.signal.aborted) throw abortErrorOf(ctx.signal);
        ctx.reporter.report('files', reportAs === 'abs' ? f.abs : f.relPath, `cannot read file: ${reasonOf(err)}`, err);
        continue;
      }
      const imageExt = extOf(f.relPath);
      const dot = f.relPath.lastIndexOf('.');
      const key = imageExt === '' ? f.relPath : f.relPath.slice(0, dot);
      yield { key, url: f.abs, relPath: f.relPath, image, imageExt, fields: { [imageExt]: image }, index: f.index };
    }
  };
}
