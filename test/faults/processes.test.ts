/**
 * Processes (issue 11, item 12), end to end through the CLI: the loader's decode processes of a SIGKILLed
 * `pipe train` (they outlived it by 17-21 s, still decoding) are gone within about a second.
 * (The same promise on /proc alone, for the decode processes: test/train/loader/child.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { FIXTURES, ROOT, tmpDir } from '../helpers/tar.js';
import { finish, start } from '../helpers/cli.js';
import { alive, descendants } from '../helpers/faults.js';
import { waitFor } from '../helpers/wait.js';

/** The pids of `pid`'s children, as `pgrep -P` lists them (from /proc where pgrep is missing). */
function pgrepChildren(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  if (r.error) return descendants(pid);
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

test('SIGKILL a pipe train with 2 loader processes: its children are gone within 2 s', { timeout: 90_000, skip: process.platform !== 'linux' && 'needs /proc' }, async (t) => {
  const dir = tmpDir(t, 'colorpipe-faults-processes-');
  const p = start(['train', '--shards', join(FIXTURES, 'shards', 'data-*.tar'), '--config', join(ROOT, 'configs', 'tiny.json'),
    '--steps', '100000', '--backend', 'wasm', '--processes', '2', '--out', join(dir, 'run'), '--quiet']);
  const ended = finish(p, 80_000);
  // Both decode processes started (`--processes 2`: node running the loader's child.js).
  let kids: number[] = [];
  const started = await waitFor(() => (kids = pgrepChildren(p.pid!)).length >= 2, 45_000);
  assert.ok(started, `two loader processes: ${kids.join(' ')}`);
  // Their own children too, if they have any.
  const all = [...new Set([...kids, ...descendants(p.pid!)])];
  assert.ok(all.every(alive), 'running before the kill');
  p.kill('SIGKILL');
  const t0 = Date.now();
  const r = await ended;
  assert.equal(r.signal, 'SIGKILL');
  const gone = await waitFor(() => !all.some(alive), 2_000);
  assert.ok(gone, `still running ${Date.now() - t0} ms after the kill: ${all.filter(alive).join(' ')}`);
});
