/** colorpipe's version, from its package.json (two levels above src/core/, three above dist/src/core/): for --version and metadata. */
import { readFileSync } from 'node:fs';

export function colorpipeVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'colorpipe' && pkg.version) return pkg.version;
    } catch {
      // Not this level: try the next.
    }
  }
  return 'unknown';
}
