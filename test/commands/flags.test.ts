import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ON_ERROR, boolean, flagNames, int, number, oneOf, parseFlags, string, usage, type FlagTable } from '../../src/commands/flags.js';
import { InvalidOptionError } from '../../src/core/errors.js';

const FLAGS = {
  in: { option: 'input', kind: string({ required: true }), value: 'DIR', help: 'images' },
  batch: { option: 'batch', kind: int({ min: 1 }), value: 'B', help: 'images per batch' },
  lr: { kind: number({ min: 0, default: 0.5 }), value: 'LR', help: 'learning rate' },
  opset: { kind: int({ min: 13, max: 21, default: 17 }), value: 'N', help: 'ONNX opset' },
  format: { option: ['format', 'fmt'], kind: oneOf(['png', 'jpg'] as const, 'png'), value: 'F', help: 'png (default)|jpg' },
  'on-error': ON_ERROR,
  quiet: { kind: boolean, help: 'no progress bar' },
} satisfies FlagTable;
const USAGE = usage('Usage: pipe thing --in DIR', FLAGS);
const read = (...argv: string[]) => parseFlags(argv, FLAGS, USAGE);

test('parseFlags: typed values from the table; defaults for absent flags', () => {
  assert.deepEqual(read('--in', 'a'), { in: 'a', batch: undefined, lr: 0.5, opset: 17, format: 'png', 'on-error': 'skip', quiet: false });
  const v = read('--in', 'a', '--batch', '8', '--lr', '0.01', '--opset', '21', '--format', 'jpg', '--on-error', 'fail', '--quiet');
  assert.deepEqual(v, { in: 'a', batch: 8, lr: 0.01, opset: 21, format: 'jpg', 'on-error': 'fail', quiet: true });
});

test('a bad or missing value is a usage error naming the flag, in the one message shape', () => {
  const fails = (argv: string[], re: RegExp) => assert.throws(() => read(...argv), (e: unknown) => e instanceof InvalidOptionError && re.test(e.message), String(re));
  fails(['--in', 'a', '--batch', '0'], /^Expected integer >= 1 for --batch but received "0"$/);
  fails(['--in', 'a', '--batch', '1.5'], /^Expected integer >= 1 for --batch but received "1\.5"$/);
  fails(['--in', 'a', '--lr', 'x'], /^Expected number >= 0 for --lr but received "x"$/);
  fails(['--in', 'a', '--opset', '99'], /^Expected integer in \[13, 21\] for --opset but received "99"$/);
  fails(['--in', 'a', '--format', 'gif'], /^Expected one of png\|jpg for --format but received "gif"$/);
  fails(['--in', 'a', '--on-error', 'retry'], /^Expected one of skip\|fail for --on-error but received "retry"$/);
  // A missing required flag also shows the usage.
  fails([], new RegExp(`^Missing --in\\n${USAGE.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  fails(['--in', ''], /^Missing --in\n/);
});

test('parseFlags: strict; an unknown flag or a value missing is an error that carries the usage', () => {
  assert.throws(() => read('--in', 'a', '--nope'), (e: unknown) => e instanceof InvalidOptionError && /^Unknown option '--nope'/.test(e.message) && e.usage === USAGE);
  assert.throws(() => read('--in'), (e: unknown) => e instanceof InvalidOptionError && e.usage === USAGE);
});

test('parseFlags: a stray positional is an error; names that look like files (an unquoted glob) suggest quoting', { timeout: 5000 }, () => {
  const flags = { shards: { kind: string(), value: 'GLOB', help: 'shards' }, out: { kind: string(), value: 'DIR', help: 'out' } };
  const parse = (argv: string[]) => parseFlags(argv, flags, USAGE);
  // What the shell makes of `--shards data/*.tar --out runs/x`.
  assert.throws(() => parse(['--shards', 'data/d-000000.tar', 'data/d-000001.tar', 'data/d-000002.tar', '--out', 'runs/x']),
    (e: unknown) => e instanceof InvalidOptionError &&
      e.message.startsWith(`Unexpected arguments "data/d-000001.tar", "data/d-000002.tar": options take one value each; if the shell expanded a glob, quote it: --shards 'data/*.tar'\n`) &&
      e.message.includes(USAGE));
  // Many names are shortened; a word that is no file name gets no glob hint.
  assert.throws(() => parse(['--out', 'o', 'a.tar', 'b.tar', 'c.tar', 'd.tar', 'e.tar']), /Unexpected arguments "a.tar", "b.tar", "c.tar" and 2 more/);
  assert.throws(() => parse(['--out', 'o', 'oops']), (e: unknown) => e instanceof InvalidOptionError && /^Unexpected argument "oops": options take one value each\n/.test(e.message));
  assert.throws(() => parse(['x.png']), /Unexpected argument "x.png".*quote it/);
});

test('usage: the head, then a line per flag in table order, help aligned in one column and wrapped', () => {
  const long = 'word '.repeat(40).trim();
  const text = usage('Usage: pipe x [options]', {
    in: { kind: string(), value: 'DIR', help: 'images' },
    'on-error': ON_ERROR,
    quiet: { kind: boolean, help: long },
  });
  const lines = text.split('\n');
  assert.equal(lines[0], 'Usage: pipe x [options]');
  assert.equal(lines[1], '  --in DIR             images');
  // A oneOf without a value name shows its values.
  assert.equal(lines[2], '  --on-error skip|fail skip and report bad inputs (default) or stop at the first');
  assert.match(lines[3]!, /^ {2}--quiet {14}word word/);
  assert.ok(lines.length > 4, 'a long help is wrapped');
  for (const l of lines.slice(4)) assert.match(l, /^ {23}word/, 'continuation lines align with the help column');
  assert.ok(lines.every((l) => l.length <= 120), 'no line past 120 characters');
  assert.equal(lines.slice(3).join(' ').replace(/\s+/g, ' ').replace('--quiet ', '').trim(), long, 'every word kept, in order');
});

test('flagNames: every API option of the table, to its flag (several options may name one flag)', () => {
  assert.deepEqual(flagNames(FLAGS), { input: '--in', batch: '--batch', format: '--format', fmt: '--format', onError: '--on-error' });
});
