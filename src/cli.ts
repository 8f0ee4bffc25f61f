#!/usr/bin/env node
/**
 * `pipe`: the command line. Each command lives in src/commands/<name>.ts and exports `run(argv)`; this file
 * only dispatches, so `pipe --help` stays fast (no tfjs or sharp loaded for it).
 */
import { printable } from './core/errors.js';
import { colorpipeVersion } from './core/version.js';
import { reportFailure, type FlagNames } from './commands/report.js';

// Written by hand (loading every command's flag table would load tfjs and sharp); test/commands/flag-tables.test.ts
// checks that it lists every flag each table has.
const HELP = `pipe: train and run the Iizuka et al. 2016 colorization network as a streaming pipeline

Usage:
  pipe train    --shards 'data/*.tar' --out runs/NAME [--config configs/tiny.json] [--steps N] [--batch B]
                [--size S] [--width W] [--lr LR] [--seed S] [--checkpoint-every N]
                [--engine auto|tfjs|torch|onnx] [--backend auto|tensorflow|webgpu|wasm|cpu] [--software-gpu]
                [--threads T] [--python PATH] [--device auto|cpu|cuda] [--precision fp32|tf32|bf16] [--compile]
                [--devices N] [--nodes N --node-rank R --master HOST:PORT] [--sync-bn] [--rank-timeout S]
                [--val-shards GLOB] [--resume] [--processes P] [--on-error skip|fail] [--log-keys] [--quiet]
  pipe colorize --in DIR|FILE --out DIR --model runs/NAME|model.json [--style REF.jpg] [--batch B]
                [--engine auto|onnx|tfjs] [--device D] [--backend B] [--resolution auto|full|N]
                [--tile N] [--memory-budget MB] [--format same|jpg|png|webp|tiff|gif|avif] [--quality Q]
                [--overwrite] [--on-error skip|fail] [--rank R --world W] [--threads T] [--quiet] [--json]
  pipe shard    --in DIR --out DIR [--maxcount 1000] [--prefix data] [--labels dirs|none] [--filter]
                [--on-error skip|fail] [--quiet]
  pipe eval     --in DIR --model runs/NAME [--resolution auto|full|N] [--batch B] [--engine E] [--device D]
                [--backend B] [--json]
  pipe export   --model runs/NAME [--out runs/NAME/model.onnx] [--opset 17] [--fusion split|concat] [--web DIR]
                [--quiet]
  pipe serve    [--runs runs/] [--model runs/NAME] [--port 8080] [--host 127.0.0.1] [--open]
  pipe bench    loader|train|colorize|predict|fidelity|memory [options]   (prints JSON; see BENCHMARKS.md)
  pipe demo     [--out runs/demo] [--minutes M] [--steps N] [--backend B] [--fresh] [--quiet]

Run 'pipe COMMAND --help' for a command's options; 'pipe --version' prints colorpipe's version.
Exit status: 0 done, 1 a failure (or inputs that failed), 2 a usage error (a bad or missing flag),
130 interrupted (Ctrl-C).`;


/** A command: `run` returns the exit status; FLAG_NAMES maps the API's option names to its flags. */
interface Command {
  run(argv: string[]): Promise<number>;
  FLAG_NAMES?: FlagNames;
}

const COMMANDS: Record<string, () => Promise<Command>> = {
  train: () => import('./commands/train.js'),
  colorize: () => import('./commands/colorize.js'),
  shard: () => import('./commands/shard.js'),
  eval: () => import('./commands/eval.js'),
  bench: () => import('./commands/bench.js'),
  export: () => import('./commands/export.js'),
  serve: () => import('./commands/serve.js'),
  demo: () => import('./commands/demo.js'),
};

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP + '\n');
    return cmd ? 0 : 2;
  }
  if (cmd === '--version' || cmd === '-v' || cmd === 'version') {
    process.stdout.write(`colorpipe ${colorpipeVersion()}\n`);
    return 0;
  }
  const load = COMMANDS[cmd];
  if (!load) {
    process.stderr.write(`colorpipe: unknown command '${printable(cmd)}'\n\n${HELP}\n`);
    return 2;
  }
  const mod = await load();
  try {
    return await mod.run(rest);
  } catch (err) {
    // The API's errors name its options (`options.input`); the user typed the command's flags (`--in`). The same
    // report for an error after Ctrl-C (interruptible's Interrupted, status 130).
    return reportFailure(err, mod.FLAG_NAMES);
  }
}

// Exit explicitly once stdout and stderr are flushed: engine worker threads (wasm pthreads, Dawn) may otherwise
// keep the process alive after the command is done.
function exit(code: number): void {
  process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
}

// One line naming the file or flag (and the usage for a usage error), never a stack trace unless asked for.
// (An error here came before any command ran: loading it.)
main(process.argv.slice(2)).then(exit, (err: unknown) => exit(reportFailure(err, undefined)));
