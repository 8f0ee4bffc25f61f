/** HTTP as the server's tests need it: raw requests on a socket (nothing normalized), and a server-sent events reader. */
import { connect } from 'node:net';
import { get, type IncomingMessage } from 'node:http';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Parses one HTTP/1.1 response (headers and body as received). */
function parse(data: Buffer): RawResponse {
  const end = data.indexOf('\r\n\r\n');
  const head = data.subarray(0, end < 0 ? data.length : end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status, headers, body: end < 0 ? Buffer.alloc(0) : data.subarray(end + 4) };
}

/**
 * Sends `text` as it is (a request line and headers the test wrote, `..` and all) and reads until the server
 * closes the connection; status 0 when it closed without answering.
 */
export function raw(port: number, text: string | Buffer): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = connect(port, '127.0.0.1', () => s.write(text));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' ? undefined : reject(err)));
    s.on('close', () => resolve(parse(Buffer.concat(chunks))));
  });
}

/** GET `path` with the given headers; Connection: close. */
export function rawGet(port: number, path: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const h = { Host: `127.0.0.1:${port}`, Connection: 'close', ...headers };
  return raw(port, `GET ${path} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
}

/**
 * A socket that sends `text` and then nothing: resolves when the server closes it. `stoppedReader`: it also
 * reads nothing of the answer; a paused socket sees no close, so it sends an empty line (which HTTP ignores
 * between requests) every `probeMs` until a write fails on the closed connection: longer than the server's idle
 * timeout, which each probe restarts. `opened` runs once connected.
 */
export function stall(port: number, text: string, o: { stoppedReader?: { probeMs: number }; opened?: () => void } = {}): Promise<void> {
  return new Promise((resolve) => {
    let probe: NodeJS.Timeout | undefined;
    const s = connect(port, '127.0.0.1', () => {
      s.write(text);
      if (o.stoppedReader) {
        s.pause();
        probe = setInterval(() => s.write('\r\n'), o.stoppedReader.probeMs);
      }
      o.opened?.();
    });
    const done = () => {
      clearInterval(probe);
      s.destroy();
      resolve();
    };
    s.on('error', done);
    s.on('close', done);
  });
}

export interface SseEvent {
  event: string;
  data: unknown;
}

/** A server-sent events stream: `next(pred)` resolves with the first event (from now on) that `pred` accepts. */
export function events(url: string): Promise<{ res: IncomingMessage; next(pred: (e: SseEvent) => boolean): Promise<SseEvent>; close(): void }> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`${url}: ${res.statusCode}`));
        return;
      }
      const queue: SseEvent[] = [];
      const waiting: Array<{ pred: (e: SseEvent) => boolean; resolve: (e: SseEvent) => void; reject: (err: Error) => void }> = [];
      let buf = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const name = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (!name || data === undefined) continue;
          const e = { event: name, data: JSON.parse(data) as unknown };
          const w = waiting.findIndex((x) => x.pred(e));
          if (w >= 0) waiting.splice(w, 1)[0]!.resolve(e);
          else queue.push(e);
        }
      });
      let closed = false;
      res.on('close', () => {
        closed = true;
        for (const w of waiting.splice(0)) w.reject(new Error(`${url}: the server closed the feed`));
      });
      resolve({
        res,
        next: (pred) => {
          const q = queue.findIndex(pred);
          if (q >= 0) return Promise.resolve(queue.splice(0, q + 1).at(-1)!);
          if (closed) return Promise.reject(new Error(`${url}: the server closed the feed`));
          return new Promise((r, j) => waiting.push({ pred, resolve: r, reject: j }));
        },
        close: () => res.destroy(),
      });
    }).on('error', reject);
  });
}
