import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Interrupted, interruptible } from '../../src/commands/interrupt.js';
import { reportFailure } from '../../src/commands/report.js';
import { AbortError, InvalidOptionError } from '../../src/core/errors.js';
import { withSigint } from '../helpers/sigint.js';
import { settled, until } from '../helpers/wait.js';

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
    await until(settled(done), 'the work ended after the first SIGINT aborted it');
    assert.equal(await done, 130, 'returned 0 after the abort: 130');
    assert.ok(seen!.aborted);
    assert.deepEqual(exits, [130], 'the second SIGINT exits 130 at once');
    assert.match(lines.join(''), /^\ncolorpipe: interrupted: finishing up \(Ctrl-C again to quit now\)\n$/);
    assert.equal(process.listenerCount('SIGINT'), 0, 'the handler is removed');
  });
});

test('interruptible: an abort error after Ctrl-C is 130 quietly; another is thrown on as Interrupted, said once and still 130; without Ctrl-C errors pass', async () => {
  await withSigint(async (exits, lines) => {
    const abortWith = async (err: Error) => {
      const done = interruptible('x', async (stop) => {
        queueMicrotask(() => process.emit('SIGINT'));
        await new Promise((r) => stop.addEventListener('abort', r, { once: true }));
        throw err;
      });
      await until(settled(done), 'the work ended after the SIGINT aborted it');
      return done;
    };
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
