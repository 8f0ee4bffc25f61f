import { test } from 'node:test';
import assert from 'node:assert/strict';
import { interruptible } from '../../src/commands/interrupt.js';
import { reportFailure, withFlagNames } from '../../src/commands/report.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { withSigint } from '../helpers/sigint.js';

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
