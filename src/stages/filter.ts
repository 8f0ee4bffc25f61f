/**
 * The colourfulness filter of Iizuka et al. 2016 (section 4: "we also remove grayscale images and images
 * with little colour variance", their thresholds unpublished; ours are in config.filter): the decision, the
 * tally of what it dropped, and a standalone `filter` stage for LabSample streams. The `lab` stage and the
 * loader's processes apply the same decision while converting, from statistics computed in the same pass.
 *
 * A filtered sample is not bad input: it is not reported through `Reporter.report` (which would make the
 * first grayscale image fatal under `--on-error fail` and print a warning line for each one), but counted,
 * per reason, in a tally kept beside the run's Reporter: `filteredSummary(ctx.reporter)` gives the counts
 * for progress lines and the end-of-run summary.
 */
import type { Stage, StageContext } from '../core/pipeline.js';
import type { LabSample } from '../types.js';
import type { FilterConfig } from '../config.js';
import type { Reporter } from '../core/errors.js';
import { invalidOption } from '../core/validate.js';
import { DEFAULT_CONFIG } from '../config.js';
import { labSampleStats, type ColourStats } from '../color/stats.js';

export type FilterReason = 'grayscale' | 'low colour variance';

/** The thresholds the colourfulness test uses (config.filter without minSide, which decode applies). */
export type ColourFilter = Pick<FilterConfig, 'minMeanChroma' | 'minAbStd'>;

/**
 * Fills in and validates thresholds; `false` or `null` turn the filter off (thresholds 0).
 * @throws InvalidOptionError for a negative or non-finite threshold.
 */
export function colourFilter(options: Partial<ColourFilter> | false | null | undefined): ColourFilter {
  if (options === false || options === null) return { minMeanChroma: 0, minAbStd: 0 };
  const f = {
    minMeanChroma: options?.minMeanChroma ?? DEFAULT_CONFIG.filter.minMeanChroma,
    minAbStd: options?.minAbStd ?? DEFAULT_CONFIG.filter.minAbStd,
  };
  for (const [k, v] of Object.entries(f)) {
    if (typeof v !== 'number' || !(v >= 0) || !Number.isFinite(v)) throw invalidOption(`options.filter.${k}`, 'non-negative number', v);
  }
  return f;
}

/**
 * Why an image with these statistics is dropped, or null to keep it. Grayscale: mean chroma
 * sqrt(a^2 + b^2) under minMeanChroma (a sepia or tinted grayscale photo has chroma but no variance, and is
 * caught by the second test). Low colour variance: (std(a) + std(b)) / 2 under minAbStd.
 */
export function filterReason(stats: ColourStats, f: ColourFilter): FilterReason | null {
  if (stats.meanChroma < f.minMeanChroma) return 'grayscale';
  if ((stats.stdA + stats.stdB) / 2 < f.minAbStd) return 'low colour variance';
  return null;
}

export interface FilteredSummary {
  total: number;
  byReason: Record<string, number>;
  /** The first keys filtered (at most 100), for a look at what was dropped. */
  examples: { key: string; reason: string }[];
}

const tallies = new WeakMap<Reporter, FilteredSummary>();

/** Counts one filtered sample against the run's reporter. Never throws. */
export function recordFiltered(reporter: Reporter, key: string, reason: string): void {
  let t = tallies.get(reporter);
  if (t === undefined) tallies.set(reporter, (t = { total: 0, byReason: {}, examples: [] }));
  t.total++;
  t.byReason[reason] = (t.byReason[reason] ?? 0) + 1;
  if (t.examples.length < 100) t.examples.push({ key, reason });
}

/** What the filter dropped so far in the run that owns this reporter (a copy). */
export function filteredSummary(reporter: Reporter): FilteredSummary {
  const t = tallies.get(reporter);
  return t === undefined
    ? { total: 0, byReason: {}, examples: [] }
    : { total: t.total, byReason: { ...t.byReason }, examples: t.examples.slice() };
}

/**
 * A stage that drops LabSamples failing the colourfulness test (for Lab that did not come through the `lab`
 * stage, which filters by itself). Dropped samples are counted (recordFiltered), never reported as errors.
 * @throws InvalidOptionError at once for a wrong threshold.
 */
export function filter(options: Partial<ColourFilter> = {}): Stage<LabSample, LabSample> {
  const f = colourFilter(options);
  return async function* filterStage(source: AsyncIterable<LabSample>, ctx: StageContext): AsyncGenerator<LabSample> {
    for await (const s of source) {
      const reason = filterReason(labSampleStats(s.ab), f);
      if (reason === null) yield s;
      else recordFiltered(ctx.reporter, s.key, reason);
    }
  };
}
