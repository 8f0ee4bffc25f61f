/** Models for the tests that need one saved on disk (the CLI's --model). */
import { setupEngine } from '../../src/tfjs/backend.js';
import { buildColorizer, disposeColorizer, saveColorizer } from '../../src/tfjs/network.js';

/**
 * A tiny untrained colorizer (1/8 width, 32 px, no class head, seed 1) saved as a tfjs model in `dir`, on the
 * cpu backend; returns `dir`.
 */
export async function tinyModel(dir: string): Promise<string> {
  await setupEngine({ backend: 'cpu' });
  const net = buildColorizer({ inputSize: 32, width: 0.125, numClasses: 0 }, { seed: 1 });
  await saveColorizer(net, dir);
  disposeColorizer(net);
  return dir;
}
