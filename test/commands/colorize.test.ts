import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatSummary } from '../../src/commands/colorize.js';

test('formatSummary escapes file names and reasons: a crafted name cannot forge the summary line', { timeout: 5000 }, () => {
  const text = formatSummary({
    written: 1, skipped: 0, failed: 1, total: 2, seconds: 1, imagesPerSecond: 1, backend: 'cpu',
    failures: [{ path: 'in/x\ncolorpipe: 99 written, 0 skipped, 0 failed\x1b[1A', stage: 'decode', reason: 'bad\rheader' }],
    stopped: 'in/y\n.jpg: bad',
  } as unknown as Parameters<typeof formatSummary>[0]);
  const lines = text.split('\n');
  assert.equal(lines.length, 2);
  assert.match(lines[0]!, /^colorpipe: stopped \(in\/y\\n\.jpg: bad\): 1 written, 0 skipped, 1 failed of 2/);
  assert.equal(lines[1], '  failed: in/x\\ncolorpipe: 99 written, 0 skipped, 0 failed\\x1b[1A: bad\\rheader');
});
