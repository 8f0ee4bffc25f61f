/**
 * Whether the webgpu tests can run here: a GPU, or a software one (Mesa's lavapipe, installed by
 * `bash scripts/setup-software-gpu.sh`). Asked once per test file, in a child process (probeWebgpuAdapter), so
 * Dawn's native warnings stay out of the test output.
 *
 * - An adapter: the tests run; COLORPIPE_SOFTWARE_GPU=1 is set so that this process and the CLIs it spawns
 *   accept a software adapter.
 * - None, outside CI: the tests are skipped with one line saying how to enable them.
 * - None with CI=true: a failure, so that CI cannot pass without having run them.
 */
import { probeWebgpuAdapter } from '../../src/device/webgpu-adapter.js';

export const SETUP_HINT = 'bash scripts/setup-software-gpu.sh';

export type WebgpuHere = { ok: true; adapter: string; software: boolean } | { ok: false; ci: boolean; reason: string };

export async function webgpuHere(): Promise<WebgpuHere> {
  const probe = await probeWebgpuAdapter();
  if (probe.found) {
    process.env['COLORPIPE_SOFTWARE_GPU'] = '1';
    return { ok: true, adapter: probe.text, software: probe.software };
  }
  return {
    ok: false,
    ci: /^(1|true)$/i.test(process.env['CI'] ?? ''),
    reason: `no WebGPU adapter (${probe.reason}); to run the webgpu tests on the CPU: ${SETUP_HINT}`,
  };
}
