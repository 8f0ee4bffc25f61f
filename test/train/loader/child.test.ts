/**
 * The loader's child processes never outlive a SIGKILLed `pipe train` by more than about a second. (Issue 11 saw
 * them decode on for 17-21 s; that exact case did not reproduce here, where a dead parent's closed pipes already
 * end the children: this test keeps the promise, child.ts's parent polling backs it.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, ROOT, tempDir } from '../../helpers/tar.js';
import { CLI } from '../../helpers/cli.js';

/** The pids whose parent is `ppid` (Linux /proc). */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // The command name is in parentheses and may hold spaces: the fields after ')' are state, ppid, ...
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) out.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');

test('loader children exit within a second of their parent being SIGKILLed', { timeout: 90_000, skip: process.platform !== 'linux' && 'needs /proc' }, async () => {
  const { dir, cleanup } = tempDir();
  try {
    const out = join(dir, 'run');
    const p = spawn(process.execPath, [CLI, 'train', '--shards', join(FIXTURES, 'shards', 'data-*.tar'), '--config', join(ROOT, 'configs', 'tiny.json'),
      '--steps', '100000', '--backend', 'wasm', '--processes', '2', '--out', out, '--quiet'], { stdio: 'ignore' });
    // Wait for the children (the decode processes: node running child.js).
    let kids: number[] = [];
    for (let i = 0; i < 600 && kids.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
      kids = childrenOf(p.pid!).filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('child.js');
        } catch {
          return false;
        }
      });
    }
    assert.equal(kids.length, 2, 'two decode processes started');
    p.kill('SIGKILL');
    const t0 = Date.now();
    while (kids.some(alive) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
    const ms = Date.now() - t0;
    assert.ok(!kids.some(alive), 'the children exited');
    assert.ok(ms < 1500, `the children outlived the parent by ${ms} ms`);
  } finally {
    cleanup();
  }
});
