import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AbortError } from '../../src/core/errors.js';
import { abortErrorOf, isAbortError, onAbort, sleep, throwIfAborted } from '../../src/core/abort.js';
import { activeTimers } from '../helpers/wait.js';

test('abortErrorOf keeps the reason: an Error as it is, the platform default as AbortError, anything else as text', () => {
  const boom = new Error('boom');
  const a = new AbortController();
  a.abort(boom);
  assert.equal(abortErrorOf(a.signal), boom);
  const b = new AbortController();
  b.abort();
  const e = abortErrorOf(b.signal);
  assert.ok(e instanceof AbortError);
  assert.equal((e as AbortError).code, 'ABORT_ERR');
  const c = new AbortController();
  c.abort('Ctrl-C');
  assert.ok(abortErrorOf(c.signal) instanceof AbortError);
  assert.match(abortErrorOf(c.signal).message, /Ctrl-C/);
});

test('throwIfAborted throws the reason only once aborted', () => {
  const a = new AbortController();
  throwIfAborted(a.signal);
  throwIfAborted(undefined);
  a.abort(new RangeError('why'));
  assert.throws(() => throwIfAborted(a.signal), RangeError);
});

test('onAbort calls once, at once when already aborted, and its dispose removes the listener', () => {
  const a = new AbortController();
  let n = 0;
  const dispose = onAbort(a.signal, () => n++);
  a.abort();
  a.abort();
  assert.equal(n, 1);
  let m = 0;
  onAbort(a.signal, () => m++);
  assert.equal(m, 1, 'already aborted: called at once');
  const b = new AbortController();
  let k = 0;
  onAbort(b.signal, () => k++)();
  b.abort();
  assert.equal(k, 0, 'disposed before the abort');
  dispose();
});

test('sleep rejects with the reason when aborted and leaves no timer behind', async () => {
  const timers = activeTimers();
  const a = new AbortController();
  const p = sleep(60_000, a.signal);
  assert.equal(activeTimers(), timers + 1);
  a.abort(new Error('stop'));
  await assert.rejects(p, /stop/);
  // No timer keeps the process alive: the 60 s sleep was cleared.
  assert.equal(activeTimers(), timers);
  await sleep(1);
  const b = new AbortController();
  b.abort();
  await assert.rejects(sleep(10, b.signal), AbortError);
  assert.equal(activeTimers(), timers, 'an already aborted sleep starts none');
});

test('isAbortError: every abort error (ours, the platform\'s, piscina\'s, one wrapping it) and, given the signal, its reason', async () => {
  assert.equal(isAbortError(new AbortError()), true);
  assert.equal(isAbortError(new DOMException('stop', 'AbortError')), true, "the platform's");
  // piscina's: a plain Error subclass whose name is AbortError.
  const piscina = Object.defineProperty(new Error('The task has been aborted'), 'name', { value: 'AbortError' });
  assert.equal(isAbortError(piscina), true, "piscina's");
  const b = new AbortController();
  b.abort();
  await assert.rejects(sleep(10, b.signal), (e: unknown) => isAbortError(e), "what sleep and the stages throw on an abort");
  assert.equal(isAbortError(new Error('decode failed', { cause: new Error('worker', { cause: new AbortError() }) })), true, 'caused by one');
  assert.equal(isAbortError(Object.assign(new Error('x'), { code: 'ABORT_ERR' })), true, "Node's code");

  // Failures are not aborts, nor is something that is not an Error.
  assert.equal(isAbortError(new Error('disk on fire')), false);
  assert.equal(isAbortError(new Error('x', { cause: new RangeError('y') })), false);
  assert.equal(isAbortError('AbortError'), false);
  assert.equal(isAbortError(undefined), false);
  assert.equal(isAbortError({ name: 'AbortError' }), false, 'not an Error');
  // A cause chain that loops ends the search.
  const loop = new Error('loop');
  (loop as { cause?: unknown }).cause = loop;
  assert.equal(isAbortError(loop), false);

  // The reason a signal was aborted with is the abort's error where that signal was aborted, and only there.
  const boom = new Error('another stage failed');
  const a = new AbortController();
  assert.equal(isAbortError(boom, a.signal), false, 'not aborted yet');
  a.abort(boom);
  assert.equal(isAbortError(boom, a.signal), true);
  assert.equal(isAbortError(new Error('another stage failed'), a.signal), false, 'an equal message is not the reason');
  assert.equal(isAbortError(boom), false, 'without the signal: a failure');
});
