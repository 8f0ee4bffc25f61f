/**
 * Builds the bundled demo dataset, demo/photos/, from a folder of real photographs (--photos,
 * default: the photo collection beside the repository), taken from Debian packages; free licences listed in its
 * MANIFEST.tsv, copyright files in its LICENSES/, both copied alongside.
 *
 *   demo/photos/train/<source package>/<name>.jpg   training images; the source package is the class label
 *   demo/photos/heldout/<name>.jpg                    held apart: never trained on, colorized and evaluated
 *   demo/photos/MANIFEST.tsv, LICENSES/               provenance and licences of every image
 *
 * Images are scaled to 128 pixels on the short side (JPEG quality 88), enough for the demo's 64-pixel crops,
 * and keep the repository small (about 2 MB). Deterministic: the same photos give the same bytes.
 * Usage: node dist/scripts/make-demo-data.js [--photos DIR] [--out demo/photos]
 */
import { promises as fsp } from 'node:fs';
import { join, resolve, basename } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';

export const HELDOUT_EVERY = 8;

export async function makeDemoData(photos: string, out: string): Promise<{ train: number; heldout: number }> {
  const manifest = (await fsp.readFile(join(photos, 'MANIFEST.tsv'), 'utf8')).trim().split('\n');
  const header = manifest[0]!.split('\t');
  const col = (name: string) => header.indexOf(name);
  const rows = manifest.slice(1).map((l) => l.split('\t')).sort((a, b) => a[col('file')]!.localeCompare(b[col('file')]!));
  await fsp.rm(out, { recursive: true, force: true });
  let train = 0, heldout = 0;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const file = r[col('file')]!;
    const cls = r[col('source_package')]!.replace(/[^A-Za-z0-9._-]+/g, '_');
    const isHeld = i % HELDOUT_EVERY === 3;
    const dir = isHeld ? join(out, 'heldout') : join(out, 'train', cls);
    await fsp.mkdir(dir, { recursive: true });
    const data = await sharp(join(photos, 'images', file))
      .rotate()
      .resize({ width: 128, height: 128, fit: 'outside', withoutEnlargement: true })
      .jpeg({ quality: 88, mozjpeg: false })
      .toBuffer();
    await fsp.writeFile(join(dir, basename(file).replace(/\.[^.]+$/, '.jpg')), data);
    if (isHeld) heldout++;
    else train++;
  }
  await fsp.writeFile(join(out, 'MANIFEST.tsv'), manifest.join('\n') + '\n');
  await fsp.cp(join(photos, 'LICENSES'), join(out, 'LICENSES'), { recursive: true });
  await fsp.writeFile(join(out, 'README.md'), `# Demo photographs\n\nMade by scripts/make-demo-data.ts from real colour photographs shipped in Debian packages (and one npm\npackage), scaled to 128 pixels on the short side. MANIFEST.tsv gives each file's source package, original path,\nlicence and author; LICENSES/ holds the packages' copyright files. Credit the CC-BY and CC-BY-SA works' authors\n(MANIFEST.tsv, column copyright_or_note) wherever you show them. train/ is split by source package (the class\nlabel); heldout/ (every ${HELDOUT_EVERY}th photo by name) is never trained on.\n`);
  return { train, heldout };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { photos: { type: 'string' }, out: { type: 'string' } } });
  const photos = resolve(values.photos ?? '../shared/photos');
  const out = resolve(values.out ?? 'demo/photos');
  const r = await makeDemoData(photos, out);
  process.stdout.write(JSON.stringify({ out, ...r }) + '\n');
}
