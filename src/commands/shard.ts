/** `pipe shard`: a folder of images -> WebDataset tar shards (deterministic, atomic, bad files reported). */
import { ON_ERROR, boolean, flagNames, int, oneOf, parseFlags, string, usage, type FlagTable } from './flags.js';
import { interruptible } from './interrupt.js';
import { writeShards } from '../shard/graph.js';
import { Reporter, printable } from '../core/errors.js';

export const FLAGS = {
  in: { option: 'input', kind: string({ required: true }), value: 'DIR', help: 'images (recursive); with --labels dirs the first sub-folder is the class' },
  out: { option: 'output', kind: string({ required: true }), value: 'DIR', help: 'where PREFIX-000000.tar ... and classes.json are written' },
  maxcount: { option: 'maxcount', kind: int({ min: 1 }), value: 'N', help: 'samples per shard (default 1000)' },
  prefix: { option: 'prefix', kind: string(), value: 'NAME', help: 'shard name prefix (default data)' },
  labels: { option: 'labels', kind: oneOf(['dirs', 'none'] as const, 'dirs'), help: 'class index from the sub-folder name (default dirs)' },
  filter: { option: 'filter', kind: boolean, help: 'also skip grayscale / near-grayscale images' },
  'on-error': { ...ON_ERROR, help: 'skip and report bad files (default) or stop at the first' },
  quiet: { kind: boolean, help: 'no per-file warnings' },
} satisfies FlagTable;

export const USAGE = usage('Usage: pipe shard --in DIR --out DIR [options]', FLAGS);
/** The API's option names, as this command's flags (for the API's errors). */
export const FLAG_NAMES = flagNames(FLAGS);

export async function run(argv: string[]): Promise<number> {
  const { in: input, out: output, maxcount, prefix, labels, filter, 'on-error': onError, quiet } = parseFlags(argv, FLAGS, USAGE);
  const reporter = new Reporter({ onError, log: quiet ? null : undefined });
  // Stopped, writeShards removes the shard it was writing (finished ones are whole, and a rerun keeps them) and
  // throws its AbortError.
  return interruptible('removing the unfinished shard (finished shards are kept: a rerun goes on after them)', async (signal) => {
    const r = await writeShards({ input, output, maxcount, prefix, labels, filter, reporter, signal });
    process.stderr.write(
      `colorpipe: wrote ${r.written} samples in ${r.shards.length} shards to ${printable(output)}` +
      `${Object.keys(r.classes).length ? ` (${Object.keys(r.classes).length} classes)` : ''}; skipped ${r.skipped}` +
      `${r.kept ? `; kept the first ${r.kept} shards, which an earlier run wrote` : ''}\n`,
    );
    return 0;
  });
}
