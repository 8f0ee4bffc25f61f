/**
 * What Dawn (the `webgpu` npm package) sees on this machine, and whether colorpipe may use it.
 *
 * - A software adapter (Mesa's lavapipe/llvmpipe, SwiftShader) is far slower than wasm: `auto` never picks one,
 *   and `--backend webgpu` refuses it unless the user opts in (`COLORPIPE_SOFTWARE_GPU=1`, or `softwareGpu` in
 *   the engine options), which is what the webgpu tests do: on a machine without a GPU, lavapipe lets every
 *   webgpu path run, for correctness only.
 * - `auto` asks Dawn in a child process (`probeWebgpuAdapter`): Dawn's first adapter enumeration writes warnings
 *   from native code straight to file descriptor 2 (with Mesa 25: "maxDynamicUniformBuffersPerPipelineLayout
 *   artificially reduced ..."), which Node cannot redirect in-process, and a software adapter found that way
 *   would be skipped anyway. The child's stderr is captured and dropped.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

export interface AdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
  isFallbackAdapter?: boolean;
}

/** A software adapter (CPU rasterizer) is no better than wasm for this work. */
export function isSoftwareAdapter(adapter: AdapterLike): boolean {
  if (adapter.isFallbackAdapter === true || adapter.info?.isFallbackAdapter === true) return true;
  const text = [adapter.info?.vendor, adapter.info?.architecture, adapter.info?.device, adapter.info?.description]
    .filter(Boolean)
    .join(' ');
  return /swiftshader|llvmpipe|lavapipe|softpipe|software|basic render/i.test(text);
}

/** One line naming the adapter, e.g. "nvidia hopper NVIDIA: 580.159.04". */
export function adapterText(adapter: AdapterLike): string {
  const i = adapter.info ?? {};
  return [i.vendor, i.architecture, i.device, i.description].filter((s) => s && String(s).length).join(' ') || 'unknown adapter';
}

/** Whether the environment opts in to software adapters: COLORPIPE_SOFTWARE_GPU=1 (or true/yes). */
export function softwareGpuFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes)$/i.test(env['COLORPIPE_SOFTWARE_GPU'] ?? '');
}

/** How a user opts in, for messages. */
export const SOFTWARE_GPU_HINT = 'COLORPIPE_SOFTWARE_GPU=1 (or pipe train --software-gpu)';

export type AdapterProbe =
  | { found: true; text: string; software: boolean }
  | { found: false; reason: string };

const require = createRequire(import.meta.url);

/**
 * Asks Dawn for an adapter in a child process, so Dawn's native warnings never reach this process's stderr.
 * Never throws: a missing `webgpu` package, no adapter, or a child that fails or exceeds `timeoutMs` is
 * `{ found: false, reason }`. Costs one short Node process (about 0.2 s).
 */
export async function probeWebgpuAdapter(timeoutMs = 20_000): Promise<AdapterProbe> {
  let url: string;
  try {
    url = pathToFileURL(require.resolve('webgpu')).href;
  } catch {
    return { found: false, reason: 'webgpu: Dawn not installed' };
  }
  const code = `
    const { create, globals } = await import(${JSON.stringify(url)});
    Object.assign(globalThis, globals);
    const a = await create([]).requestAdapter({ powerPreference: 'high-performance' });
    // GPUAdapterInfo's fields are getters on its prototype: copied one by one (a spread copies none).
    const i = a?.info ?? {};
    const out = a ? { info: { vendor: i.vendor, architecture: i.architecture, device: i.device,
      description: i.description, isFallbackAdapter: i.isFallbackAdapter }, isFallbackAdapter: a.isFallbackAdapter } : null;
    process.stdout.write(JSON.stringify(out), () => process.exit(0));`;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', code],
      { timeout: timeoutMs, maxBuffer: 1 << 20, env: process.env },
      (err, stdout) => {
        if (err) {
          resolve({ found: false, reason: `webgpu: probe failed (${err.message.split('\n')[0]})` });
          return;
        }
        try {
          const a = JSON.parse(stdout.trim()) as AdapterLike | null;
          if (a == null) resolve({ found: false, reason: 'webgpu: no GPU adapter' });
          else resolve({ found: true, text: adapterText(a), software: isSoftwareAdapter(a) });
        } catch {
          resolve({ found: false, reason: 'webgpu: probe printed no adapter' });
        }
      },
    );
  });
}

/**
 * Whether Dawn can find a Vulkan loader (Linux only; other platforms use Metal or D3D12: true). Checked by file,
 * so `auto` does not load Dawn, which prints a warning, on machines without one.
 */
export function hasVulkanLoader(): boolean {
  if (process.platform !== 'linux') return true;
  const dirs = [
    ...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean),
    '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib',
  ];
  return dirs.some((d) => existsSync(join(d, 'libvulkan.so.1')));
}
