import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filter, filterReason, colourFilter, filteredSummary, recordFiltered } from '../../src/stages/filter.js';
import { labSampleStats } from '../../src/color/stats.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { Reporter, InvalidOptionError } from '../../src/core/errors.js';
import { splitLab } from '../../src/color/lab.js';
import type { LabSample } from '../../src/types.js';
import { colourfulRgb } from '../helpers/images.js';

function labSample(key: string, rgb: Uint8Array, w: number, h: number): LabSample {
  const { L, ab } = splitLab(rgb);
  return { key, width: w, height: h, L, ab };
}
/** Every pixel the same colour: chroma but no variance (a sepia-toned print). */
const flat = (r: number, g: number, b: number, n: number) => {
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) rgb.set([r, g, b], 3 * i);
  return rgb;
};

test('filterReason: grayscale, low colour variance, or kept', () => {
  const f = colourFilter({ minMeanChroma: 2, minAbStd: 2 });
  assert.equal(filterReason(splitLab(flat(90, 90, 90, 64)).stats, f), 'grayscale');
  assert.equal(filterReason(splitLab(flat(160, 120, 80, 64)).stats, f), 'low colour variance');
  assert.equal(filterReason(splitLab(new Uint8Array(colourfulRgb(16, 16))).stats, f), null);
  // Thresholds 0 keep everything.
  assert.equal(filterReason(splitLab(flat(90, 90, 90, 64)).stats, colourFilter(false)), null);
});

test('the filter stage drops and counts, in order; statistics from normalized ab match Lab units', async () => {
  const colour = new Uint8Array(colourfulRgb(16, 16));
  const inputs = [labSample('c1', colour, 16, 16), labSample('g', flat(50, 50, 50, 256), 16, 16), labSample('s', flat(160, 120, 80, 256), 16, 16), labSample('c2', colour, 16, 16)];
  const p = pipeline(inputs, filter({ minMeanChroma: 2, minAbStd: 2 }));
  assert.deepEqual((await collect(p)).map((s) => s.key), ['c1', 'c2']);
  assert.deepEqual(filteredSummary(p.ctx.reporter).byReason, { grayscale: 1, 'low colour variance': 1 });
  assert.equal(p.ctx.reporter.total, 0, 'not reported as bad input');
  const direct = splitLab(colour).stats;
  const fromAb = labSampleStats(inputs[0]!.ab);
  assert.ok(Math.abs(direct.meanChroma - fromAb.meanChroma) < 1e-3);
  assert.ok(Math.abs(direct.stdA - fromAb.stdA) < 1e-3);
});

test("filtered samples never throw, even with onError 'fail'; tallies are per reporter", async () => {
  const reporter = new Reporter({ onError: 'fail', log: null });
  const out = await collect(pipeline([labSample('g', flat(50, 50, 50, 16), 4, 4)], filter(), { reporter }));
  assert.equal(out.length, 0);
  assert.equal(filteredSummary(reporter).total, 1);
  const other = new Reporter({ log: null });
  assert.equal(filteredSummary(other).total, 0);
  recordFiltered(other, 'k', 'grayscale');
  assert.equal(filteredSummary(other).total, 1);
  assert.equal(filteredSummary(reporter).total, 1);
});

test('thresholds are validated', () => {
  assert.throws(() => filter({ minAbStd: Number.NaN }), InvalidOptionError);
  assert.throws(() => colourFilter({ minMeanChroma: -2 }), /Expected non-negative number for options.filter.minMeanChroma but received -2/);
});
