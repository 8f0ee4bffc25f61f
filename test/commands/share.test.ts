import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SHARE_FLAGS, shareNotice, shareOf } from '../../src/commands/share.js';
import { parseFlags, usage as usageOf } from '../../src/commands/flags.js';
import { InvalidOptionError } from '../../src/core/errors.js';

test('shareOf: --rank and --world, else Slurm job-array variables (ID less MIN, over STEP; COUNT), flags first', () => {
  const none = {};
  assert.equal(shareOf({}, none), undefined, 'no flags, no job array: everything');
  assert.deepEqual(shareOf({ rank: 1, world: 3 }, none), { rank: 1, world: 3, from: null });
  assert.deepEqual(shareOf({}, { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_COUNT: '4' }), {
    rank: 2, world: 4, from: 'SLURM_ARRAY_TASK_ID=2, SLURM_ARRAY_TASK_COUNT=4 (a Slurm job array)',
  });
  // #SBATCH --array=1-4: IDs 1..4 are ranks 0..3; --array=0-6:2: IDs 0, 2, 4, 6.
  assert.equal(shareOf({}, { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '4' })!.rank, 3);
  assert.equal(shareOf({}, { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '4' })!.rank, 0);
  assert.equal(shareOf({}, { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_STEP: '2', SLURM_ARRAY_TASK_COUNT: '4' })!.rank, 2);
  // Flags win, and a variable a flag replaces is never read (not even to be checked).
  const slurm = { SLURM_ARRAY_TASK_ID: 'x', SLURM_ARRAY_TASK_COUNT: 'y' };
  assert.deepEqual(shareOf({ rank: 0, world: 1 }, slurm), { rank: 0, world: 1, from: null });
  assert.deepEqual(shareOf({ world: 8 }, { SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_COUNT: 'y' }), {
    rank: 5, world: 8, from: 'SLURM_ARRAY_TASK_ID=5, --world 8 (a Slurm job array)',
  });
  assert.equal(shareOf({ rank: 1 }, { SLURM_ARRAY_TASK_ID: 'x', SLURM_ARRAY_TASK_COUNT: '2' })!.rank, 1);
});

test('shareOf: a Kubernetes Indexed Job gives the rank (JOB_COMPLETION_INDEX); the world must come with --world', () => {
  const k8s = { JOB_COMPLETION_INDEX: '3' };
  assert.deepEqual(shareOf({ world: 4 }, k8s), { rank: 3, world: 4, from: 'JOB_COMPLETION_INDEX=3, --world 4 (a Kubernetes Indexed Job)' });
  assert.throws(() => shareOf({}, k8s), (e: unknown) => e instanceof InvalidOptionError && /JOB_COMPLETION_INDEX is set .* but --world is not: give --world/.test(e.message));
  assert.deepEqual(shareOf({ rank: 0, world: 1 }, k8s), { rank: 0, world: 1, from: null });
  assert.match(shareNotice(shareOf({ world: 4 }, k8s)!), /^colorpipe: rank 3 of 4 from JOB_COMPLETION_INDEX=3, --world 4 \(a Kubernetes Indexed Job\); --rank and --world override it$/);
});

test('shareOf: bad values are usage errors naming the flag or the variable', () => {
  const usage = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: unknown) => e instanceof InvalidOptionError && re.test(e.message), String(re));
  usage(() => shareOf({ rank: 3, world: 2 }, {}), /^Expected integer in \[0, 1\] for --rank but received 3$/);
  usage(() => shareOf({ rank: 1 }, {}), /^Expected --rank and --world together$/);
  usage(() => shareOf({}, { SLURM_ARRAY_TASK_ID: 'abc', SLURM_ARRAY_TASK_COUNT: '4' }), /^Expected integer >= 0 for SLURM_ARRAY_TASK_ID \(in the environment\) but received "abc"$/);
  usage(() => shareOf({}, { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '0' }), /for SLURM_ARRAY_TASK_COUNT \(in the environment\)/);
  usage(() => shareOf({}, { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_MIN: '-1', SLURM_ARRAY_TASK_COUNT: '4' }), /for SLURM_ARRAY_TASK_MIN/);
  usage(() => shareOf({}, { SLURM_ARRAY_TASK_ID: '1' }), /SLURM_ARRAY_TASK_COUNT is not: give --world/);
  // An array that does not start at SLURM_ARRAY_TASK_MIN's rank 0, or a list with gaps: out of range, said so.
  usage(() => shareOf({}, { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_COUNT: '4' }), /^Expected integer in \[0, 3\] \(the world, 4, from SLURM_ARRAY_TASK_COUNT\) for the rank from SLURM_ARRAY_TASK_ID 4 but received 4$/);
  usage(() => shareOf({}, { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_STEP: '2', SLURM_ARRAY_TASK_COUNT: '4' }), /received 1\.5$/);
  usage(() => shareOf({ world: 2 }, { JOB_COMPLETION_INDEX: '2' }), /for the rank from JOB_COMPLETION_INDEX but received 2/);
  usage(() => shareOf({ world: 2 }, { JOB_COMPLETION_INDEX: '1.0' }), /for JOB_COMPLETION_INDEX \(in the environment\) but received "1\.0"/);
});

test('--rank and --world are integers, --world at least 1: a bad one is a usage error naming it', () => {
  const read = (...argv: string[]) => parseFlags(argv, SHARE_FLAGS, usageOf('Usage: pipe x', SHARE_FLAGS));
  assert.deepEqual(read('--rank', '1', '--world', '3'), { rank: 1, world: 3 });
  assert.deepEqual(read(), { rank: undefined, world: undefined });
  assert.throws(() => read('--rank', '0', '--world', '0'), /^InvalidOptionError: Expected integer >= 1 for --world but received "0"$/);
  assert.throws(() => read('--rank=-1', '--world', '2'), /^InvalidOptionError: Expected integer >= 0 for --rank but received "-1"$/);
  assert.throws(() => read('--rank', '0.5', '--world', '2'), /for --rank/);
});
