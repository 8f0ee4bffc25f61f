/**
 * `pipe serve`'s HTTP server (node:http): the page's assets (dist/web/, built by scripts/build-web.ts), the
 * models the colorize view offers (/models.json) and their ONNX exports (/api/models/NAME.onnx), the runs view's
 * data (/api/runs, /api/events) and the files of runs under --runs (/runs/NAME/...), read only.
 *
 * Safe by default: it listens on 127.0.0.1 and then answers only requests addressed to a loopback name (a web
 * page that rebinds its own host name to 127.0.0.1 gets 421); GET and HEAD only; paths are checked segment by
 * segment and files by their real path (files.ts: no traversal, no link out, no listing); every answer carries
 * a Content-Security-Policy without inline script (the pages have none), nosniff and cross-origin isolation
 * (which also lets onnxruntime-web use threads). Slow or huge requests are bounded by node:http's limits set
 * here (header size and time, request time, idle sockets, connections).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { reasonOf } from '../core/errors.js';
import type { ModelList } from '../web/api.js';
import { fileInside, pathSegments, sendFile } from './files.js';
import { RunEvents, type EventsOptions } from './events.js';
import { ExportCache, findModel, modelEntry, type ModelSource } from './models.js';
import { listRuns, summarize } from './runs.js';

export interface ServeOptions {
  /** The runs folder (--runs). */
  runs: string;
  /** A model by path (--model: a model.json or .onnx, already resolved), shown first; `run` when it is a run under runs/. */
  model?: { name: string; file: string } | { run: string };
  host?: string;
  /** 0: any free port. */
  port?: number;
  /** The built page (dist/web/). */
  assets: string;
  /** node:http's limits and the live feed's (tests make them short). */
  limits?: Partial<Limits> & EventsOptions;
  /** Called with one line per request that failed on the server's side. */
  log?: (line: string) => void;
}

export interface Limits {
  /** Time to receive a request's headers (slowloris). */
  headersTimeoutMs: number;
  /** Time to receive a whole request. */
  requestTimeoutMs: number;
  /** An idle socket (a client that stopped reading) is closed after this. */
  idleTimeoutMs: number;
  maxHeaderSize: number;
  maxUrlLength: number;
  maxConnections: number;
  /** How often node:http checks the header and request timeouts. */
  checkIntervalMs: number;
}

const LIMITS: Limits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 60_000,
  maxHeaderSize: 8 * 1024,
  maxUrlLength: 2048,
  maxConnections: 256,
  checkIntervalMs: 1_000,
};

/** The pages' policy: scripts and workers from this origin only (WebAssembly compiled, nothing evaluated); blob: is
 * the page's own results (blob URLs belong to their origin). */
const CSP =
  "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
  "connect-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/** A run's own files (report.html among them) are shown, never run: no script at all, sandboxed. */
const RUN_FILE_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox";

