/** `pipe shard`: a folder of images -> WebDataset tar shards (deterministic, atomic, bad files reported). */
import { parse, num, required, oneOf, str } from './flags.js';
import { interruptible } from './interrupt.js';
import type { FlagNames } from './report.js';
import { writeShards } from '../shard/writer.js';
import { Reporter, printable } from '../core/errors.js';

const USAGE = `Usage: pipe shard --in DIR --out DIR [options]
  --in DIR             images (recursive); with --labels dirs the first sub-folder is the class
  --out DIR            where PREFIX-000000.tar ... and classes.json are written
  --maxcount N         samples per shard (default 1000)
  --prefix NAME        shard name prefix (default data)
  --labels dirs|none   class index from the sub-folder name (default dirs)
  --filter             also skip grayscale / near-grayscale images
  --on-error skip|fail skip and report bad files (default) or stop at the first
  --quiet              no per-file warnings`;

/** The API's option names, as this command's flags (for the API's errors). */
export const FLAG_NAMES: FlagNames = {
  input: '--in', output: '--out', maxcount: '--maxcount', prefix: '--prefix', labels: '--labels', filter: '--filter', onError: '--on-error',
};

export async function run(argv: string[]): Promise<number> {
  const { values: v } = parse(argv, {
    in: { type: 'string' }, out: { type: 'string' }, maxcount: { type: 'string' }, prefix: { type: 'string' },
    labels: { type: 'string' }, filter: { type: 'boolean' }, 'on-error': { type: 'string' }, quiet: { type: 'boolean' },
  }, USAGE);
  const reporter = new Reporter({ onError: oneOf(v['on-error'], 'on-error', ['skip', 'fail'] as const, 'skip'), log: v.quiet ? null : undefined });
  const input = required(str(v.in), 'in', USAGE);
  const output = required(str(v.out), 'out', USAGE);
  const maxcount = num(v.maxcount, 'maxcount', { int: true, min: 1 });
  const labels = oneOf(v.labels, 'labels', ['dirs', 'none'] as const, 'dirs');
  // Stopped, writeShards removes the shard it was writing (finished ones are whole) and throws its AbortError.
  return interruptible('removing the unfinished shard (finished shards are kept)', async (signal) => {
    const r = await writeShards({ input, output, maxcount, prefix: str(v.prefix), labels, filter: Boolean(v.filter), reporter, signal });
    process.stderr.write(
      `colorpipe: wrote ${r.written} samples in ${r.shards.length} shards to ${printable(output)}` +
      `${Object.keys(r.classes).length ? ` (${Object.keys(r.classes).length} classes)` : ''}; skipped ${r.skipped}\n`,
    );
    return 0;
  });
}
