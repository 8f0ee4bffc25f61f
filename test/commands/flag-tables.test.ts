/** Every command's flags are written once, in its table: its usage, --help, FLAG_NAMES and `pipe --help` follow it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { flagNames, type FlagTable } from '../../src/commands/flags.js';
import { withFlagNames, type FlagNames } from '../../src/commands/report.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { pipe, run } from '../helpers/cli.js';

interface Command {
  FLAGS: FlagTable;
  USAGE: string;
  FLAG_NAMES: FlagNames;
}

const COMMANDS: Record<string, () => Promise<Command>> = {
  train: () => import('../../src/commands/train.js'),
  colorize: () => import('../../src/commands/colorize.js'),
  shard: () => import('../../src/commands/shard.js'),
  eval: () => import('../../src/commands/eval.js'),
  export: () => import('../../src/commands/export.js'),
  serve: () => import('../../src/commands/serve.js'),
  demo: () => import('../../src/commands/demo.js'),
};

/** `--name` as a whole flag, not the start of a longer one (`--val-shards` is not `--val`). */
const flagRe = (name: string) => new RegExp(`--${name}(?![\\w-])`);

test("every command's usage has a line per flag of its table, in its order, and no other flag line", async () => {
  for (const [name, load] of Object.entries(COMMANDS)) {
    const { FLAGS, USAGE } = await load();
    const listed = [...USAGE.matchAll(/^ {2}--([a-z][a-z0-9-]*)/gm)].map((m) => m[1]);
    assert.deepEqual(listed, Object.keys(FLAGS), name);
    for (const [flag, f] of Object.entries(FLAGS)) assert.ok(f.help.length > 0, `${name} --${flag} has help`);
  }
});

test('FLAG_NAMES come from the table: each API option to the flag whose entry names it', async () => {
  for (const [name, load] of Object.entries(COMMANDS)) {
    const { FLAGS, FLAG_NAMES } = await load();
    assert.deepEqual(FLAG_NAMES, flagNames(FLAGS), name);
    for (const [option, flag] of Object.entries(FLAG_NAMES)) {
      const entry = FLAGS[flag.slice(2)];
      assert.ok(entry, `${name}: ${flag} is in the table`);
      assert.ok([entry.option ?? []].flat().includes(option), `${name}: ${flag} sets options.${option}`);
    }
  }
});

test("an error from the API naming options.X is said with the command's flag for X", async () => {
  for (const [name, load] of Object.entries(COMMANDS)) {
    const { FLAG_NAMES } = await load();
    for (const [option, flag] of Object.entries(FLAG_NAMES)) {
      const usage = `Usage: pipe ${name}`;
      const e = withFlagNames(new InvalidOptionError(`Expected a positive integer for options.${option} but received 0`, { usage }), FLAG_NAMES);
      assert.ok(e instanceof InvalidOptionError, `${name} ${option}`);
      assert.equal(e.brief, `Expected a positive integer for ${flag} but received 0`, `${name} ${option}`);
      assert.equal(e.usage, usage);
    }
  }
  // The ones cli.test.ts sees end to end, named here so a table cannot drop them.
  const names = async (name: string) => (await COMMANDS[name]!()).FLAG_NAMES;
  assert.equal((await names('train')).urls, '--shards');
  assert.equal((await names('colorize')).runtime, '--engine');
  assert.equal((await names('shard')).onError, '--on-error');
  assert.equal((await names('eval')).input, '--in');
  assert.equal((await names('export')).model, '--model');
  assert.equal((await names('serve')).runs, '--runs');
});

test('pipe COMMAND --help prints the usage, every flag of the table, and exits 0', { timeout: 120_000 }, async () => {
  const names = Object.keys(COMMANDS);
  const results = await Promise.all(names.map((name) => run([name, '--help'])));
  for (const [i, name] of names.entries()) {
    const r = results[i]!;
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    const { FLAGS, USAGE } = await COMMANDS[name]!();
    assert.equal(r.stdout, USAGE + '\n', name);
    for (const flag of Object.keys(FLAGS)) assert.match(r.stdout, flagRe(flag), `${name} --help lists --${flag}`);
  }
});

test("pipe --help lists every command and, on its lines, every flag the command's table has", { timeout: 60_000 }, async () => {
  const r = pipe(['--help']);
  assert.equal(r.status, 0, r.stderr);
  // A command's lines: `  pipe NAME ...` and the indented lines under it.
  const blocks = new Map<string, string>();
  let current: string | undefined;
  for (const line of r.stdout.split('\n')) {
    const m = /^ {2}pipe (\w+)/.exec(line);
    if (m) blocks.set((current = m[1]!), line);
    else if (current && /^ {4,}\S/.test(line)) blocks.set(current, `${blocks.get(current)}\n${line}`);
    else current = undefined;
  }
  for (const [name, load] of Object.entries(COMMANDS)) {
    const block = blocks.get(name);
    assert.ok(block, `pipe --help has pipe ${name}`);
    for (const flag of Object.keys((await load()).FLAGS)) assert.match(block, flagRe(flag), `pipe --help: pipe ${name} lists --${flag}`);
  }
  assert.ok(blocks.has('bench'));
});
