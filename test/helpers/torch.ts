/**
 * Whether the PyTorch engine's tests can run here: a Python with torch 1.13 or newer ($COLORPIPE_PYTHON, Debian's
 * /usr/bin/python3, or python3 on PATH; `bash scripts/setup-torch.sh` installs Debian's python3-torch).
 *
 * - Found: the tests run, with COLORPIPE_PYTHON set to it for this process and the CLIs it starts.
 * - None, outside CI: each test file registers one skipped test saying how to enable them.
 * - None with CI=true: a failure, so that CI cannot pass without having run them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { probeTorch, type TorchInfo } from '../../src/torch/python.js';

export const TORCH_HINT = 'bash scripts/setup-torch.sh';

async function find(): Promise<TorchInfo | string> {
  const tried: string[] = [];
  for (const p of [process.env.COLORPIPE_PYTHON, '/usr/bin/python3', 'python3']) {
    if (!p || tried.includes(p)) continue;
    tried.push(p);
    try {
      return await probeTorch(p);
    } catch {
      // The next candidate.
    }
  }
  return `no Python with torch >= 1.13 (tried ${tried.join(', ')}); to run the torch tests: ${TORCH_HINT}`;
}

const found = await find();
if (typeof found !== 'string') process.env.COLORPIPE_PYTHON = found.python;

/** The Python the tests use, or null when there is none (see torchTests). */
export const torchPython: string | null = typeof found === 'string' ? null : found.python;

/** Runs `register` (which declares the file's tests) when torch is here; else one skipped test, or a failure in CI. */
export function torchTests(name: string, register: (python: string) => void): void {
  if (typeof found !== 'string') {
    register(found.python);
    return;
  }
  if (/^(1|true)$/i.test(process.env.CI ?? '')) test(`${name}: CI must have torch`, () => assert.fail(`CI=true but ${found}`));
  else test(name, { skip: found }, () => undefined);
}
