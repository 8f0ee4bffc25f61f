import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { progress, formatBar, formatDuration } from '../../src/stages/progress.js';
import { pipeline, collect } from '../../src/core/pipeline.js';

function sink(tty: boolean) {
  const out: string[] = [];
  const s = new Writable({ write(c, _e, cb) { out.push(String(c)); cb(); } }) as Writable & { isTTY?: boolean; columns?: number };
  s.isTTY = tty;
  s.columns = 100;
  return { s, out };
}

test('passes items through unchanged and draws a final line with the count', async () => {
  const { s, out } = sink(false);
  const items = await collect(pipeline([1, 2, 3], progress<number>({ total: 3, stream: s, render: (x) => `item ${x}` })));
  assert.deepEqual(items, [1, 2, 3]);
  const last = out.at(-1)!;
  assert.match(last, /3\/3 item 3/);
  assert.match(last, /100%/);
});

test('on a TTY it redraws one line with carriage returns; quiet draws nothing', async () => {
  const tty = sink(true);
  await collect(pipeline([1, 2], progress<number>({ stream: tty.s })));
  assert.ok(tty.out.every((l) => l.startsWith('\r') || l === '\n'));
  const q = sink(false);
  await collect(pipeline([1, 2], progress<number>({ stream: q.s, quiet: true })));
  assert.equal(q.out.length, 0);
});

test('bar and duration formatting', () => {
  assert.equal(formatBar(5, 10, 10), '[#####.....]  50% ');
  assert.equal(formatBar(1, undefined), '');
  assert.equal(formatDuration(75), '1m15s');
  assert.equal(formatDuration(9.4), '9s');
});
