/**
 * The Python that runs the PyTorch engine: `--python PATH`, else $COLORPIPE_PYTHON, else `python3` on PATH; and
 * what its torch offers (version, CUDA devices). Asked once per process, in a child (importing torch takes a
 * second or two).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { InvalidOptionError, reasonOf } from '../core/errors.js';

/** The oldest torch the engine runs on: Debian 12's python3-torch. */
export const MIN_TORCH: [number, number] = [1, 13];

/** The folder holding the `colorpipe_torch` Python package (shipped in the npm package as source). */
export const PY_PATH = fileURLToPath(new URL('../../../src/torch/py/', import.meta.url));

export interface TorchInfo {
  python: string;
  torch: string;
  cuda: boolean;
  /** CUDA devices torch sees. */
  devices: number;
  /** The first device's name, when there is one. */
  deviceName: string | null;
}

const INSTALL =
  'install PyTorch 1.13 or newer for it (Debian/Ubuntu: apt-get install python3-torch; else pip install torch), ' +
  'or point --python (or COLORPIPE_PYTHON) at a Python that has it, or train with --engine tfjs';

const PROBE = `
import json, sys
try:
    import torch
except Exception as e:
    print(json.dumps({"error": type(e).__name__ + ": " + str(e)})); sys.exit(0)
out = {"torch": str(getattr(torch, "__version__", "unknown")), "cuda": False, "devices": 0, "name": None}
try:
    if torch.cuda.is_available():
        out.update(cuda=True, devices=torch.cuda.device_count(), name=torch.cuda.get_device_name(0))
except Exception:
    pass
print(json.dumps(out))
`;

/** The Python to use (see the module comment). */
export function pythonOf(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? (env.COLORPIPE_PYTHON || 'python3');
}

const cache = new Map<string, Promise<TorchInfo>>();

/**
 * What `python` offers.
 * @throws InvalidOptionError (a usage error, exit 2) naming the flag and how to install torch, when the
 *   Python cannot be run, has no torch, or an older one than MIN_TORCH.
 */
export function probeTorch(python: string): Promise<TorchInfo> {
  let p = cache.get(python);
  if (!p) {
    p = probe(python);
    cache.set(python, p);
    p.catch(() => cache.delete(python));
  }
  return p;
}

async function probe(python: string): Promise<TorchInfo> {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(python, ['-c', PROBE], { timeout: 120_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new InvalidOptionError(`--engine torch: cannot run --python ${python} (${(stderr || reasonOf(err)).trim().split('\n').pop()}); ${INSTALL}`));
      else resolve(stdout);
    });
  });
  let r: { error?: string; torch?: string; cuda?: boolean; devices?: number; name?: string | null };
  try {
    r = JSON.parse(out.trim().split('\n').pop() ?? '') as typeof r;
  } catch {
    throw new InvalidOptionError(`--engine torch: --python ${python} printed no answer; ${INSTALL}`);
  }
  if (r.error || !r.torch) throw new InvalidOptionError(`--engine torch: ${python} has no torch (${r.error ?? 'not found'}); ${INSTALL}`);
  const [major, minor] = r.torch.split(/[.+a-z]/).map(Number);
  if (!(major! > MIN_TORCH[0] || (major === MIN_TORCH[0] && minor! >= MIN_TORCH[1]))) {
    throw new InvalidOptionError(`--engine torch: ${python} has torch ${r.torch}, older than ${MIN_TORCH.join('.')}; ${INSTALL}`);
  }
  return { python, torch: r.torch, cuda: Boolean(r.cuda), devices: r.devices ?? 0, deviceName: r.name ?? null };
}
