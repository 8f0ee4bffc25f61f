/**
 * The loader's child processes end when a `pipe train` is SIGKILLed instead of decoding on (issue 11 saw them
 * outlive it by 17-21 s; here a dead parent's closed pipes already end them, and child.ts's parent polling backs
 * that). How soon is test/faults/processes.test.ts's concern; this test waits with a generous limit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, ROOT, tempDir } from '../../helpers/tar.js';
import { CLI } from '../../helpers/cli.js';
import { alive, descendants } from '../../helpers/faults.js';
import { waitFor } from '../../helpers/wait.js';

/** The loader's decode processes below `pid` (node running child.js). */
function decoders(pid: number): number[] {
  return descendants(pid).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('child.js');
    } catch {
      return false;
    }
  });
}

test('loader children exit once their parent is SIGKILLed', { timeout: 90_000, skip: process.platform !== 'linux' && 'needs /proc' }, async (t) => {
  const { dir, cleanup } = tempDir();
  const p = spawn(process.execPath, [CLI, 'train', '--shards', join(FIXTURES, 'shards', 'data-*.tar'), '--config', join(ROOT, 'configs', 'tiny.json'),
    '--steps', '100000', '--backend', 'wasm', '--processes', '2', '--out', join(dir, 'run'), '--quiet'], { stdio: 'ignore' });
  // The run stops before its folder goes, should the test fail before its kill.
  t.after(() => {
    p.kill('SIGKILL');
    cleanup();
  });
  let kids: number[] = [];
  assert.ok(await waitFor(() => (kids = decoders(p.pid!)).length >= 2, 30_000), `two decode processes started: ${kids.join(' ')}`);
  assert.equal(kids.length, 2, 'two decode processes');
  p.kill('SIGKILL');
  const gone = await waitFor(() => !kids.some(alive), 10_000);
  assert.ok(gone, `decode processes still running 10 s after their parent was SIGKILLed: ${kids.filter(alive).join(' ')}`);
});
