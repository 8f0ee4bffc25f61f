import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { progress, formatBar, formatDuration, ERASE_TO_END_OF_LINE } from '../../src/stages/progress.js';
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

/**
 * A terminal as far as a progress bar needs one: a stream with isTTY and columns whose writes are played onto a
 * screen of lines (printable characters overwrite at the cursor; \r, \n and CSI K, erase to end of line).
 * Any other control character or escape sequence fails the test.
 */
function terminal(columns: number) {
  const lines: string[] = [''];
  let col = 0;
  const play = (text: string) => {
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      const row = lines.length - 1;
      if (c === '\r') col = 0;
      else if (c === '\n') {
        lines.push('');
        col = 0;
      } else if (text.startsWith(ERASE_TO_END_OF_LINE, i)) {
        lines[row] = lines[row]!.slice(0, col);
        i += ERASE_TO_END_OF_LINE.length - 1;
      } else if (c < ' ' || c === '\x7f') {
        throw new Error(`unexpected control character ${JSON.stringify(c)} in ${JSON.stringify(text)}`);
      } else {
        const line = lines[row]!.padEnd(col);
        lines[row] = line.slice(0, col) + c + line.slice(col + 1);
        col++;
      }
    }
  };
  const s = new Writable({ write(c, _e, cb) { play(String(c)); cb(); } }) as Writable & { isTTY?: boolean; columns?: number };
  s.isTTY = true;
  s.columns = columns;
  return { s, lines };
}

test('on a TTY a shorter frame leaves nothing of the longer one before it', async (t) => {
  // A fake clock, so the bar draws a frame for each item (it redraws at most every 100 ms on a TTY).
  const realNow = performance.now;
  let now = 10_000;
  performance.now = () => now;
  t.after(() => (performance.now = realNow));
  const term = terminal(100);
  const frames: string[] = [];
  const source = async function* () {
    for (const x of ['the first item has a long description', 'b']) {
      yield x;
      now += 1000;
    }
  };
  await collect(pipeline(source, progress<string>({ total: 2, stream: term.s, render: (x) => { frames.push(x); return x; } })));
  assert.ok(frames.length >= 2, 'a frame for the long item, then a shorter one');
  assert.equal(term.lines.length, 2, 'one line, then the newline after the final frame');
  assert.equal(term.lines[1], '');
  // Exactly the final frame: no "eta", no tail of the first frame's text.
  assert.equal(term.lines[0], `${formatBar(2, 2)}2/2 b ${formatDuration(2)}`);
  // Frames wider than the terminal are cut one column short of its width (no wrap onto a second line).
  const narrow = terminal(20);
  await collect(pipeline(['x'.repeat(50)], progress<string>({ stream: narrow.s, render: (x) => x })));
  assert.equal(narrow.lines[0]!.length, 19);
});

test('bar and duration formatting', () => {
  assert.equal(formatBar(5, 10, 10), '[#####.....]  50% ');
  assert.equal(formatBar(1, undefined), '');
  assert.equal(formatDuration(75), '1m15s');
  assert.equal(formatDuration(9.4), '9s');
});
