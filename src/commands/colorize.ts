/**
 * `pipe colorize`: see the usage text. Exit status 0 when every input was written or skipped, 1 when any
 * failed or the run stopped, 2 for a usage error (an InvalidOptionError, printed by cli.ts), 130 after
 * Ctrl-C. The summary goes to stderr, and with --json as one JSON line to stdout. Ctrl-C once stops after the
 * files being written (whole files only), twice exits at once.
 */
import { parse, num, required, oneOf, interruptible, resolutionFlag, shareOf, shareNotice, type FlagNames, type Share } from './args.js';
import { BACKENDS, type BackendChoice } from '../tfjs/backend.js';
import { colorizeGraph } from '../colorize/graph.js';
import type { ColorizeSummary } from '../colorize/options.js';
import { FORMATS, type FormatChoice } from '../colorize/formats.js';
import { printable } from '../core/errors.js';
import { RUNTIMES, type Runtime } from '../colorize/runner.js';
import { ONNX_DEVICES, type OnnxDevice } from '../onnx/session.js';

const USAGE = `Usage: pipe colorize --in DIR|FILE --out DIR --model runs/NAME|path/to/model.json [options]
  --in DIR|FILE        images to colorize (directories are searched recursively; colour inputs are
                       converted to L first, so a colour photo can be re-colorized)
  --out DIR            where the results go, at the same relative paths (never inside --in)
  --model PATH         a run directory (runs/NAME), a model directory, a model.json or a model.onnx
  --style REF          style transfer: global features from REF's L, local features from each image
  --batch B            images per batch (default 8; large images are batched fewer at a time)
  --engine E           auto (default: ONNX Runtime when it loads, else tfjs)|onnx|tfjs
  --device D           ONNX Runtime's device: auto (default: cuda, then a real GPU via webgpu, then cpu)|cpu|webgpu|cuda
  --backend B          tfjs's backend (--engine tfjs): auto|tensorflow|webgpu|wasm|cpu (default auto)
  --resolution R       auto (default: the scale the model trained at, long side at most 2048), full (the
                       original size, rounded to a multiple of 8) or N (long side N); the output keeps the
                       input's size either way
  --tile N             largest local input run in one pass, as a side (default 1024); a larger one runs in
                       overlapping N x N windows: the same result, the engine's memory bounded
  --memory-budget MB   memory the images in flight may take, estimated from their headers (default 1024);
                       photos wait before their decode until they fit, so any number of 24-megapixel photos
                       colorize in about 1.5 GB; one larger than the budget runs alone
  --format F           same (default)|jpg|png|webp|tiff|gif|avif; the extension follows the format
  --quality Q          1..100 for jpg, webp, avif, tiff (default 90)
  --overwrite          replace existing outputs (default: skip them, so a rerun finishes a killed run)
  --on-error skip|fail skip and report bad inputs (default) or stop at the first
  --rank R --world W   process only the files whose index % W == R (split a folder over W processes); when
                       not given, taken from a Slurm job array (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN,
                       SLURM_ARRAY_TASK_COUNT) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, with --world):
                       a line says so, and the summary names the share (--rank 0 --world 1: every file)
  --threads T          decode/encode worker threads (default: cores)
  --quiet              no progress bar
  --json               print a machine-readable summary on stdout`;

/** The API's option names, as this command's flags (for the API's errors). */
export const FLAG_NAMES: FlagNames = {
  input: '--in', out: '--out', model: '--model', style: '--style', batch: '--batch', backend: '--backend', runtime: '--engine',
  device: '--device', resolution: '--resolution', format: '--format', quality: '--quality', overwrite: '--overwrite',
  onError: '--on-error', rank: '--rank', world: '--world', threads: '--threads', tile: '--tile', memoryBudget: '--memory-budget',
};

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
  const v = parse(argv, {
    in: { type: 'string' }, out: { type: 'string' }, model: { type: 'string' }, style: { type: 'string' },
    batch: { type: 'string' }, backend: { type: 'string' }, engine: { type: 'string' }, device: { type: 'string' }, resolution: { type: 'string' }, format: { type: 'string' },
    quality: { type: 'string' }, overwrite: { type: 'boolean' }, 'on-error': { type: 'string' },
    rank: { type: 'string' }, world: { type: 'string' }, threads: { type: 'string' }, tile: { type: 'string' }, 'memory-budget': { type: 'string' },
    quiet: { type: 'boolean' }, json: { type: 'boolean' },
  }, USAGE).values as Record<string, string | boolean | undefined>;
  const input = required(v.in as string | undefined, 'in', USAGE);
  const out = required(v.out as string | undefined, 'out', USAGE);
  const model = required(v.model as string | undefined, 'model', USAGE);
  const backend = oneOf<BackendChoice>(v.backend, 'backend', BACKENDS, 'auto');
  const runtime = oneOf<Runtime>(v.engine, 'engine', RUNTIMES, 'auto');
  const device = oneOf<OnnxDevice>(v.device, 'device', ONNX_DEVICES, 'auto');
  const format = oneOf<FormatChoice>(v.format, 'format', FORMATS, 'same');
  const onError = oneOf(v['on-error'], 'on-error', ['skip', 'fail'] as const, 'skip');
  const resolution = resolutionFlag(v.resolution);
  const share = shareOf(v);
  const quiet = Boolean(v.quiet);
  // Even with --quiet (it hides the progress bar only): a share taken from the environment cuts the work.
  if (share?.from) process.stderr.write(shareNotice(share) + '\n');

  return interruptible('finishing the files being written', async (stop) => {
    const s = await colorizeGraph({
      input, out, model, backend, runtime, device, format, onError, resolution, rank: share?.rank, world: share?.world,
      style: v.style as string | undefined,
      batch: num(v.batch, 'batch', { int: true, min: 1 }),
      quality: num(v.quality, 'quality', { int: true, min: 1 }),
      threads: num(v.threads, 'threads', { int: true, min: 1 }),
      tile: num(v.tile, 'tile', { int: true, min: 1 }),
      memoryBudget: mebibytes(num(v['memory-budget'], 'memory-budget', { min: 1 })),
      overwrite: Boolean(v.overwrite),
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
