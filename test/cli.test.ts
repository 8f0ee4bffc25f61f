/**
 * The command line's conventions (issue 11): errors name the flag a user typed, not the API option behind it;
 * --rank and --world come from a scheduler's job-array variables when not given.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, tmpDir } from './helpers/tar.js';
import { jpeg } from './helpers/images.js';
import { lastJson, linesMatching, noStack, run } from './helpers/cli.js';
import { tinyModel } from './helpers/model.js';

test("usage errors from the API name the command's flag (--in), never the API option (options.input)", { timeout: 120_000 }, async (t) => {
  const dir = tmpDir(t);
  const missing = join(dir, 'nonexistent');
  const shard = join(FIXTURES, 'shards', 'data-000000.tar');
  const cases: [string[], RegExp][] = [
    [['colorize', '--in', missing, '--out', join(dir, 'x'), '--model', 'm'], /for --in\b/],
    [['colorize', '--in', join(FIXTURES, 'images'), '--out', join(dir, 'x'), '--model', 'm', '--rank', '3', '--world', '2'], /for --rank\b/],
    [['shard', '--in', missing, '--out', join(dir, 'x')], /for --in\b/],
    [['shard', '--in', join(FIXTURES, 'images'), '--out', join(dir, 'x'), '--prefix', 'a/b'], /for --prefix\b/],
    [['eval', '--in', missing, '--model', 'm'], /for --in\b/],
    [['train', '--shards', join(missing, '*.tar'), '--out', join(dir, 'run')], /for --shards\b/],
    [['train', '--shards', shard, '--val-shards', join(missing, 'v.tar'), '--out', join(dir, 'run'), '--quiet'], /for --val-shards\b/],
    [['export', '--model', missing], /for --model\b/],
  ];
  const results = await Promise.all(cases.map(([args]) => run(args)));
  for (const [i, [args, flag]] of cases.entries()) {
    const r = results[i]!;
    const what = `pipe ${args.join(' ')}: ${r.stderr}`;
    assert.equal(r.status, 2, what);
    assert.match(r.stderr, /^colorpipe: Expected /, what);
    assert.match(r.stderr, flag, what);
    assert.ok(!/options\./.test(r.stderr), what);
    noStack(r.stderr);
  }
});

test('pipe colorize takes --rank/--world from a Slurm job array or a Kubernetes Indexed Job; flags win', { timeout: 180_000 }, async (t) => {
  const dir = tmpDir(t);
  const model = await tinyModel(join(dir, 'model'));
  const input = join(dir, 'in');
  mkdirSync(input);
  const names = ['a.jpg', 'b.jpg', 'c.jpg', 'd.jpg', 'e.jpg'];
  for (const [i, n] of names.entries()) writeFileSync(join(input, n), await jpeg(40, 24, i));
  const colorize = (out: string, env: NodeJS.ProcessEnv, ...flags: string[]) =>
    run(['colorize', '--in', input, '--out', join(dir, out), '--model', model, '--json', ...flags], { env });
  const written = (out: string) => names.filter((n) => existsSync(join(dir, out, n)));
  const pick = (j: Record<string, unknown>) => ({ written: j.written, total: j.total, rank: j.rank, world: j.world });
  /** One summary line: `n` written of `total`, the share named after the total. */
  const summary = (stderr: string, n: number, total: number, share: string) => {
    const lines = linesMatching(stderr, / written, /);
    assert.equal(lines.length, 1, stderr);
    assert.ok(lines[0]!.startsWith(`colorpipe: ${n} written, 0 skipped, 0 failed of ${total} ${share} in `), stderr);
  };

  // #SBATCH --array=1-2: task ID 2 of an array starting at 1 is rank 1 of 2, the files at odd indices.
  // Run together (each loads its engine for a few seconds); checked one by one below.
  const [slurm, k8s, flags] = await Promise.all([
    colorize('slurm', { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '2' }),
    colorize('k8s', { JOB_COMPLETION_INDEX: '2' }, '--world', '3', '--quiet'),
    colorize('flags', { SLURM_ARRAY_TASK_ID: 'junk', SLURM_ARRAY_TASK_COUNT: '2' }, '--rank', '0', '--world', '1'),
  ]);
  assert.equal(slurm.status, 0, slurm.stderr);
  assert.deepEqual(written('slurm'), ['b.jpg', 'd.jpg']);
  const slurmFrom = 'SLURM_ARRAY_TASK_ID=2, SLURM_ARRAY_TASK_MIN=1, SLURM_ARRAY_TASK_COUNT=2 (a Slurm job array)';
  assert.ok(slurm.stderr.startsWith(`colorpipe: rank 1 of 2 from ${slurmFrom}; --rank and --world override it\n`), slurm.stderr);
  // The summary's counts are the share's, and it says so (the line a script keeps).
  summary(slurm.stderr, 2, 2, `(rank 1 of 2 from ${slurmFrom}; --rank 0 --world 1 for every file)`);
  assert.deepEqual(pick(lastJson(slurm.stdout)), { written: 2, total: 2, rank: 1, world: 2 });
  // A Kubernetes Indexed Job's pod: the index from the environment, the world from --world. --quiet hides the
  // progress bar only: the notice and the summary's share stay (a job array never cuts the work unsaid).
  assert.equal(k8s.status, 0, k8s.stderr);
  assert.deepEqual(written('k8s'), ['c.jpg']);
  const k8sFrom = 'JOB_COMPLETION_INDEX=2, --world 3 (a Kubernetes Indexed Job)';
  assert.ok(k8s.stderr.startsWith(`colorpipe: rank 2 of 3 from ${k8sFrom}; --rank and --world override it\n`), k8s.stderr);
  summary(k8s.stderr, 1, 1, `(rank 2 of 3 from ${k8sFrom}; --rank 0 --world 1 for every file)`);
  assert.deepEqual(pick(lastJson(k8s.stdout)), { written: 1, total: 1, rank: 2, world: 3 });
  // Flags win over the variables, which are then not read at all; every file: no share to name.
  assert.equal(flags.status, 0, flags.stderr);
  assert.deepEqual(written('flags'), names);
  assert.ok(!flags.stderr.includes('rank'), flags.stderr);
  assert.deepEqual(pick(lastJson(flags.stdout)), { written: 5, total: 5, rank: 0, world: 1 });

  // Usage errors (exit 2) that name the variable, or say that --world is needed; nothing is written.
  const bad: [NodeJS.ProcessEnv, RegExp][] = [
    [{ JOB_COMPLETION_INDEX: '1' }, /^colorpipe: JOB_COMPLETION_INDEX is set \(a Kubernetes Indexed Job\) but --world is not: give --world/],
    [{ SLURM_ARRAY_TASK_ID: 'x1', SLURM_ARRAY_TASK_COUNT: '2' }, /^colorpipe: Expected integer >= 0 for SLURM_ARRAY_TASK_ID \(in the environment\) but received "x1"\n/],
    [{ SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: 'many' }, /for SLURM_ARRAY_TASK_COUNT \(in the environment\)/],
    [{ SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_COUNT: '2' }, /for the rank from SLURM_ARRAY_TASK_ID 5 but received 5/],
  ];
  const badRuns = await Promise.all(bad.map(([env]) => colorize('bad', env)));
  for (const [i, [, re]] of bad.entries()) {
    const r = badRuns[i]!;
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, re);
    noStack(r.stderr);
  }
  assert.ok(!existsSync(join(dir, 'bad')));
});
