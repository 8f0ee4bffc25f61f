/**
 * `pipe serve`'s server without a browser: what it serves (types, the policy, models.json and the ONNX export,
 * the runs' summaries) and what it refuses (traversal in any encoding, absolute targets, links out of the runs
 * folder, folders, hidden files, other methods, foreign hosts, huge and slow requests), the server serving on
 * meanwhile; and runs half written as `pipe train` leaves them between two renames.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync, appendFileSync, rmSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { symlinkAtomic } from '../../src/core/atomic.js';
import { webAssets } from '../../src/serve/assets.js';
import { serve, type Served } from '../../src/serve/server.js';
import type { ModelList, RunSummary } from '../../src/web/api.js';
import { events, raw, rawGet, stall } from '../helpers/http.js';
import { exited, pipe } from '../helpers/cli.js';
import { tinyModel } from '../helpers/model.js';
import { tempDir } from '../helpers/tar.js';

const { dir, cleanup } = tempDir('colorpipe-serve-');
const runs = join(dir, 'runs');
const SECRET = 'the secret outside the runs folder';
let served: Served;

/** A run as `pipe train` leaves it: checkpoints/step-N, model -> the newest, state.json, metrics, samples. */
async function makeRun(name: string, steps: number[]): Promise<string> {
  const run = join(runs, name);
  for (const step of steps) await tinyModel(join(run, 'checkpoints', `step-${String(step).padStart(8, '0')}`), { trainingScale: { shortSide: 40, crop: 32 } });
  const last = `checkpoints/step-${String(steps.at(-1)).padStart(8, '0')}`;
  symlinkSync(last, join(run, 'model'));
  const config = { name: 'tiny', model: { inputSize: 32, width: 0.125, numClasses: 0 }, train: { batch: 8, steps: 100, optimizer: 'adam', lr: 0.002 } };
  writeFileSync(join(run, 'state.json'), JSON.stringify({ version: 1, step: steps.at(-1), engine: 'tfjs', backend: 'wasm', config, checkpoint: last, time: '2026-01-01T00:00:00.000Z' }));
  writeFileSync(join(run, 'metrics.jsonl'), steps.map((s) => JSON.stringify({ step: s, loss: 0.01, img_per_s: 10, data_stall: 0.1 })).join('\n') + '\n');
  mkdirSync(join(run, 'samples'));
  await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } }).png().toFile(join(run, 'samples', 'step-00000010.png'));
  return run;
}

before(async () => {
  writeFileSync(join(dir, 'secret.txt'), SECRET);
  const a = await makeRun('a', [10, 20]);
  symlinkSync(join(dir, 'secret.txt'), join(a, 'escape.txt'));
  writeFileSync(join(a, '.hidden'), SECRET);
  mkdirSync(join(dir, 'outside', 'metrics.jsonl'), { recursive: true });
  symlinkSync(join(dir, 'outside'), join(runs, 'linked'));
  writeFileSync(join(dir, 'outside', 'secret.txt'), SECRET);
  served = await serve({ runs, assets: webAssets(), port: 0, limits: { headersTimeoutMs: 1000, requestTimeoutMs: 2000, idleTimeoutMs: 1000, checkIntervalMs: 100, maxClients: 2, pollMs: 100 } });
});
after(async () => {
  await served?.close();
  cleanup();
});

const url = (p: string) => `${served.url}${p.replace(/^\//, '')}`;

