/** `pipe serve`: the local web app (src/serve/): colorize photos in the browser with a run's model, and the runs view. */
import { promises as fsp, realpathSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { InvalidOptionError, reasonOf } from '../core/errors.js';
import { resolveModelPath } from '../colorize/runner.js';
import { webAssets } from '../serve/assets.js';
import { listRuns } from '../serve/runs.js';
import { isLoopback, serve, type ServeOptions } from '../serve/server.js';
import { boolean, flagNames, int, parseFlags, string, usage, type FlagTable } from './flags.js';
import { interruptible } from './interrupt.js';

export const FLAGS = {
  runs: { option: 'runs', kind: string(), value: 'DIR', help: 'the runs to show and colorize with (default runs)' },
  model: {
    option: 'model',
    kind: string(),
    value: 'PATH',
    help: 'the model selected first: a run directory (runs/NAME), a model directory, a model.json or a model.onnx (default: the run written last)',
  },
  port: { option: 'port', kind: int({ min: 0, max: 65535, default: 8080 }), value: 'N', help: 'the port (default 8080; 0 picks a free one)' },
  host: {
    option: 'host',
    kind: string(),
    value: 'ADDR',
    help: 'the address to listen on (default 127.0.0.1: this machine only; any other prints a warning: whoever reaches it sees the runs)',
  },
  open: { kind: boolean, help: 'open the page in the default browser' },
} satisfies FlagTable;

export const USAGE = usage(
  `Usage: pipe serve [--runs runs/] [--model runs/NAME] [--port 8080] [--host 127.0.0.1] [--open]
  A local web app: / colorizes photos in the browser (onnxruntime-web: WebGPU, else WebAssembly) with a run's
  model, /runs shows every run with live curves while it trains. Read only; Ctrl-C stops it.`,
  FLAGS,
);
export const FLAG_NAMES = flagNames(FLAGS);

/** --model as the server takes it: a run under --runs by name, else the model file. */
async function modelOption(model: string, runs: string): Promise<ServeOptions['model']> {
  const file = await resolveModelPath(model);
  const real = realpathSync(file);
  for (const run of await listRuns(runs)) {
    const own = await fsp.realpath(path.join(run.dir, 'model', 'model.json')).catch(() => null);
    if (own === real) return { run: run.name };
  }
  const dir = path.dirname(file);
  return { name: path.basename(path.basename(dir) === 'model' ? path.dirname(dir) : dir), file };
}

/** The platform's "open this URL" command, detached; a failure is one line, not an error. */
function openBrowser(url: string): void {
  const [cmd, args] = process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '', url]] : ['xdg-open', [url]];
  const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
  child.on('error', (err) => process.stderr.write(`colorpipe: could not open a browser (${reasonOf(err)}); open ${url}\n`));
  child.unref();
}

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(argv, FLAGS, USAGE);
  const runs = path.resolve(v.runs ?? 'runs');
  const host = v.host ?? '127.0.0.1';
  const assets = webAssets();
  const st = await fsp.stat(runs).catch(() => null);
  if (st && !st.isDirectory()) throw new InvalidOptionError(`${v.runs ?? 'runs'} is not a folder (--runs)`);
  const model = v.model === undefined ? undefined : await modelOption(v.model, runs);
  let served;
  try {
    served = await serve({ runs, host, port: v.port, assets, ...(model ? { model } : {}), log: (line) => process.stderr.write(line + '\n') });
  } catch (err) {
    throw new Error(`Cannot listen on ${host} port ${v.port} (--host, --port): ${reasonOf(err)}`);
  }
  if (!isLoopback(host)) {
    process.stderr.write(`colorpipe: warning: listening on ${host}: anyone who can reach it can see the runs and download their models\n`);
  }
  const n = (await listRuns(runs)).length;
  process.stderr.write(
    `colorpipe: serving ${served.url} (colorize) and ${served.url}runs (${n} run${n === 1 ? '' : 's'} under ${v.runs ?? 'runs'}` +
      `${st ? '' : ', none yet'}); Ctrl-C stops\n`,
  );
  if (v.open) openBrowser(served.url);
  return interruptible('closing the server', async (stop) => {
    await new Promise((resolve) => stop.addEventListener('abort', resolve, { once: true }));
    await served.close();
    return 0;
  });
}
