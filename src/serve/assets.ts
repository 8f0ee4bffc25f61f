/** Where the built page is (dist/web/, beside dist/src/: scripts/build-web.ts writes it, the npm package ships it). */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB_ASSETS = fileURLToPath(new URL('../../web/', import.meta.url));

/**
 * The built page's folder.
 * @throws Error saying how to build it when it is missing (a clone built with tsc alone).
 */
export function webAssets(dir = WEB_ASSETS): string {
  if (!existsSync(join(dir, 'index.html')) || !existsSync(join(dir, 'assets', 'worker.js'))) {
    throw new Error(`The web page is not built (no ${join(dir, 'index.html')}): run npm run build`);
  }
  return dir;
}
