/**
 * What the server sends from disk, and how it decides what it may: a request path becomes decoded segments or is
 * refused (no `.` or `..` segment, in any encoding; no separator or NUL inside a segment; no hidden name, which
 * also keeps temp files of a checkpoint being written out of reach); a file is sent only when its real path
 * (symbolic links followed) is a regular file inside the real path of the folder it was asked from. Folders are
 * never listed.
 */
import { createReadStream, promises as fsp, type Stats } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, relative, sep, isAbsolute } from 'node:path';
import { pipeline } from 'node:stream/promises';

/** Content types by extension; anything else is application/octet-stream (and nosniff keeps it so). */
const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.jsonl': 'application/x-ndjson; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.gif': 'image/gif',
  '.avif': 'image/avif',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
  '.tsv': 'text/tab-separated-values; charset=utf-8',
};

export function contentType(path: string): string {
  return TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * The decoded segments of a request's path (`/runs/a%20b/x.png` -> ['runs', 'a b', 'x.png']), or null for a
 * path the server never serves: not absolute, a bad escape, a `.`/`..`/hidden segment, a separator or NUL in a
 * segment, an empty segment (`//`).
 */
export function pathSegments(path: string): string[] | null {
  if (!path.startsWith('/')) return null;
  if (path === '/') return [];
  const out: string[] = [];
  for (const raw of path.slice(1).split('/')) {
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return null;
    }
    if (seg === '' || seg.startsWith('.') || /[/\\\0]/.test(seg)) return null;
    out.push(seg);
  }
  return out;
}

/** Whether `child` (a real path) is `root` (a real path) or inside it. */
export function isInside(root: string, child: string): boolean {
  const rel = relative(root, child);
  return rel === '' || (!rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel));
}

/**
 * The regular file `segments` name under `root`, when its real path stays inside root's real path; else null
 * (missing, a folder, a link out, anything but a regular file).
 */
export async function fileInside(root: string, segments: string[]): Promise<{ path: string; stat: Stats } | null> {
  if (segments.length === 0) return null;
  try {
    const [realRoot, real] = await Promise.all([fsp.realpath(root), fsp.realpath(join(root, ...segments))]);
    if (!isInside(realRoot, real) || real === realRoot) return null;
    const stat = await fsp.stat(real);
    return stat.isFile() ? { path: real, stat } : null;
  } catch {
    return null;
  }
}

/**
 * Sends a file with its type, length and a validator (answers 304 to a matching If-None-Match); HEAD gets the
 * headers only. A client that goes away ends the read.
 */
export async function sendFile(req: IncomingMessage, res: ServerResponse, file: { path: string; stat: Stats }, headers: Record<string, string> = {}): Promise<void> {
  const etag = `W/"${file.stat.size.toString(16)}-${Math.floor(file.stat.mtimeMs).toString(16)}"`;
  res.setHeader('ETag', etag);
  res.setHeader('Cache-Control', 'no-cache');
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  if (req.headers['if-none-match'] === etag) {
    res.writeHead(304).end();
    return;
  }
  res.writeHead(200, { 'Content-Type': contentType(file.path), 'Content-Length': file.stat.size });
  if (req.method === 'HEAD' || file.stat.size === 0) {
    res.end();
    return;
  }
  // The length stated, even of a file being appended to (metrics.jsonl). The stream ends early when the client
  // goes away (pipeline destroys it): nothing stays open.
  await pipeline(createReadStream(file.path, { start: 0, end: file.stat.size - 1 }), res).catch(() => undefined);
}
