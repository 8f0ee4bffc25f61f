/** `pipe serve` as a user runs it: the line with its address, a warning off loopback, Ctrl-C, a port in use, bad flags. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { ModelList } from '../../src/web/api.js';
import { exited, finish, noStack, pipe, start } from '../helpers/cli.js';
import { tinyModel } from '../helpers/model.js';
import { tempDir } from '../helpers/tar.js';

const { dir, cleanup } = tempDir('colorpipe-serve-cli-');
after(cleanup);

/** Starts `pipe serve ARGS`, waits for its address line, and hands back the address and a stop (SIGINT). */
async function serving(args: string[]): Promise<{ url: string; stderr: () => string; stop: () => ReturnType<typeof finish> }> {
  const p = start(['serve', '--port', '0', ...args]);
  let err = '';
  const done = finish(p, 60_000, (_out, e) => (err = e));
  const url = await new Promise<string>((resolve, reject) => {
    const check = () => {
      const m = /^colorpipe: serving (http:\/\/\S+) \(colorize\)/m.exec(err);
      if (m) resolve(m[1]!);
    };
    p.stderr!.on('data', () => setImmediate(check));
    void done.then((r) => reject(new Error(`pipe serve ended: ${r.stderr}`)));
  });
  return { url, stderr: () => err, stop: () => (p.kill('SIGINT'), done) };
}

test('pipe serve prints its address, serves the runs and their models, and stops on Ctrl-C (130)', async () => {
  await tinyModel(join(dir, 'runs', 'one', 'model'));
  await tinyModel(join(dir, 'elsewhere', 'mine'));
  const s = await serving(['--runs', join(dir, 'runs'), '--model', join(dir, 'elsewhere', 'mine')]);
  assert.match(s.stderr(), /serving http:\/\/127\.0\.0\.1:\d+\/ \(colorize\) and http:\/\/127\.0\.0\.1:\d+\/runs \(1 run under .*runs\); Ctrl-C stops/);
  const list = (await (await fetch(`${s.url}models.json`)).json()) as ModelList;
  // --model outside the runs folder comes first and is selected.
  assert.deepEqual(list.models.map((m) => m.name), ['mine', 'one']);
  assert.equal(list.selected, 'mine');
  assert.equal((await fetch(s.url)).status, 200);
  const r = await s.stop();
  exited(r, 130);
  noStack(r.stderr);
});

test('pipe serve --model runs/NAME selects that run; --host off loopback warns that anyone who reaches it sees the runs', async () => {
  await tinyModel(join(dir, 'runs2', 'b', 'model'));
  await tinyModel(join(dir, 'runs2', 'a', 'model'));
  const s = await serving(['--runs', join(dir, 'runs2'), '--model', join(dir, 'runs2', 'b'), '--host', '0.0.0.0']);
  assert.match(s.stderr(), /^colorpipe: warning: listening on 0\.0\.0\.0: anyone who can reach it can see the runs and download their models$/m);
  const list = (await (await fetch(`${s.url}models.json`)).json()) as ModelList;
  assert.deepEqual([list.models.map((m) => m.name), list.selected], [['a', 'b'], 'b']);
  exited(await s.stop(), 130);
});

test('a port in use and bad flags are one line naming the flag', async () => {
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  const port = String((busy.address() as { port: number }).port);
  const r = pipe(['serve', '--runs', dir, '--port', port]);
  busy.close();
  exited(r, 1);
  assert.match(r.stderr, new RegExp(`^colorpipe: Cannot listen on 127\\.0\\.0\\.1 port ${port} \\(--host, --port\\): .*EADDRINUSE`, 'm'));
  noStack(r.stderr);
  const bad = pipe(['serve', '--port', '70000']);
  exited(bad, 2);
  assert.match(bad.stderr, /--port/);
  const file = pipe(['serve', '--runs', join(dir, 'runs', 'one', 'model', 'model.json')]);
  exited(file, 2);
  assert.match(file.stderr, /is not a folder \(--runs\)/);
});
