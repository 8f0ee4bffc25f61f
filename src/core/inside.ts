/**
 * Paths that one file names another by (a model.json's weight files, a run's state.json checkpoint, a run's
 * `model` link) come from folders colorpipe did not necessarily write: models and runs are downloaded and shared.
 * Such a path must stay inside its folder: an absolute path, a `..` or a symbolic link that leads out is refused,
 * so a folder cannot make colorpipe read (and then train on, export or share) any other file.
 */
import { promises as fsp } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { InvalidOptionError, reasonOf } from './errors.js';

/** What a model may read: the refusal's last words for a model folder. */
export const MODEL_RULE = 'a model reads only files in its own folder';
/** What a run may read: the refusal's last words for a run directory. */
export const RUN_RULE = 'a run reads only files in its own directory';

/**
 * Why `name` does not stay inside `dir` (absolute, `..`, or a link whose real path leads out of the folder's
 * real path), or null when it does. Naming the folder itself counts as leading out (it is no file in it).
 * @throws the file-system error of resolving either path (ENOENT for one that is missing).
 */
export async function leadsOut(dir: string, name: string): Promise<string | null> {
  if (isAbsolute(name) || /^[a-zA-Z]:[\\/]/.test(name)) return 'is an absolute path';
  if (name.split(/[\\/]/).includes('..')) return 'leads out of the folder (..)';
  const [real, realDir] = await Promise.all([fsp.realpath(resolve(dir, name)), fsp.realpath(dir)]);
  const rel = relative(realDir, real);
  if (rel === '' || rel === '..' || rel.startsWith('..' + sep) || isAbsolute(rel)) return 'is a link that leads out of the folder';
  return null;
}

/**
 * `name`, which `owner`'s `field` holds, resolved inside `dir`, or one line refusing it: `OWNER: FIELD "NAME"
 * WHY; RULE` (a missing file: `OWNER: cannot read FIELD "NAME": REASON`).
 * @throws InvalidOptionError naming the file and the field.
 */
export async function insideFolder(dir: string, name: unknown, owner: string, field: string, rule = MODEL_RULE): Promise<string> {
  const shown = JSON.stringify(name);
  if (typeof name !== 'string' || name === '') throw new InvalidOptionError(`${owner}: ${field} ${shown} is not a file name; ${rule}`);
  let why: string | null;
  try {
    why = await leadsOut(dir, name);
  } catch (err) {
    throw new InvalidOptionError(`${owner}: cannot read ${field} ${shown}: ${reasonOf(err)}`);
  }
  if (why !== null) throw new InvalidOptionError(`${owner}: ${field} ${shown} ${why}; ${rule}`);
  return resolve(dir, name);
}
