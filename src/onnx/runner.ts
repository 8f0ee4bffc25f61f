/**
 * The ONNX Runtime runner (network/runner.ts) over a colorizer session.ts loaded: the arrays go in as they are,
 * a shared global input as a global batch of 1, which the exported graph broadcasts (export.ts).
 */
import type { TrainingScale } from '../types.js';
import type { Runner, RunResult, RunShape } from '../network/runner.js';
import { trainingScaleOf } from '../network/model-files.js';
import { META } from './export.js';
import { loadOnnxColorizer, type OnnxColorizer, type OnnxEngineOptions } from './session.js';

export interface OnnxRunnerOptions {
  /** The training scale (default: the one the file's metadata records). */
  trainingScale?: TrainingScale;
  /** Appended to the engine line (e.g. why the export was not cached). */
  note?: string;
  /** Whether release frees the session (default true; false for a colorizer its owner keeps). */
  owned?: boolean;
}

/** The training scale an exported model records in its metadata (export.ts writes it as JSON). */
export function scaleFromMetadata(meta: Readonly<Record<string, string>>): TrainingScale | undefined {
  const raw = meta[META.trainingScale];
  if (raw === undefined) return undefined;
  try {
    // The same record and checks as model.json's.
    return trainingScaleOf({ colorpipe: { trainingScale: JSON.parse(raw) as unknown } });
  } catch {
    return undefined;
  }
}

/** A runner over a loaded ONNX colorizer. */
export function onnxRunner(c: OnnxColorizer, options: OnnxRunnerOptions = {}): Runner {
  return {
    globalSize: c.inputSize,
    describe: c.describe + (options.note ?? ''),
    trainingScale: options.trainingScale ?? scaleFromMetadata(c.metadata),
    async run(local: Float32Array, global: Float32Array, { batch, height, width }: RunShape): Promise<RunResult> {
      const { ab, abHeight, abWidth } = await c.predict({ local, global, batch, height, width });
      return { ab, abHeight, abWidth };
    },
    release: options.owned === false ? async () => undefined : () => c.release(),
  };
}

/**
 * The runner of an ONNX colorizer (a .onnx path or its bytes) on ONNX Runtime; release frees the session.
 * @throws as loadOnnxColorizer: InvalidOptionError, EngineUnavailableError.
 */
export async function loadOnnxRunner(source: string | Uint8Array, engine: OnnxEngineOptions = {}, options: Omit<OnnxRunnerOptions, 'owned'> = {}): Promise<Runner> {
  return onnxRunner(await loadOnnxColorizer(source, engine), options);
}
