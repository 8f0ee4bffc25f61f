/** `pipe export`: a trained model (tfjs Layers format) -> its inference graph as one .onnx file, written atomically. */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { boolean, flagNames, int, oneOf, parseFlags, string, usage, type FlagTable } from './flags.js';
import { interruptible } from './interrupt.js';
import { MODEL_FLAGS } from './model-flags.js';
import { readModelFiles } from '../network/model-files.js';
import { writeOnnx, type ExportOptions } from '../onnx/export.js';
import { DEFAULT_OPSET, MAX_OPSET, MIN_OPSET } from '../onnx/proto.js';
import { resolveModelPath } from '../colorize/runner.js';
import { webAssets } from '../serve/assets.js';
import { exportWeb } from '../serve/export-web.js';
import { checkpointStep } from '../serve/runs.js';
import { InvalidOptionError } from '../core/errors.js';

export const FLAGS = {
  model: { ...MODEL_FLAGS.model, help: 'a run directory (runs/NAME), a model directory, or a model.json' },
  out: { option: 'out', kind: string(), value: 'FILE', help: 'the .onnx file (default: runs/NAME/model.onnx; beside model.json otherwise)' },
  opset: {
    option: 'opset',
    kind: int({ min: MIN_OPSET, max: MAX_OPSET, default: DEFAULT_OPSET }),
    value: 'N',
    help: `ONNX opset, ${MIN_OPSET} to ${MAX_OPSET} (default ${DEFAULT_OPSET})`,
  },
  fusion: {
    option: 'fusion',
    kind: oneOf(['split', 'concat'] as const, 'split'),
    value: 'MODE',
    help: "split (default: the fusion layer's global half as one Gemm per image) or concat",
  },
  web: {
    option: 'web',
    kind: string(),
    value: 'DIR',
    help: "instead of one .onnx file, the colorize page and the model as static files in DIR: any static host serves them (pipe serve's page, without the runs view)",
  },
  quiet: { kind: boolean, help: 'no summary line' },
} satisfies FlagTable;

export const USAGE = usage(
  `Usage: pipe export --model runs/NAME|DIR|model.json [--out FILE | --web DIR] [--opset N]
  Writes the model's inference graph as ONNX: inputs L_local [N, 1, H, W] (L / 100; H, W multiples of 8) and
  L_global [N or 1, 1, S, S]; outputs ab [N, 2, H/2, W/2] ((ab + 128) / 255) and logits with a class head.
  Batch norm is folded into the convolutions; the file runs in ONNX Runtime and other ONNX runtimes.`,
  FLAGS,
);
/** The API's option names, as this command's flags (for the API's errors). */
export const FLAG_NAMES = flagNames(FLAGS);

/** The model.json, the default output and the run directory (for state.json) a --model argument names. */
async function locate(p: string): Promise<{ modelJson: string; out: string; runDir: string | null }> {
  // The same lookup as colorize's --model; a run directory is the one whose model/model.json was found.
  const modelJson = await resolveModelPath(p);
  const runDir = modelJson === path.resolve(p, 'model', 'model.json') ? p : null;
  return { modelJson, out: runDir ? path.join(p, 'model.onnx') : path.join(path.dirname(modelJson), 'model.onnx'), runDir };
}

/** The training scale a run's state.json records (config.augment), if any: the export's metadata hook. */
async function trainingScale(runDir: string | null): Promise<ExportOptions['trainingScale']> {
  if (!runDir) return undefined;
  try {
    const state = JSON.parse(await fsp.readFile(path.join(runDir, 'state.json'), 'utf8')) as { config?: { augment?: { resize?: unknown; crop?: unknown } } };
    const a = state.config?.augment;
    if (typeof a?.resize === 'number' && typeof a.crop === 'number') return { shortSide: a.resize, crop: a.crop };
  } catch {
    // No state.json (a model copied out of its run): no training scale to record.
  }
  return undefined;
}

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(argv, FLAGS, USAGE);
  const { opset, fusion } = v;
  if (v.web !== undefined && v.out !== undefined) throw new InvalidOptionError('--out names the .onnx file and --web a folder: give one', { usage: USAGE });
  const where = await locate(v.model);
  if (v.web !== undefined) return runWeb(v.web, where, { opset, fusion }, v.quiet);
  const out = v.out ?? where.out;
  // Ctrl-C: the file is written whole or not at all (writeOnnx takes no signal: an export takes seconds), then 130.
  return interruptible('finishing the export (the file is written whole or not at all)', async (stop) => {
    // The model's files are read as data: exporting loads no engine.
    const m = await readModelFiles(where.modelJson);
    if (stop.aborted) return 0; // before anything is written
    // A failed write (a full disk, no permission, a file in the way) is a runtime failure, not a usage error:
    // writeFileAtomic's error names `out` (never the temp file) and cli.ts prints it as one line, exit 1.
    const scale = m.trainingScale ?? (await trainingScale(where.runDir));
    const bytes = await writeOnnx({ config: m.config, weights: m.weights, source: m.path }, out, { opset, fusion, ...(scale ? { trainingScale: scale } : {}) });
    if (!v.quiet) {
      const { inputSize, width, numClasses } = m.config;
      process.stderr.write(`colorpipe: wrote ${out} (${(bytes / 1e6).toFixed(1)} MB, opset ${opset}; inputSize ${inputSize}, width ${width}, ${numClasses} classes)\n`);
    }
    return 0;
  });
}

/** --web DIR: the page and the model as static files (serve/export-web.ts). */
async function runWeb(dir: string, where: Awaited<ReturnType<typeof locate>>, onnx: ExportOptions, quiet: boolean): Promise<number> {
  const assets = webAssets();
  const folder = path.dirname(await fsp.realpath(where.modelJson));
  const step = checkpointStep(folder);
  const name = path.basename(where.runDir ?? folder);
  return interruptible('finishing the web export (each file is written whole or not at all)', async () => {
    const bytes = await exportWeb({ model: where.modelJson, name, out: dir, assets, onnx, ...(step !== undefined ? { step } : {}) });
    if (!quiet) process.stderr.write(`colorpipe: wrote ${path.join(dir, 'index.html')} and its model (${(bytes / 1e6).toFixed(1)} MB in all): serve ${dir} with any static file server and open it\n`);
    return 0;
  });
}
