/**
 * Shard lists: `expandShardSpec` takes brace ranges (`data-{000000..000099}.tar`, zero padding kept), brace
 * lists (`{train,val}-0.tar`), shell globs (fast-glob, sorted) and plain paths, or an array of those.
 */
import { promises as fsp } from 'node:fs';
import fg from 'fast-glob';
import { InvalidOptionError } from '../core/errors.js';

/** The largest list a brace expression may expand to (a typo like {0..999999999} must not eat the heap). */
const MAX_BRACE_EXPANSION = 1_000_000;

// ---------------------------------------------------------------------------------------------------------
// Shard specs

/**
 * Expands brace expressions like bash and Python's braceexpand: `{a,b}` lists, `{0..9}` and `{000..099}`
 * ranges (padded to the wider endpoint when either has a leading zero), optional step `{0..10..2}`,
 * descending ranges, nested and repeated braces. A brace with neither a top-level comma nor a range is literal.
 * @throws InvalidOptionError when the expansion would exceed a million strings.
 */
export function braceExpand(pattern: string): string[] {
  const out: string[] = [];
  expandInto(pattern, out);
  return out;
}

function expandInto(s: string, out: string[]): void {
  let searchFrom = 0;
  for (;;) {
    const open = s.indexOf('{', searchFrom);
    if (open < 0) {
      out.push(s);
      if (out.length > MAX_BRACE_EXPANSION) {
        throw new InvalidOptionError(`Expected a shard spec of at most ${MAX_BRACE_EXPANSION} names but it expands to more`);
      }
      return;
    }
    let depth = 0;
    let close = -1;
    const commas: number[] = [];
    for (let i = open; i < s.length; i++) {
      const ch = s[i];
      if (ch === '{') depth++;
      else if (ch === '}') {
        depth--;
        if (depth === 0) {
          close = i;
          break;
        }
      } else if (ch === ',' && depth === 1) commas.push(i);
    }
    if (close < 0) {
      // Unbalanced: the rest is literal.
      out.push(s);
      return;
    }
    const head = s.slice(0, open);
    const body = s.slice(open + 1, close);
    const tail = s.slice(close + 1);
    let alternatives: string[] | null = null;
    if (commas.length > 0) {
      alternatives = [];
      let start = open + 1;
      for (const c of commas) {
        alternatives.push(s.slice(start, c));
        start = c + 1;
      }
      alternatives.push(s.slice(start, close));
    } else {
      alternatives = rangeOf(body);
    }
    if (alternatives === null) {
      // A literal brace such as `{x}`: look for the next one after it.
      searchFrom = open + 1;
      continue;
    }
    for (const alt of alternatives) expandInto(head + alt + tail, out);
    return;
  }
}

function rangeOf(body: string): string[] | null {
  const m = /^(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?$/.exec(body);
  if (!m) return null;
  const [, a, b, stepText] = m as unknown as [string, string, string, string | undefined];
  const from = Number(a);
  const to = Number(b);
  const step = Math.abs(stepText === undefined ? 1 : Number(stepText)) || 1;
  const padded = /^-?0\d/.test(a) || /^-?0\d/.test(b);
  const width = padded ? Math.max(a.replace('-', '').length, b.replace('-', '').length) : 0;
  const count = Math.floor(Math.abs(to - from) / step) + 1;
  if (count > MAX_BRACE_EXPANSION) {
    throw new InvalidOptionError(`Expected a shard spec of at most ${MAX_BRACE_EXPANSION} names but {${body}} has ${count}`);
  }
  const dir = to >= from ? 1 : -1;
  const out: string[] = [];
  for (let k = 0, v = from; k < count; k++, v += dir * step) {
    const digits = String(Math.abs(v)).padStart(width, '0');
    out.push(v < 0 ? `-${digits}` : digits);
  }
  return out;
}

/**
 * Splits a comma-separated shard list at its top-level commas: a comma inside braces belongs to the brace
 * (`d-{000000..000001}.tar,{a,b}.tar` is two entries). Empty entries are kept (expandShardSpec refuses them).
 */
export function splitShardList(spec: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < spec.length; i++) {
    const ch = spec[i];
    if (ch === '{') depth++;
    else if (ch === '}' && depth > 0) depth--;
    else if (ch === ',' && depth === 0) {
      out.push(spec.slice(start, i));
      start = i + 1;
    }
  }
  out.push(spec.slice(start));
  return out;
}

/**
 * The shard paths a spec names: a string is first split at its top-level commas (splitShardList; an array's
 * entries are taken as they are, so a path with a comma can be given that way), each entry brace-expanded, then each result globbed (when it has glob
 * characters; matches sorted by code point) or taken as a path. Duplicates are dropped, keeping the first; the
 * order is sorted within a glob and as given across entries. Plain paths are not required to exist (a missing
 * shard is reported when it is read), but at least one named file must.
 * @throws InvalidOptionError when the spec is empty or matches no existing file.
 */
export async function expandShardSpec(spec: string | string[]): Promise<string[]> {
  const entries = typeof spec === 'string' ? splitShardList(spec) : spec;
  if (!Array.isArray(entries) || entries.length === 0 || entries.some((e) => typeof e !== 'string' || e === '')) {
    throw new InvalidOptionError(
      `Expected a non-empty string or array of non-empty strings for options.urls but received ${JSON.stringify(spec)}`,
    );
  }
  const seen = new Set<string>();
  const out: string[] = [];
  let globMatched = false;
  const plain: string[] = [];
  for (const entry of entries) {
    for (const name of braceExpand(entry)) {
      let names: string[];
      if (fg.isDynamicPattern(name)) {
        names = (await fg(name, { onlyFiles: true, dot: false, unique: true })).sort(compareCodePoints);
        if (names.length > 0) globMatched = true;
      } else {
        names = [name];
        plain.push(name);
      }
      for (const n of names) {
        if (!seen.has(n)) {
          seen.add(n);
          out.push(n);
        }
      }
    }
  }
  if (!globMatched && !(await someFileExists(plain))) {
    throw new InvalidOptionError(`Expected shard files for options.urls but nothing matches ${JSON.stringify(spec)}`);
  }
  return out;
}

async function someFileExists(paths: string[]): Promise<boolean> {
  for (const p of paths) {
    try {
      if ((await fsp.stat(p)).isFile()) return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

function compareCodePoints(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
