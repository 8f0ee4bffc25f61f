/** Models for the tests that need one saved on disk (the CLI's --model). */
import { setupTfjs } from '../../src/tfjs/backend.js';
import { buildColorizer, disposeColorizer, saveColorizer } from '../../src/tfjs/network.js';
import type { TrainingScale } from '../../src/types.js';

/**
 * A tiny untrained colorizer (1/8 width, 32 px, no class head, seed 1) saved as a tfjs model in `dir`, on the
 * cpu backend, recording `trainingScale` when given; returns `dir`.
 */
export async function tinyModel(dir: string, options: { trainingScale?: TrainingScale } = {}): Promise<string> {
  await setupTfjs({ backend: 'cpu' });
  const net = buildColorizer({ inputSize: 32, width: 0.125, numClasses: 0 }, { seed: 1 });
  if (options.trainingScale) net.trainingScale = options.trainingScale;
  await saveColorizer(net, dir);
  disposeColorizer(net);
  return dir;
}
