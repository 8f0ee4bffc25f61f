/**
 * One call on the GPU host (bench/gpu-host.sh starts it): every measurement issue 10 asks for, each part in its
 * own process under `timeout`, then ONE JSON document on stdout. A part that fails or times out is recorded
 * with its reason and the others still run. Progress goes to stderr.
 *
 *   node dist/bench/gpu-host.js [--quick] [--budget-s 550] [--processes 1,2,4,8,16] [--photos DIR]
 *
 * Per-part limits (full) add up to 545 s, inside gpu-host.sh's 570 s and the device's 10 minutes a command.
 * Parts (full / --quick):
 *   train      the paper's network at 224, batch 32, on webgpu: training and predict img/s, the kernel profile of
 *              one step (tfjs profile, top kernels)              / 32 px, width 1/8, batch 2
 *   onnx       ONNX Runtime's webgpu device: predict-only and colorize end-to-end img/s (bench/colorize.ts
 *              --engine onnx --device webgpu), the paper's network at 256 and 2048 px / 256 px, width 1/8
 *   loader     bench/loader.ts at 1, 2, 4, 8, 16 processes        / 1, 2 processes, 2 s each
 *   pipe_train a real `pipe train` of 200 steps on webgpu (the paper's network, batch 32, on the loader's
 *              shards) with its data stall                         / tiny config, 20 steps
 *   colorize   bench/colorize.ts end to end on webgpu              / small images, width 1/8
 *   torch      bench/torch_model.py on the same network, on CUDA when the host's python has torch
 *   torch_engine_fp32, _bf16  the PyTorch engine's whole pipeline (bench/train-torch.ts: 16 decode processes) against
 *              bare PyTorch on the same card, 224 px, batch 32 / 32 px, width 1/8, batch 4
 * On a machine without a GPU, COLORPIPE_SOFTWARE_GPU=1 lets webgpu run on lavapipe: a rehearsal, not a speed.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const NODE = process.execPath;
const js = (name: string) => join(ROOT, 'dist', 'bench', `${name}.js`);
const CLI = join(ROOT, 'dist', 'src', 'cli.js');

interface Opts { quick: boolean; budgetS: number; processes: number[]; photos?: string }

function parse(argv: string[]): Opts {
  const o: Opts = { quick: false, budgetS: 550, processes: [1, 2, 4, 8, 16] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') o.quick = true;
    else if (a === '--budget-s') o.budgetS = Number(argv[++i]);
    else if (a === '--processes') o.processes = argv[++i]!.split(',').map(Number);
    else if (a === '--photos') o.photos = argv[++i]!;
    else throw new Error(`gpu-host: unknown option ${a}`);
  }
  if (o.quick && !argv.includes('--processes')) o.processes = [1, 2];
  return o;
}

type Part = Record<string, unknown>;

/** Runs a command under coreutils `timeout`; returns its last stdout line as JSON, or why not. */
function part(name: string, seconds: number, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): { json?: Part; error?: string; seconds: number } {
  process.stderr.write(`gpu-host: ${name} (at most ${seconds} s)\n`);
  const t0 = Date.now();
  const r = spawnSync('timeout', ['--kill-after=10', String(seconds), cmd, ...args], {
    cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 26, env: { ...process.env, ...env },
  });
  const took = (Date.now() - t0) / 1000;
  const tail = (r.stderr ?? '').split('\n').filter((l) => l && !/^Warning: max/.test(l)).slice(-4).join(' | ');
  if (r.status === 124 || r.status === 137) return { error: `timed out after ${seconds} s`, seconds: took };
  if (r.status !== 0) return { error: `exit ${r.status}${r.error ? ` (${r.error.message})` : ''}: ${tail}`, seconds: took };
  const lines = (r.stdout ?? '').trim().split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      return { json: JSON.parse(lines.slice(i).join('\n')) as Part, seconds: took };
    } catch { /* a JSON document may span several lines: widen */ }
  }
  return { error: `no JSON on stdout: ${tail}`, seconds: took };
}

const pick = (o: Part | undefined, keys: string[]): Part => Object.fromEntries(keys.filter((k) => o && k in o).map((k) => [k, o![k]]));

