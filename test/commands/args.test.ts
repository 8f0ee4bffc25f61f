import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Interrupted, interruptible } from '../../src/commands/interrupt.js';
import { num, oneOf, parse, required, str } from '../../src/commands/flags.js';
import { reportFailure, withFlagNames } from '../../src/commands/report.js';
import { shareNotice, shareOf } from '../../src/commands/share.js';
import { AbortError, InvalidOptionError } from '../../src/core/errors.js';

const USAGE = 'Usage: pipe thing --in DIR';

test('parse: strict options; an unknown flag is an error that carries the usage', () => {
  const { values, positionals } = parse(['--in', 'a'], { in: { type: 'string' } }, USAGE);
  assert.equal(str(values.in), 'a');
  assert.deepEqual(positionals, []);
  assert.throws(() => parse(['--nope'], { in: { type: 'string' } }, USAGE), (e: unknown) => e instanceof InvalidOptionError && e.message.includes(USAGE));
});

test('num, required and oneOf name the flag, in the one message shape', () => {
  assert.equal(num('8', 'batch', { int: true, min: 1 }), 8);
  assert.equal(num(undefined, 'batch'), undefined);
  assert.throws(() => num('0', 'batch', { int: true, min: 1 }), /^InvalidOptionError: Expected integer >= 1 for --batch but received "0"$/);
  assert.throws(() => num('x', 'lr'), /Expected number for --lr but received "x"/);
  assert.throws(() => required(undefined, 'in', USAGE), /Missing --in/);
  assert.equal(oneOf(undefined, 'format', ['png', 'jpg'] as const, 'png'), 'png');
  assert.throws(() => oneOf('gif', 'format', ['png', 'jpg'] as const, 'png'), /Expected one of png\|jpg for --format but received "gif"/);
});

test('parse: a stray positional is an error; names that look like files (an unquoted glob) suggest quoting', { timeout: 5000 }, () => {
  const opts = { shards: { type: 'string' as const }, out: { type: 'string' as const } };
  // What the shell makes of `--shards data/*.tar --out runs/x`.
  assert.throws(() => parse(['--shards', 'data/d-000000.tar', 'data/d-000001.tar', 'data/d-000002.tar', '--out', 'runs/x'], opts, USAGE),
    (e: unknown) => e instanceof InvalidOptionError &&
      e.message.startsWith(`Unexpected arguments "data/d-000001.tar", "data/d-000002.tar": options take one value each; if the shell expanded a glob, quote it: --shards 'data/*.tar'\n`) &&
      e.message.includes(USAGE));
  // Many names are shortened; a word that is no file name gets no glob hint.
  assert.throws(() => parse(['--out', 'o', 'a.tar', 'b.tar', 'c.tar', 'd.tar', 'e.tar'], opts, USAGE), /Unexpected arguments "a.tar", "b.tar", "c.tar" and 2 more/);
  assert.throws(() => parse(['--out', 'o', 'oops'], opts, USAGE), (e: unknown) => e instanceof InvalidOptionError && /^Unexpected argument "oops": options take one value each\n/.test(e.message));
  assert.throws(() => parse(['x.png'], opts, USAGE), /Unexpected argument "x.png".*quote it/);
});

test('shareOf: --rank and --world, else Slurm job-array variables (ID less MIN, over STEP; COUNT), flags first', () => {
  const none = {};
  assert.equal(shareOf({}, none), undefined, 'no flags, no job array: everything');
  assert.deepEqual(shareOf({ rank: '1', world: '3' }, none), { rank: 1, world: 3, from: null });
  assert.deepEqual(shareOf({}, { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_COUNT: '4' }), {
    rank: 2, world: 4, from: 'SLURM_ARRAY_TASK_ID=2, SLURM_ARRAY_TASK_COUNT=4 (a Slurm job array)',
  });
  // #SBATCH --array=1-4: IDs 1..4 are ranks 0..3; --array=0-6:2: IDs 0, 2, 4, 6.
  assert.equal(shareOf({}, { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '4' })!.rank, 3);
  assert.equal(shareOf({}, { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_MIN: '1', SLURM_ARRAY_TASK_COUNT: '4' })!.rank, 0);
  assert.equal(shareOf({}, { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_STEP: '2', SLURM_ARRAY_TASK_COUNT: '4' })!.rank, 2);
  // Flags win, and a variable a flag replaces is never read (not even to be checked).
  const slurm = { SLURM_ARRAY_TASK_ID: 'x', SLURM_ARRAY_TASK_COUNT: 'y' };
  assert.deepEqual(shareOf({ rank: '0', world: '1' }, slurm), { rank: 0, world: 1, from: null });
  assert.deepEqual(shareOf({ world: '8' }, { SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_COUNT: 'y' }), {
    rank: 5, world: 8, from: 'SLURM_ARRAY_TASK_ID=5, --world 8 (a Slurm job array)',
  });
  assert.equal(shareOf({ rank: '1' }, { SLURM_ARRAY_TASK_ID: 'x', SLURM_ARRAY_TASK_COUNT: '2' })!.rank, 1);
});

