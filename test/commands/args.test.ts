import { test } from 'node:test';
import assert from 'node:assert/strict';
import { num, oneOf, parse, required, str } from '../../src/commands/args.js';
import { InvalidOptionError } from '../../src/core/errors.js';

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