function adapter(): Part {
  const r = spawnSync(NODE, ['--input-type=module', '-e',
    `const { probeWebgpuAdapter } = await import(${JSON.stringify(join(ROOT, 'dist', 'src', 'device', 'webgpu-adapter.js'))}); console.log(JSON.stringify(await probeWebgpuAdapter()));`],
  { encoding: 'utf8' });
  try { return JSON.parse(r.stdout.trim()) as Part; } catch { return { found: false, reason: r.stderr.trim().slice(-200) }; }
}

function main(): void {
  const o = parse(process.argv.slice(2));
  const q = o.quick;
  const t0 = Date.now();
  const work = mkdtempSync(join(os.tmpdir(), 'colorpipe-gpu-host-'));
  const out: Part = {
    kind: q ? 'quick (small sizes: a rehearsal, no speed claim)' : 'full',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, mem_gib: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    adapter: adapter(),
    software_gpu: process.env['COLORPIPE_SOFTWARE_GPU'] ?? null,
  };
  try {
    // 1. The network on webgpu: train and predict rates, one step's kernel profile.
    const net = q ? ['--size', '32', '--width', '0.125', '--batch', '2', '--classes', '0', '--steps', '2', '--warmup', '1']
      : ['--size', '224', '--width', '1', '--batch', '32', '--classes', '0', '--steps', '5', '--warmup', '1'];
    const tr = part('train', q ? 240 : 60, NODE, [js('train'), ...net, '--backend', 'webgpu', '--profile', '--no-torch']);
    const tj = tr.json as { tfjs?: Part; engine?: string; profile?: Array<Record<string, unknown>> } & Part | undefined;
    out['train'] = tr.json ? { seconds: tr.seconds, engine: tj!.engine, ...pick(tj, ['size', 'width', 'batch', 'params']), tfjs: tj!.tfjs,
      profile: tj!.profile && { ...tj!.profile, kernels: (tj!.profile as unknown as { kernels?: unknown[] }).kernels?.slice(0, 12) } } : tr;

    // 2. ONNX Runtime's webgpu device: predict only and colorize end to end (bench/colorize.ts --engine onnx),
    //    the same images and network as part 5's tfjs-webgpu run.
    let ort: string | null = null;
    try { ort = createRequire(join(ROOT, 'package.json')).resolve('onnxruntime-node'); } catch { /* absent */ }
    const photosFor = o.photos ?? join(ROOT, 'fixtures', 'images', 'renewable');
    out['onnx_webgpu'] = ort == null ? { skipped: 'onnxruntime-node is not installed (npm i onnxruntime-node)' }
      : (({ json, error, seconds }) => json ? { seconds, ...json } : { error, seconds })(part('onnx_webgpu', q ? 240 : 70, NODE, [js('colorize'),
        '--engine', 'onnx', '--device', 'webgpu', '--photos', photosFor,
        ...(q ? ['--sizes', '256', '--images', '4', '--width', '0.125', '--batch', '2', '--repeat', '1'] : ['--paper', '--sizes', '256,2048', '--batch', '32'])]));

    // 3. The loader at 1..16 processes; its shards are kept for the real training run.
    const shards = join(work, 'shards');
    const photos = o.photos ?? join(ROOT, 'fixtures', 'images', 'renewable');
    const ld = part('loader', q ? 120 : 60, NODE, [js('loader'), '--processes', o.processes.join(','), '--photos', photos,
      '--shards', shards, '--samples', q ? '256' : '4096', '--seconds', q ? '2' : '8', '--warmup', q ? '1' : '3',
      '--size', q ? '64' : '224', '--no-baseline']);
    out['loader'] = ld.json ? { seconds: ld.seconds, ...pick(ld.json, ['results', 'limit', 'baseline_img_s']) } : ld;

    // 4. A real `pipe train` on webgpu, with its data stall, on those shards (or the fixtures' when none).
    const glob = existsSync(shards) ? join(shards, '*.tar') : join(ROOT, 'fixtures', 'shards', 'data-*.tar');
    const run = join(work, 'run');
    const trainArgs = q ? ['--config', join(ROOT, 'configs', 'tiny.json'), '--steps', '20']
      : ['--size', '224', '--batch', '32', '--steps', '200', '--checkpoint-every', '1000', '--processes', '8'];
    const pt = part('pipe_train', q ? 240 : 60, NODE, [CLI, 'train', '--shards', glob, '--out', run, '--backend', 'webgpu', '--quiet', ...trainArgs]);
    // Timed out: what metrics.jsonl holds so far still says the rate and the stall.
    if (!existsSync(join(run, 'metrics.jsonl'))) out['pipe_train'] = pt;
    else {
      const rows = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number & string>).filter((r) => r.type === undefined);
      const late = rows.slice(Math.floor(rows.length / 2));
      const mean = (k: string) => late.reduce((s, r) => s + Number(r[k]), 0) / Math.max(1, late.length);
      out['pipe_train'] = { seconds: pt.seconds, ...(pt.error && !pt.error.startsWith('no JSON') ? { error: pt.error } : {}), steps: rows.at(-1)?.step, last_loss: rows.at(-1)?.loss,
        img_per_s_second_half: +mean('img_per_s').toFixed(2), data_stall_second_half: +mean('data_stall').toFixed(4) };
    }

    // 5. Colorize end to end on webgpu.
    const cz = part('colorize', q ? 240 : 50, NODE, [js('colorize'), '--backend', 'webgpu', '--photos', photos,
      ...(q ? ['--sizes', '256', '--images', '4', '--width', '0.125', '--batch', '2', '--repeat', '1'] : ['--paper', '--sizes', '256,2048', '--batch', '32'])]);
    out['colorize'] = cz.json ? { seconds: cz.seconds, ...cz.json } : cz;

    // 6. PyTorch on the same network (CUDA when there), when the host's python has torch.
    const python = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
    if (python == null) out['torch'] = { skipped: 'no python3 with torch here' };
    else {
      const table = join(work, 'table.json');
      const tt = part('torch_table', 30, NODE, ['--input-type=module', '-e',
        `const { layerTable } = await import(${JSON.stringify(join(ROOT, 'dist', 'src', 'network', 'table.js'))}); const { makeConfig } = await import(${JSON.stringify(join(ROOT, 'dist', 'src', 'config.js'))});
         const c = makeConfig({ model: ${q ? "{ inputSize: 32, width: 0.125, numClasses: 0 }" : "{ inputSize: 224, width: 1, numClasses: 0 }"} });
         (await import('node:fs')).writeFileSync(${JSON.stringify(table)}, JSON.stringify(layerTable(c.model))); console.log('{}');`]);
      out['torch'] = tt.error ? tt : (({ json, error, seconds }) => json ? { seconds, ...json } : { error, seconds })(
        part('torch', q ? 120 : 50, python, [join(ROOT, 'bench', 'torch_model.py'), table, '--device', 'auto', '--batch', q ? '2' : '32', '--steps', q ? '2' : '20', '--warmup', q ? '1' : '3']));
      // 7. The PyTorch engine: the whole pipeline (16 decode processes) against bare PyTorch on the same card, fp32 and bf16.
      const engineArgs = q ? ['--size', '32', '--width', '0.125', '--batch', '4', '--steps', '4', '--warmup', '1', '--processes', '2']
        : ['--size', '224', '--width', '1', '--batch', '32', '--steps', '30', '--warmup', '5', '--processes', String(Math.min(16, os.cpus().length))];
      for (const precision of ['fp32', 'bf16']) {
        const te = part(`torch_engine_${precision}`, q ? 120 : 75, NODE, [js('train'), '--engine', 'torch', '--python', python, '--device', 'auto',
          '--precision', precision, '--rounds', '1', '--photos', photos, ...engineArgs]);
        out[`torch_engine_${precision}`] = te.json ? { seconds: te.seconds, ...te.json } : te;
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  out['total_seconds'] = (Date.now() - t0) / 1000;
  if (out['total_seconds'] as number > o.budgetS) out['over_budget'] = `took ${out['total_seconds']} s of ${o.budgetS}`;
  process.stdout.write(JSON.stringify(out, null, 1) + '\n');
}

main();
