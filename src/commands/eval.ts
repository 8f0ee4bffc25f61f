/** `pipe eval`: see the usage text. Prints the table on stderr (stdout with no --json) and JSON with --json. */
import { boolean, flagNames, int, parseFlags, string, usage, type FlagTable } from './flags.js';
import { interruptible } from './interrupt.js';
import { MODEL_FLAGS } from './model-flags.js';
import { evaluateFolder, formatEvalTable } from '../colorize/eval.js';

export const FLAGS = {
  in: { option: 'input', kind: string({ required: true }), value: 'DIR', help: 'colour photos (searched recursively)' },
  model: MODEL_FLAGS.model,
  resolution: {
    ...MODEL_FLAGS.resolution,
    help: 'auto (default: the scale the model trained at), full or N (long side N) for the local path',
  },
  batch: { option: 'batch', kind: int({ min: 1 }), value: 'B', help: 'images per batch (default 8)' },
  engine: MODEL_FLAGS.engine,
  device: MODEL_FLAGS.device,
  backend: MODEL_FLAGS.backend,
  json: { kind: boolean, help: 'print the figures as JSON on stdout' },
} satisfies FlagTable;

export const USAGE = usage(
  `Usage: pipe eval --in DIR --model runs/NAME|model.json [options]
  Colorizes every image of DIR from its own L (in memory) and reports, against the originals, mean PSNR
  (RGB) and mean colourfulness (Hasler and Suesstrunk 2003) of the model's outputs, of the grayscale image
  (ab = 0) and of a constant mean-ab image, and the originals' colourfulness.`,
  FLAGS,
);
/** The API's option names, as this command's flags (for the API's errors). */
export const FLAG_NAMES = flagNames(FLAGS);

export async function run(argv: string[]): Promise<number> {
  const { in: input, model, backend, engine: runtime, device, resolution, batch, json } = parseFlags(argv, FLAGS, USAGE);
  return interruptible('stopping (eval writes nothing)', async (signal) => {
    const s = await evaluateFolder({ input, model, backend, runtime, device, resolution, batch, signal });
    const table = formatEvalTable(s);
    if (json) {
      process.stderr.write(table + '\n');
      process.stdout.write(JSON.stringify(s) + '\n');
    } else {
      process.stdout.write(table + '\n');
    }
    return s.images > 0 && s.failed === 0 ? 0 : 1;
  });
}
