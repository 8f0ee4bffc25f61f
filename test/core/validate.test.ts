import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidOptionError } from '../../src/core/errors.js';
import {
  bool, describe, finiteNumber, fn, invalidOption, nonNegativeInt, object, oneOf, optional, positiveInt, positiveNumber,
  rankAndWorld, string,
} from '../../src/core/validate.js';

test('each check returns the value it accepts', () => {
  assert.equal(positiveInt(3, 'n'), 3);
  assert.equal(nonNegativeInt(0, 'n'), 0);
  assert.equal(positiveNumber(0.5, 'x'), 0.5);
  assert.equal(finiteNumber(-2, 'x', { min: -3, max: 0 }), -2);
  assert.equal(bool(false, 'b'), false);
  assert.equal(string('a', 's'), 'a');
  const f = () => 1;
  assert.equal(fn(f, 'f'), f);
  const o = { a: 1 };
  assert.equal(object(o, 'o'), o);
  assert.equal(oneOf('png', 'fmt', ['png', 'jpeg'] as const), 'png');
  assert.equal(optional(undefined, 'n', positiveInt, 7), 7);
  assert.equal(optional(2, 'n', positiveInt, 7), 2);
});

test('one message shape: Expected WHAT for NAME but received ACTUAL, as InvalidOptionError', () => {
  const cases: Array<[() => unknown, RegExp]> = [
    [() => positiveInt(0, 'options.size'), /^Expected positive integer for options.size but received 0$/],
    [() => positiveInt(1.5, '--batch'), /^Expected positive integer for --batch but received 1.5$/],
    [() => nonNegativeInt(-1, 'n'), /^Expected non-negative integer for n but received -1$/],
    [() => positiveNumber(Number.NaN, 'lr'), /^Expected positive number for lr but received NaN$/],
    [() => finiteNumber(5, 'q', { min: 1, max: 4 }), /^Expected finite number in \[1, 4\] for q but received 5$/],
    [() => bool('yes', 'b'), /^Expected boolean for b but received "yes"$/],
    [() => string('', 's'), /^Expected non-empty string for s but received ""$/],
    [() => fn(3, 'f'), /^Expected function for f but received 3$/],
    [() => object([1, 2], 'o'), /^Expected object for o but received an array of 2$/],
    [() => object(null, 'o'), /^Expected object for o but received null$/],
    [() => oneOf('gif', 'fmt', ['png', 'jpeg']), /^Expected one of "png", "jpeg" for fmt but received "gif"$/],
    [() => optional('x', 'n', positiveInt, 1), /^Expected positive integer for n but received "x"$/],
  ];
  for (const [call, re] of cases) {
    assert.throws(call, (err: unknown) => err instanceof InvalidOptionError && err.code === 'ERR_INVALID_OPTION' && re.test(err.message));
  }
});

test('describe keeps messages to one short line', () => {
  assert.equal(describe(undefined), 'undefined');
  assert.equal(describe({ a: 1 }), 'an object');
  assert.equal(describe(() => 1), 'a function');
  assert.ok(describe('x'.repeat(500)).length < 90);
  assert.match(invalidOption('--in', 'a directory', 'a\nb').message, /received "a\\nb"$/, 'a newline is escaped, not printed');
});

test('rankAndWorld: defaults, bounds', () => {
  assert.deepEqual(rankAndWorld({}), { rank: 0, world: 1 });
  assert.deepEqual(rankAndWorld({ rank: 2, world: 3 }), { rank: 2, world: 3 });
  assert.throws(() => rankAndWorld({ rank: 3, world: 3 }), /Expected integer in \[0, 2\] for options.rank but received 3/);
  assert.throws(() => rankAndWorld({ world: 0 }), /Expected positive integer for options.world/);
});
