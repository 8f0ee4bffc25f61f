/**
 * `pipe export --web DIR`: the colorize page and one model as static files that any static host serves (or a
 * browser opens from a local server): index.html, assets/ (the bundles and onnxruntime-web), model.onnx and
 * models.json naming it ('static' mode: the page hides the runs view). The model travels as a page.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import type { ModelList } from '../web/api.js';
import type { ExportOptions } from '../onnx/export.js';
import { onnxOf } from './models.js';

export interface WebExport {
  /** The model: a model.json (exported) or .onnx (copied). */
  model: string;
  /** Its name on the page. */
  name: string;
  /** The checkpoint's step, when known. */
  step?: number;
  /** The folder to write. */
  out: string;
  /** The built page (serve/assets.ts). */
  assets: string;
  /** The export's opset and fusion (a model.json's). */
  onnx?: Omit<ExportOptions, 'trainingScale'>;
}

/**
 * Writes the folder; returns the bytes written. Each file is written atomically; a folder already holding a
 * page and a model is overwritten, any other non-empty folder is refused.
 * @throws Error naming `out` when it is a non-empty folder that is not an earlier export; the model's errors.
 */
export async function exportWeb(o: WebExport): Promise<number> {
  const present = await fsp.readdir(o.out).catch(() => null);
  if (present && present.length > 0 && !present.includes('models.json')) {
    throw new Error(`${o.out} is not empty and holds no earlier web export: pick a new folder for --web`);
  }
  const { bytes, inputSize, trainingScale } = await onnxOf(o.model, o.onnx);
  await fsp.mkdir(join(o.out, 'assets'), { recursive: true });
  let total = 0;
  await fsp.copyFile(join(o.assets, 'index.html'), join(o.out, 'index.html'));
  for (const f of await fsp.readdir(join(o.assets, 'assets'))) {
    await fsp.copyFile(join(o.assets, 'assets', f), join(o.out, 'assets', f));
    total += (await fsp.stat(join(o.out, 'assets', f))).size;
  }
  await writeFileAtomic(join(o.out, 'model.onnx'), bytes);
  const list: ModelList = {
    mode: 'static',
    models: [{
      name: o.name, url: 'model.onnx', version: createHash('sha256').update(bytes).digest('hex').slice(0, 16), inputSize,
      ...(trainingScale ? { trainingScale } : {}), ...(o.step !== undefined ? { step: o.step } : {}),
    }],
    selected: o.name,
  };
  const json = JSON.stringify(list, null, 1) + '\n';
  await writeFileAtomic(join(o.out, 'models.json'), json);
  return total + bytes.byteLength + json.length + (await fsp.stat(join(o.out, 'index.html'))).size;
}
