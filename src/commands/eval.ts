/** `pipe eval`: see the usage text. Prints the table on stderr (stdout with no --json) and JSON with --json. */
import { parse, num, required, oneOf, resolutionFlag, interruptible, type FlagNames } from './args.js';
import { BACKENDS, type BackendChoice } from '../tfjs/backend.js';
import { evaluateFolder, formatEvalTable } from '../colorize/eval.js';
import { RUNTIMES, type Runtime } from '../colorize/runner.js';
import { ONNX_DEVICES, type OnnxDevice } from '../onnx/session.js';

const USAGE = `Usage: pipe eval --in DIR --model runs/NAME|model.json [options]
  Colorizes every image of DIR from its own L (in memory) and reports, against the originals, mean PSNR
  (RGB) and mean colourfulness (Hasler and Suesstrunk 2003) of the model's outputs, of the grayscale image
  (ab = 0) and of a constant mean-ab image, and the originals' colourfulness.
  --in DIR             colour photos (searched recursively)
  --model PATH         a run directory (runs/NAME), a model directory, a model.json or a model.onnx
  --resolution R       auto (default: the scale the model trained at), full or N (long side N) for the local path
  --batch B            images per batch (default 8)
  --engine E           auto (default: ONNX Runtime when it loads, else tfjs)|onnx|tfjs
  --device D           ONNX Runtime's device: auto (default: cuda, then a real GPU via webgpu, then cpu)|cpu|webgpu|cuda
  --backend B          tfjs's backend (--engine tfjs): auto|tensorflow|webgpu|wasm|cpu (default auto)
  --json               print the figures as JSON on stdout`;

/** The API's option names, as this command's flags (for the API's errors). */
export const FLAG_NAMES: FlagNames = {
  input: '--in', model: '--model', resolution: '--resolution', batch: '--batch', backend: '--backend', runtime: '--engine', device: '--device',
};

export async function run(argv: string[]): Promise<number> {
  const v = parse(argv, {
    in: { type: 'string' }, model: { type: 'string' }, resolution: { type: 'string' }, batch: { type: 'string' },
    backend: { type: 'string' }, engine: { type: 'string' }, device: { type: 'string' }, json: { type: 'boolean' },
  }, USAGE).values as Record<string, string | boolean | undefined>;
  const input = required(v.in as string | undefined, 'in', USAGE);
  const model = required(v.model as string | undefined, 'model', USAGE);
  const backend = oneOf<BackendChoice>(v.backend, 'backend', BACKENDS, 'auto');
  const runtime = oneOf<Runtime>(v.engine, 'engine', RUNTIMES, 'auto');
  const device = oneOf<OnnxDevice>(v.device, 'device', ONNX_DEVICES, 'auto');
  const resolution = resolutionFlag(v.resolution);
  const batch = num(v.batch, 'batch', { int: true, min: 1 });
  return interruptible('stopping (eval writes nothing)', async (signal) => {
    const s = await evaluateFolder({ input, model, backend, runtime, device, resolution, batch, signal });
    const table = formatEvalTable(s);
    if (v.json) {
      process.stderr.write(table + '\n');
      process.stdout.write(JSON.stringify(s) + '\n');
    } else {
      process.stdout.write(table + '\n');
    }
    return s.images > 0 && s.failed === 0 ? 0 : 1;
  });
}
