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

test('formatSummary names the share the counts are of when the run takes one (world > 1), and where it came from', { timeout: 5000 }, () => {
  const s = {
    written: 2, skipped: 0, failed: 0, total: 2, seconds: 1, imagesPerSecond: 2, backend: 'cpu', failures: [],
  } as unknown as Parameters<typeof formatSummary>[0];
  const slurm = { rank: 0, world: 4, from: 'SLURM_ARRAY_TASK_ID=0, SLURM_ARRAY_TASK_COUNT=4 (a Slurm job array)' };
  assert.equal(formatSummary(s, slurm),
    'colorpipe: 2 written, 0 skipped, 0 failed of 2 (rank 0 of 4 from SLURM_ARRAY_TASK_ID=0, SLURM_ARRAY_TASK_COUNT=4 ' +
      '(a Slurm job array); --rank 0 --world 1 for every file) in 1.0 s (2.0 img/s, cpu)');
  // Flags the user typed: the share, no hint; a world of one, or no share: every file, nothing added.
  assert.match(formatSummary(s, { rank: 1, world: 3, from: null }), /^colorpipe: 2 written, 0 skipped, 0 failed of 2 \(rank 1 of 3\) in 1\.0 s/);
  const all = 'colorpipe: 2 written, 0 skipped, 0 failed of 2 in 1.0 s (2.0 img/s, cpu)';
  assert.equal(formatSummary(s, { rank: 0, world: 1, from: 'SLURM_ARRAY_TASK_ID=0, SLURM_ARRAY_TASK_COUNT=1 (a Slurm job array)' }), all);
  assert.equal(formatSummary(s), all);
});