test('shareOf: a Kubernetes Indexed Job gives the rank (JOB_COMPLETION_INDEX); the world must come with --world', () => {
  const k8s = { JOB_COMPLETION_INDEX: '3' };
  assert.deepEqual(shareOf({ world: '4' }, k8s), { rank: 3, world: 4, from: 'JOB_COMPLETION_INDEX=3, --world 4 (a Kubernetes Indexed Job)' });
  assert.throws(() => shareOf({}, k8s), (e: unknown) => e instanceof InvalidOptionError && /JOB_COMPLETION_INDEX is set .* but --world is not: give --world/.test(e.message));
  assert.deepEqual(shareOf({ rank: '0', world: '1' }, k8s), { rank: 0, world: 1, from: null });
  assert.match(shareNotice(shareOf({ world: '4' }, k8s)!), /^colorpipe: rank 3 of 4 from JOB_COMPLETION_INDEX=3, --world 4 \(a Kubernetes Indexed Job\); --rank and --world override it$/);
});

test('shareOf: bad values are usage errors naming the flag or the variable', () => {
  const usage = (fn: () => unknown, re: RegExp) => assert.throws(fn, (e: unknown) => e instanceof InvalidOptionError && re.test(e.message), String(re));
  usage(() => shareOf({ rank: '3', world: '2' }, {}), /^Expected integer in \[0, 1\] for --rank but received 3$/);
  usage(() => shareOf({ rank: '1' }, {}), /^Expected --rank and --world together$/);
  usage(() => shareOf({ world: '0', rank: '0' }, {}), /for --world/);
  usage(() => shareOf({}, { SLURM_ARRAY_TASK_ID: 'abc', SLURM_ARRAY_TASK_COUNT: '4' }), /^Expected integer >= 0 for SLURM_ARRAY_TASK_ID \(in the environment\) but received "abc"$/);
  usage(() => shareOf({}, { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '0' }), /for SLURM_ARRAY_TASK_COUNT \(in the environment\)/);
  usage(() => shareOf({}, { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_MIN: '-1', SLURM_ARRAY_TASK_COUNT: '4' }), /for SLURM_ARRAY_TASK_MIN/);
  usage(() => shareOf({}, { SLURM_ARRAY_TASK_ID: '1' }), /SLURM_ARRAY_TASK_COUNT is not: give --world/);
  // An array that does not start at SLURM_ARRAY_TASK_MIN's rank 0, or a list with gaps: out of range, said so.
  usage(() => shareOf({}, { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_COUNT: '4' }), /^Expected integer in \[0, 3\] \(the world, 4, from SLURM_ARRAY_TASK_COUNT\) for the rank from SLURM_ARRAY_TASK_ID 4 but received 4$/);
  usage(() => shareOf({}, { SLURM_ARRAY_TASK_ID: '3', SLURM_ARRAY_TASK_STEP: '2', SLURM_ARRAY_TASK_COUNT: '4' }), /received 1\.5$/);
  usage(() => shareOf({ world: '2' }, { JOB_COMPLETION_INDEX: '2' }), /for the rank from JOB_COMPLETION_INDEX but received 2/);
  usage(() => shareOf({ world: '2' }, { JOB_COMPLETION_INDEX: '1.0' }), /for JOB_COMPLETION_INDEX \(in the environment\) but received "1\.0"/);
});

test('withFlagNames: the API option names a command maps become its flags; the rest is left alone', () => {
  const names = { input: '--in', urls: '--shards' };
  const usage = 'Usage: pipe x';
  const e = withFlagNames(new InvalidOptionError('Expected an existing file for options.input but received /x', { usage }), names) as InvalidOptionError;
  assert.ok(e instanceof InvalidOptionError);
  assert.equal(e.brief, 'Expected an existing file for --in but received /x');
  assert.equal(e.usage, usage, 'the usage is kept');
  const nested = new InvalidOptionError('Expected options.urls.x or options.inputs or options.concurrency');
  assert.equal((withFlagNames(nested, names) as InvalidOptionError).brief, 'Expected options.urls.x or options.inputs or options.concurrency');
  assert.equal((withFlagNames(new InvalidOptionError('for options.urls.'), names) as InvalidOptionError).brief, 'for --shards.');
  const other = new Error('options.input');
  assert.equal(withFlagNames(other, names), other, 'only usage errors are reworded');
  assert.equal(withFlagNames(nested, undefined), nested);
});