/** Whether a host name or address (a Host header's, bracketed IPv6 too) is this machine's loopback. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** A running server: its URL, and close (ends live feeds and open connections). */
export interface Served {
  url: string;
  port: number;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

/** The host part of a Host header (`[::1]:8080` -> `[::1]`). */
function hostName(header: string | undefined): string {
  if (!header) return '';
  return header.startsWith('[') ? header.slice(0, header.indexOf(']') + 1) : header.split(':')[0]!;
}

/**
 * Starts the server; resolves once it listens.
 * @throws the listen error (EADDRINUSE, EACCES) for the caller to name the flag.
 */
export async function serve(o: ServeOptions): Promise<Served> {
  const limits = { ...LIMITS, ...o.limits };
  const host = o.host ?? '127.0.0.1';
  const loopbackOnly = isLoopback(host);
  const cache = new ExportCache();
  const events = new RunEvents(o.runs, o.limits);
  const log = o.log ?? (() => undefined);

  /** The model sources: the runs, and --model first when it is not one of them. */
  async function sources(): Promise<ModelSource[]> {
    const runs: ModelSource[] = (await listRuns(o.runs)).map((run) => ({ name: run.name, run }));
    if (o.model && 'file' in o.model) {
      let name = o.model.name;
      while (runs.some((r) => r.name === name)) name += '+';
      return [{ name, file: o.model.file }, ...runs];
    }
    return runs;
  }

  async function modelList(): Promise<ModelList> {
    const list: ModelList = { mode: 'serve', models: [] };
    const all = await sources();
    for (const src of all) {
      const found = await findModel(src, cache);
      if (!found) continue;
      try {
        list.models.push(await modelEntry(src, found, `api/models/${encodeURIComponent(src.name)}.onnx?v=${encodeURIComponent(found.version)}`));
      } catch (err) {
        log(`colorpipe: serve: left ${src.name} out of the models: ${reasonOf(err)}`);
      }
    }
    // --model first; else the run written last.
    const asked = o.model ? ('run' in o.model ? o.model.run : all[0]?.name) : undefined;
    list.selected = list.models.find((m) => m.name === asked)?.name ?? newest(list.models.map((m) => m.version), list.models);
    return list;
  }

  async function onnx(res: ServerResponse, req: IncomingMessage, name: string): Promise<void> {
    const src = (await sources()).find((s) => s.name === name);
    const found = src && (await findModel(src, cache));
    if (!found) throw new HttpError(404, `No model named ${name}`);
    let bytes: Uint8Array;
    try {
      ({ bytes } = await found.onnx());
    } catch (err) {
      // The checkpoint was replaced while it was read: the page asks again.
      throw new HttpError(503, `The model ${name} is being written; try again (${reasonOf(err)})`, { 'Retry-After': '1' });
    }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': bytes.byteLength, ETag: `"${found.version}"`, 'Cache-Control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  }

  function json(res: ServerResponse, req: IncomingMessage, value: unknown): void {
    const body = Buffer.from(JSON.stringify(value));
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.byteLength, 'Cache-Control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = req.url ?? '';
    if (raw.length > limits.maxUrlLength) throw new HttpError(414, 'The request target is too long');
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, 'Only GET and HEAD', { Allow: 'GET, HEAD' });
    if (req.headers['content-length'] && req.headers['content-length'] !== '0') throw new HttpError(413, 'A GET takes no body');
    if (req.headers['transfer-encoding']) throw new HttpError(413, 'A GET takes no body');
    if (loopbackOnly && !isLoopback(hostName(req.headers.host))) throw new HttpError(421, 'This server answers requests for localhost only');
    // origin-form only: `GET http://host/..` (absolute-form) and `*` are refused with the rest.
    const q = raw.indexOf('?');
    const seg = pathSegments(q < 0 ? raw : raw.slice(0, q));
    if (!seg) throw new HttpError(400, 'Bad path');
    const [head, ...rest] = seg;
    if (seg.length === 0 || (head === 'index.html' && rest.length === 0)) return sendPage(req, res, 'index.html');
    if (head === 'runs' && rest.length === 0) return sendPage(req, res, 'runs.html');
    if (head === 'models.json' && rest.length === 0) return json(res, req, await modelList());
    if (head === 'assets') return sendFrom(req, res, join(o.assets, 'assets'), rest, { 'Content-Security-Policy': CSP });
    if (head === 'runs') return sendFrom(req, res, o.runs, rest, { 'Content-Security-Policy': RUN_FILE_CSP });
    if (head === 'api' && rest.length === 1 && rest[0] === 'runs') return json(res, req, await Promise.all((await listRuns(o.runs)).map(summarize)));
    if (head === 'api' && rest.length === 1 && rest[0] === 'events') {
      if (!(await events.attach(res))) throw new HttpError(503, 'Too many live views open', { 'Retry-After': '5' });
      return;
    }
    if (head === 'api' && rest.length === 2 && rest[0] === 'models' && rest[1]!.endsWith('.onnx')) return onnx(res, req, rest[1]!.slice(0, -5));
    throw new HttpError(404, 'Not found');
  }

  async function sendPage(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    return sendFrom(req, res, o.assets, [name], { 'Content-Security-Policy': CSP });
  }

  async function sendFrom(req: IncomingMessage, res: ServerResponse, root: string, seg: string[], headers: Record<string, string>): Promise<void> {
    const file = await fileInside(root, seg);
    if (!file) throw new HttpError(404, 'Not found');
    await sendFile(req, res, file, headers);
  }

  const server: Server = createServer({
    maxHeaderSize: limits.maxHeaderSize,
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    connectionsCheckingInterval: limits.checkIntervalMs,
  }, (req, res) => {
    res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    route(req, res).catch((err: unknown) => {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) log(`colorpipe: serve: ${req.method} ${req.url}: ${reasonOf(err)}`);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const body = `${status} ${err instanceof HttpError ? err.message : 'Internal error'}\n`;
      // A request the server refused unread (a body, a bad method) ends its connection.
      const close = status === 405 || status === 413 || status === 414;
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...(close ? { Connection: 'close' } : {}), ...(err instanceof HttpError ? err.headers : {}) });
      res.end(req.method === 'HEAD' ? undefined : body);
    });
  });
  server.maxConnections = limits.maxConnections;
  server.keepAliveTimeout = 5_000;
  server.setTimeout(limits.idleTimeoutMs, (socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 8080, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host === '0.0.0.0' || host === '::' ? 'localhost' : host;
  return {
    url: `http://${shown}:${port}/`,
    port,
    close: async () => {
      events.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/** The name of the model written last, by its version's time (runs.ts: FOLDER@MTIME). */
function newest(versions: string[], models: { name: string }[]): string | undefined {
  let best = -1;
  let name: string | undefined;
  versions.forEach((v, i) => {
    const t = Number(v.slice(v.lastIndexOf('@') + 1));
    if (t > best) {
      best = t;
      name = models[i]!.name;
    }
  });
  return name;
}
