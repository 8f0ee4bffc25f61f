import { test } from 'node:test';
import assert from 'node:assert/strict';
import { num, oneOf, parse, required, str } from '../../src/commands/args.js';
import { InvalidOptionError } from '../../src/core/errors.js';

const USAGE = 'Usage: pipe thing --in DIR';

test('parse: strict options; an unknown flag is an error that carries the usage', () => {
  const { values, positionals } = parse(['--in', 'a', 'extra'], { in: { type: 'string' } }, USAGE);
  assert.equal(str(values.in), 'a');
  assert.deepEqual(positionals, ['extra']);
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