/** Runs `fn` with SIGINT's listeners (the test runner's, if any) set aside, process.exit and stderr recorded. */
async function withSigint<T>(fn: (exits: number[], lines: string[]) => Promise<T>): Promise<T> {
  const saved = process.listeners('SIGINT');
  process.removeAllListeners('SIGINT');
  const exit = process.exit;
  const write = process.stderr.write;
  const exits: number[] = [];
  const lines: string[] = [];
  process.exit = ((code?: number) => void exits.push(code ?? 0)) as typeof process.exit;
  process.stderr.write = ((chunk: string) => (lines.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    return await fn(exits, lines);
  } finally {
    process.exit = exit;
    process.stderr.write = write;
    for (const l of saved) process.on('SIGINT', l);
  }
}

test('interruptible: the first SIGINT aborts the work and the status is 130; a second exits 130 at once', async () => {
  await withSigint(async (exits, lines) => {
    let seen: AbortSignal | undefined;
    const done = interruptible('finishing up', async (stop) => {
      seen = stop;
      await new Promise((r) => stop.addEventListener('abort', r, { once: true }));
      process.emit('SIGINT'); // a second Ctrl-C while the work finishes
      return 0;
    });
    assert.equal(process.listenerCount('SIGINT'), 1);
    process.emit('SIGINT');
    assert.equal(await done, 130, 'returned 0 after the abort: 130');
    assert.ok(seen!.aborted);
    assert.deepEqual(exits, [130], 'the second SIGINT exits 130 at once');
    assert.match(lines.join(''), /^\ncolorpipe: interrupted: finishing up \(Ctrl-C again to quit now\)\n$/);
    assert.equal(process.listenerCount('SIGINT'), 0, 'the handler is removed');
  });
});

test('interruptible: an abort error after Ctrl-C is 130 quietly; another is thrown on as Interrupted, said once and still 130; without Ctrl-C errors pass', async () => {
  await withSigint(async (exits, lines) => {
    const abortWith = (err: Error) =>
      interruptible('x', async (stop) => {
        queueMicrotask(() => process.emit('SIGINT'));
        await new Promise((r) => stop.addEventListener('abort', r, { once: true }));
        throw err;
      });
    assert.equal(await abortWith(new AbortError()), 130);
    assert.equal(await abortWith(new Error('wrapped', { cause: new DOMException('stop', 'AbortError') })), 130);
    assert.ok(!lines.join('').includes('wrapped'));
    lines.length = 0;
    const fire = new Error('disk on fire');
    await assert.rejects(abortWith(fire), (e: unknown) => e instanceof Interrupted && e.error === fire);
    assert.deepEqual(lines, ['\ncolorpipe: interrupted: x (Ctrl-C again to quit now)\n'], 'interruptible itself prints no error');
    lines.length = 0;
    assert.equal(reportFailure(await abortWith(fire).catch((e: unknown) => e), undefined), 130);
    assert.deepEqual(lines.slice(1), ['colorpipe: disk on fire\n']);
    await assert.rejects(interruptible('x', async () => { throw new InvalidOptionError('bad'); }), (e: unknown) => e instanceof InvalidOptionError && /bad/.test(e.message));
    assert.equal(await interruptible('x', async () => 1), 1);
    assert.deepEqual(exits, []);
    assert.equal(process.listenerCount('SIGINT'), 0);
  });
});

test('reportFailure: every error that ends a command, after Ctrl-C too, names the flags (options.input -> --in); one line; its status', async () => {
  await withSigint(async (_exits, lines) => {
    const names = { input: '--in' };
    const usage = 'Usage: pipe thing --in DIR';
    const bad = () => new InvalidOptionError('Expected an existing directory for options.input but received "x"', { usage });
    // Thrown after the first Ctrl-C (a check the work makes once stopped): said with the flag, status 130.
    const afterCtrlC = await interruptible('x', async (stop) => {
      queueMicrotask(() => process.emit('SIGINT'));
      await new Promise((r) => stop.addEventListener('abort', r, { once: true }));
      throw bad();
    }).catch((e: unknown) => e);
    lines.length = 0;
    assert.equal(reportFailure(afterCtrlC, names), 130);
    assert.deepEqual(lines, [`colorpipe: Expected an existing directory for --in but received "x"\n${usage}\n`]);
    // Without Ctrl-C: the same words, status 2 (usage); any other error: its line, status 1.
    lines.length = 0;
    assert.equal(reportFailure(bad(), names), 2);
    assert.deepEqual(lines, [`colorpipe: Expected an existing directory for --in but received "x"\n${usage}\n`]);
    lines.length = 0;
    assert.equal(reportFailure(new Error('disk on fire'), names), 1);
    assert.deepEqual(lines, ['colorpipe: disk on fire\n']);
  });
});
