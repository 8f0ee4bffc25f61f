/**
 * `pipe colorize`: see the usage text. Exit status 0 when every input was written or skipped, 1 when any
 * failed or the run stopped, 2 for a usage error (an InvalidOptionError, printed by cli.ts), 130 after
 * Ctrl-C. The summary goes to stderr, and with --json as one JSON line to stdout. Ctrl-C once stops after the
 * files being written (whole files only), twice exits at once.
 */
import { ON_ERROR, boolean, flagNames, int, number, oneOf, parseFlags, string, usage, type FlagTable } from './flags.js';
import { interruptible } from './interrupt.js';
import { SHARE_FLAGS, shareOf, shareNotice, type Share } from './share.js';
import { MODEL_FLAGS } from './model-flags.js';
import { colorizeGraph } from '../colorize/graph.js';
import type { ColorizeSummary } from '../colorize/options.js';
import { FORMATS } from '../colorize/formats.js';
import { printable } from '../core/errors.js';

export const FLAGS = {
  in: {
    option: 'input',
    kind: string({ required: true }),
    value: 'DIR|FILE',
    help: 'images to colorize (directories are searched recursively; colour inputs are converted to L first, so a colour photo can be re-colorized)',
  },
  out: { option: 'out', kind: string({ required: true }), value: 'DIR', help: 'where the results go, at the same relative paths (never inside --in)' },
  model: MODEL_FLAGS.model,
  style: { option: 'style', kind: string(), value: 'REF', help: "style transfer: global features from REF's L, local features from each image" },
  batch: { option: 'batch', kind: int({ min: 1 }), value: 'B', help: 'images per batch (default 8; large images are batched fewer at a time)' },
  engine: MODEL_FLAGS.engine,
  device: MODEL_FLAGS.device,
  backend: MODEL_FLAGS.backend,
  resolution: MODEL_FLAGS.resolution,
  tile: {
    option: 'tile',
    kind: int({ min: 1 }),
    value: 'N',
    help: "largest local input run in one pass, as a side (default 1024); a larger one runs in overlapping N x N windows: the same result, the engine's memory bounded",
  },
  'memory-budget': {
    option: 'memoryBudget',
    kind: number({ min: 1 }),
    value: 'MB',
    help:
      'memory the images in flight may take, estimated from their headers (default 1024); photos wait before their decode until ' +
      'they fit, so any number of 24-megapixel photos colorize in about 1.5 GB; one larger than the budget runs alone',
  },
  format: { option: 'format', kind: oneOf(FORMATS, 'same'), value: 'F', help: 'same (default)|jpg|png|webp|tiff|gif|avif; the extension follows the format' },
  quality: { option: 'quality', kind: int({ min: 1 }), value: 'Q', help: '1..100 for jpg, webp, avif, tiff (default 90)' },
  overwrite: { option: 'overwrite', kind: boolean, help: 'replace existing outputs (default: skip them, so a rerun finishes a killed run)' },
  'on-error': ON_ERROR,
  ...SHARE_FLAGS,
  threads: { option: 'threads', kind: int({ min: 1 }), value: 'T', help: 'decode/encode worker threads (default: cores)' },
  quiet: { kind: boolean, help: 'no progress bar' },
  json: { kind: boolean, help: 'print a machine-readable summary on stdout' },
} satisfies FlagTable;

export const USAGE = usage('Usage: pipe colorize --in DIR|FILE --out DIR --model runs/NAME|path/to/model.json [options]', FLAGS);
/** The API's option names, as this command's flags (for the API's errors). */
export const FLAG_NAMES = flagNames(FLAGS);

const mebibytes = (mb: number | undefined): number | undefined => (mb === undefined ? undefined : Math.round(mb * 2 ** 20));

/**
 * The summary's lines for stderr. With a share of the files (`share`, world > 1) the counts are this rank's, and
 * the first line says so: `of 2 (rank 0 of 4 from SLURM_ARRAY_TASK_ID=0, ...; --rank 0 --world 1 for every file)`,
 * so a job array's variables never cut the work without a word in the line a script keeps.
 */
export function formatSummary(s: ColorizeSummary, share?: Share): string {
  const lines = [
    `colorpipe: ${s.stopped ? `stopped (${printable(s.stopped)}): ` : ''}${s.written} written, ${s.skipped} skipped, ${s.failed} failed ` +
      `of ${s.total}${shareOfTotal(share)} in ${s.seconds.toFixed(1)} s (${s.imagesPerSecond.toFixed(1)} img/s, ${s.backend || 'no engine needed'})`,
  ];
  for (const f of s.failures.slice(0, 20)) lines.push(`  failed: ${printable(f.path)}: ${printable(f.reason)}`);
  if (s.failures.length > 20) lines.push(`  ... and ${s.failures.length - 20} more`);
  return lines.join('\n');
}

/** ` (rank R of W ...)` after the total when the run takes a share of the files; '' when it takes them all. */
function shareOfTotal(share: Share | undefined): string {
  if (!share || share.world <= 1) return '';
  // Flags the user typed need no hint; variables from the scheduler get the flags that take every file.
  return share.from ? ` (rank ${share.rank} of ${share.world} from ${share.from}; --rank 0 --world 1 for every file)` : ` (rank ${share.rank} of ${share.world})`;
}

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(argv, FLAGS, USAGE);
  const { in: input, out, model, backend, engine: runtime, device, format, 'on-error': onError, resolution, quiet } = v;
  const share = shareOf(v);
  // Even with --quiet (it hides the progress bar only): a share taken from the environment cuts the work.
  if (share?.from) process.stderr.write(shareNotice(share) + '\n');

  return interruptible('finishing the files being written', async (stop) => {
    const s = await colorizeGraph({
      input, out, model, backend, runtime, device, format, onError, resolution, rank: share?.rank, world: share?.world,
      style: v.style,
      batch: v.batch,
      quality: v.quality,
      threads: v.threads,
      tile: v.tile,
      memoryBudget: mebibytes(v['memory-budget']),
      overwrite: v.overwrite,
      quiet,
      stop,
    });
    process.stderr.write(formatSummary(s, share) + '\n');
    if (v.json) {
      const { failures, timings, ...rest } = s;
      // rank and world: the share `total` counts (0 of 1: every file).
      process.stdout.write(JSON.stringify({ ...rest, rank: share?.rank ?? 0, world: share?.world ?? 1, failures, timings }) + '\n');
    }
    return s.failed > 0 || s.stopped ? 1 : 0;
  });
}