test('the pages and their assets come with their types, a Content-Security-Policy, cross-origin isolation and no inline script', async () => {
  for (const [path, type] of [['/', 'text/html'], ['/runs', 'text/html'], ['/assets/page.js', 'text/javascript'], ['/assets/worker.js', 'text/javascript'],
    ['/assets/ort.min.mjs', 'text/javascript'], ['/assets/ort-wasm-simd-threaded.jsep.wasm', 'application/wasm'], ['/assets/style.css', 'text/css']] as const) {
    const res = await fetch(url(path));
    assert.equal(res.status, 200, path);
    assert.match(res.headers.get('content-type') ?? '', new RegExp(`^${type}`), path);
    assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self' 'wasm-unsafe-eval';/, path);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('cross-origin-embedder-policy'), 'require-corp');
    assert.equal(res.headers.get('cross-origin-opener-policy'), 'same-origin');
    const body = await res.text();
    if (type === 'text/html') {
      assert.deepEqual([...body.matchAll(/<script(?![^>]*\ssrc=)[^>]*>/g)].map((m) => m[0]), [], `${path}: inline script`);
      assert.doesNotMatch(body, /\sstyle=|<style|\son[a-z]+=/i, `${path}: inline style or handler`);
    }
  }
  // A validator: the same file is not sent twice.
  const first = await fetch(url('/assets/page.js'));
  assert.equal((await fetch(url('/assets/page.js'), { headers: { 'If-None-Match': first.headers.get('etag')! } })).status, 304);
  const head = await fetch(url('/'), { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');
});

test("models.json offers each run's newest checkpoint, and its ONNX bytes are those pipe export writes", async () => {
  const list = (await (await fetch(url('/models.json'))).json()) as ModelList;
  assert.equal(list.mode, 'serve');
  assert.deepEqual(list.models.map((m) => [m.name, m.step, m.inputSize, m.trainingScale]), [['a', 20, 32, { shortSide: 40, crop: 32 }]]);
  assert.equal(list.selected, 'a');
  const res = await fetch(url(list.models[0]!.url));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/octet-stream');
  const out = join(dir, 'a.onnx');
  exited(pipe(['export', '--model', join(runs, 'a'), '--out', out, '--quiet']), 0);
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(readFileSync(out)));
  const summaries = (await (await fetch(url('/api/runs'))).json()) as RunSummary[];
  assert.deepEqual(summaries.map((r) => [r.name, r.step, r.steps, r.engine, r.hasModel, r.samples]), [['a', 20, 100, 'tfjs', true, ['step-00000010.png']]]);
  assert.equal((await fetch(url('/runs/a/samples/step-00000010.png'))).headers.get('content-type'), 'image/png');
});

test('traversal, encoded traversal, absolute targets, links out, folders and hidden files are refused; the server serves on', async () => {
  const hostile = [
    '/runs/../../secret.txt', '/runs/a/../../secret.txt', '/runs/%2e%2e/secret.txt', '/runs/a/%2e%2e/%2e%2e/secret.txt',
    '/runs/a/..%2f..%2fsecret.txt', '/runs/a/%2e%2e%2f%2e%2e%2fsecret.txt', '/runs/a/..%5c..%5csecret.txt', '/assets/..%2f..%2f..%2fpackage.json',
    '/runs/%252e%252e/secret.txt', '//etc/passwd', '/runs//etc/passwd', `/runs/${encodeURIComponent(join(dir, 'secret.txt'))}`,
    'http://127.0.0.1/etc/passwd', '/etc/passwd', '/runs/a/escape.txt', '/runs/linked/secret.txt', '/runs/a/.hidden', '/runs/a/%2ehidden',
    '/runs/a', '/runs/a/', '/runs/a/samples', '/assets', '/assets/', '/runs/a/state.json%00.png', '/runs/a/%ZZ', '/api/models/..%2fa.onnx',
  ];
  for (const path of hostile) {
    const r = await rawGet(served.port, path);
    assert.ok([400, 404].includes(r.status), `${path}: ${r.status}`);
    assert.ok(!r.body.toString().includes(SECRET), path);
  }
  // The run's own files are there all along.
  assert.equal((await rawGet(served.port, '/runs/a/state.json')).status, 200);
  assert.equal((await rawGet(served.port, '/runs/a/metrics.jsonl')).status, 200);
});

test('other methods, a body, a foreign Host and oversized requests are refused and end their connection', async () => {
  const post = await raw(served.port, `POST /models.json HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello`);
  assert.equal(post.status, 405);
  assert.equal(post.headers['allow'], 'GET, HEAD');
  const body = await raw(served.port, `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello`);
  assert.equal(body.status, 413);
  // A page on another site that resolves its own name to 127.0.0.1 (DNS rebinding) is not answered.
  assert.equal((await rawGet(served.port, '/models.json', { Host: 'evil.example:80' })).status, 421);
  assert.equal((await rawGet(served.port, '/models.json', { Host: `localhost:${served.port}` })).status, 200);
  assert.equal((await rawGet(served.port, `/${'a'.repeat(3000)}`)).status, 414);
  assert.equal((await rawGet(served.port, '/', { 'X-Big': 'x'.repeat(64 * 1024) })).status, 431);
  const many = await raw(served.port, Buffer.concat([Buffer.from(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n`), Buffer.alloc(1 << 20, 'X-A: b\r\n')]));
  assert.ok([0, 431].includes(many.status), `${many.status}`);
  assert.equal((await fetch(url('/'))).status, 200);
});

test('a client too slow to send its headers, or that stops reading, is cut off while others are served', async () => {
  let answered = 0;
  const slow = stall(served.port, 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n', {
    opened: async () => {
      for (let i = 0; i < 3; i++) answered += (await fetch(url('/models.json'))).status === 200 ? 1 : 0;
    },
  });
  // A reader that asks for 28 MB of WebAssembly and reads none of it: dropped once idle, never buffered whole.
  const stalled = stall(served.port, `GET /assets/ort-wasm-simd-threaded.jsep.wasm HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, { stoppedReader: { probeMs: 1500 } });
  await Promise.all([slow, stalled]);
  assert.equal(answered, 3);
  assert.equal((await fetch(url('/'))).status, 200);
});

/** A live feed, once the server has a place for it (a feed just closed frees its place when the server sees it). */
async function feed(): ReturnType<typeof events> {
  for (;;) {
    try {
      return await events(url('/api/events'));
    } catch (err) {
      if (!/: 503$/.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

test('live feeds are bounded: past the limit the server answers 503, and a feed that ends frees its place', async () => {
  const a = await feed();
  const b = await feed();
  const c = await fetch(url('/api/events'));
  assert.equal(c.status, 503);
  assert.equal(c.headers.get('retry-after'), '5');
  a.close();
  b.close();
  (await feed()).close();
});

test('the live feed sends the runs and each metrics line once it is complete; a rewritten file is sent again whole', async () => {
  const run = join(runs, 'a');
  const live = await feed();
  const runsEvent = await live.next((e) => e.event === 'runs');
  assert.deepEqual((runsEvent.data as RunSummary[]).map((r) => r.name), ['a']);
  const first = await live.next((e) => e.event === 'metrics');
  assert.deepEqual(first.data, { run: 'a', reset: true, lines: [10, 20].map((s) => ({ step: s, loss: 0.01, img_per_s: 10, data_stall: 0.1 })) });
  appendFileSync(join(run, 'metrics.jsonl'), `${JSON.stringify({ step: 30, loss: 0.009 })}\n{"step":40,"lo`);
  const d1 = await live.next((e) => e.event === 'metrics');
  assert.deepEqual(d1.data, { run: 'a', reset: false, lines: [{ step: 30, loss: 0.009 }] });
  appendFileSync(join(run, 'metrics.jsonl'), `ss":0.008}\n`);
  const d2 = await live.next((e) => e.event === 'metrics');
  assert.deepEqual(d2.data, { run: 'a', reset: false, lines: [{ step: 40, loss: 0.008 }] });
  // A fresh run in the same folder: a new file, sent whole as a reset.
  writeFileSync(join(run, 'metrics.tmp'), `${JSON.stringify({ step: 5, loss: 0.02 })}\n`);
  renameSync(join(run, 'metrics.tmp'), join(run, 'metrics.jsonl'));
  const d3 = await live.next((e) => e.event === 'metrics');
  assert.deepEqual(d3.data, { run: 'a', reset: true, lines: [{ step: 5, loss: 0.02 }] });
  live.close();
});

test('a run half written (a checkpoint being renamed, state.json cut short, a temp folder) never breaks the page', async () => {
  const run = await makeRun('busy', [10]);
  // The model link swapped to a checkpoint not renamed into place yet, and a half-written state.json.
  symlinkSync('checkpoints/step-00000020', join(run, 'model.next'));
  renameSync(join(run, 'model.next'), join(run, 'model'));
  writeFileSync(join(run, 'state.json'), '{"version":1,"step":2');
  mkdirSync(join(run, 'checkpoints', '.tmp-123-0-abcd'));
  const list = (await (await fetch(url('/models.json'))).json()) as ModelList;
  assert.deepEqual(list.models.map((m) => m.name), ['a']);
  const summaries = (await (await fetch(url('/api/runs'))).json()) as RunSummary[];
  const busy = summaries.find((r) => r.name === 'busy')!;
  assert.equal(busy.hasModel, false);
  assert.match(busy.note ?? '', /^state\.json could not be read/);
  assert.equal((await fetch(url('/api/models/busy.onnx'))).status, 404);
  assert.equal((await fetch(url('/runs/busy/checkpoints/.tmp-123-0-abcd'))).status, 400);
  // Checkpoints swapped and removed while the page asks: every answer is whole (200), or 404/503 for a model
  // that just went away; never a server error.
  await tinyModel(join(run, 'checkpoints', 'step-00000020'), { trainingScale: { shortSide: 40, crop: 32 } });
  const statuses = new Set<number>();
  const swapping = (async () => {
    for (let i = 0; i < 20; i++) {
      await symlinkAtomic(`checkpoints/step-000000${i % 2 ? '10' : '20'}`, join(run, 'model'));
      await new Promise((r) => setImmediate(r));
    }
  })();
  for (let i = 0; i < 20; i++) {
    statuses.add((await fetch(url('/models.json'))).status);
    statuses.add((await fetch(url('/api/models/busy.onnx'))).status);
    statuses.add((await fetch(url('/api/runs'))).status);
  }
  await swapping;
  assert.ok([...statuses].every((s) => [200, 404, 503].includes(s)), [...statuses].join(' '));
  assert.ok(statuses.has(200));
  rmSync(run, { recursive: true });
});
