import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ColorpipeError } from '../../src/core/errors.js';
import { LOCK_FILE, lockFolder, type LockOwner } from '../../src/core/lock.js';
import { deadPid } from '../helpers/faults.js';
import { tmpDir } from '../helpers/tar.js';

const locked = (re: RegExp) => (e: unknown) => e instanceof ColorpipeError && e.code === 'ERR_LOCKED' && re.test(e.message);

/** `fn`'s result and what it wrote on stderr. */
async function stderrOf<T>(fn: () => Promise<T>): Promise<{ value: T; stderr: string }> {
  const write = process.stderr.write;
  let stderr = '';
  process.stderr.write = ((chunk: string) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
  try {
    return { value: await fn(), stderr };
  } finally {
    process.stderr.write = write;
  }
}

function writeOwner(dir: string, o: Partial<LockOwner>): void {
  const owner: LockOwner = { pid: deadPid(), host: os.hostname(), since: '2026-01-02T03:04:05.000Z', command: 'pipe train', ...o };
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify(owner));
}

test('a folder lock records pid, host, start and command; a second taker is refused naming them; release frees it', async (t) => {
  const dir = join(tmpDir(t), 'run');
  const lock = await lockFolder(dir, 'pipe train');
  const owner = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as LockOwner;
  assert.equal(owner.pid, process.pid);
  assert.equal(owner.host, os.hostname());
  assert.equal(owner.command, 'pipe train');
  assert.ok(!Number.isNaN(Date.parse(owner.since)));
  await assert.rejects(lockFolder(dir, 'pipe shard'),
    locked(new RegExp(`^${dir} is in use by pipe train \\(pid ${process.pid} on host ${os.hostname()}, since ${owner.since.replace(/[.]/g, '\\.')}\\)`)));
  await lock.release();
  await lock.release();
  assert.deepEqual(readdirSync(dir), [], 'no lock file, no temp file');
  await (await lockFolder(dir, 'pipe shard')).release();
});

test('a lock whose process is gone (dead pid, pid reused, machine restarted) is taken over with one line', async (t) => {
  const dir = tmpDir(t);
  const owners: Partial<LockOwner>[] = [{}];
  // Linux records the boot and the start time: a live pid of an earlier boot, or one started later than the
  // owner (the pid was reused), is not the owner.
  if (existsSync('/proc/sys/kernel/random/boot_id')) owners.push({ pid: process.pid, boot: 'an-earlier-boot' });
  if (existsSync(`/proc/${process.pid}/stat`)) owners.push({ pid: process.pid, start: '1' });
  for (const o of owners) {
    writeOwner(dir, o);
    const { value: lock, stderr } = await stderrOf(() => lockFolder(dir, 'pipe train'));
    assert.match(stderr, new RegExp(`^colorpipe: note: ${dir}: taking over the lock of pipe train \\(pid \\d+ on host .+, since 2026-01-02T03:04:05\\.000Z\\), which is no longer running\\n$`));
    assert.equal((JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as LockOwner).pid, process.pid);
    await lock.release();
    assert.deepEqual(readdirSync(dir), []);
  }
});

test('two takers of one stale lock at once: exactly one gets it', async (t) => {
  const dir = tmpDir(t);
  writeOwner(dir, {});
  const { value: got } = await stderrOf(() => Promise.allSettled([lockFolder(dir, 'a'), lockFolder(dir, 'b')]));
  assert.equal(got.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(got));
  const lost = got.find((r) => r.status === 'rejected')!;
  assert.ok(locked(/is in use by [ab] /)(lost.reason), String(lost.reason));
  for (const r of got) if (r.status === 'fulfilled') await r.value.release();
  assert.deepEqual(readdirSync(dir), []);
});

test('a lock held on another host is refused (liveness cannot be checked), naming the host and the file to remove', async (t) => {
  const dir = tmpDir(t);
  writeOwner(dir, { host: 'elsewhere.example', pid: 4242 });
  await assert.rejects(lockFolder(dir, 'pipe train'), locked(new RegExp(
    `^${dir} is locked by pipe train \\(pid 4242 on host elsewhere\\.example, since .+\\); whether it still runs cannot be checked from .+: if it does not, remove ${join(dir, LOCK_FILE)}$`)));
  writeFileSync(join(dir, LOCK_FILE), 'not json');
  await assert.rejects(lockFolder(dir, 'pipe train'), locked(/has a lock file colorpipe cannot read/));
  assert.equal(readFileSync(join(dir, LOCK_FILE), 'utf8'), 'not json', 'left as it was');
});

test('release leaves a lock another process took over; process.exit releases a lock still held', async (t) => {
  const dir = tmpDir(t);
  const lock = await lockFolder(dir, 'pipe train');
  writeOwner(dir, { pid: 1, command: 'someone else' });
  await lock.release();
  assert.match(readFileSync(join(dir, LOCK_FILE), 'utf8'), /someone else/);

  const other = join(dir, 'other');
  const module = fileURLToPath(new URL('../../src/core/lock.js', import.meta.url));
  const r = spawnSync(process.execPath, ['--input-type=module', '-e',
    `const { lockFolder } = await import(${JSON.stringify(module)}); await lockFolder(${JSON.stringify(other)}, 'x'); process.exit(3);`], { encoding: 'utf8' });
  assert.equal(r.status, 3, r.stderr);
  assert.deepEqual(readdirSync(other), [], 'no lock left');
});
