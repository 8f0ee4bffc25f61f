/** Ctrl-C, the same in every command: `interruptible` and the error it throws on after a first Ctrl-C. */
import { reasonOf } from '../core/errors.js';
import { isAbortError } from '../core/abort.js';

/**
 * Ctrl-C, the same in every command: the first SIGINT prints one line (`message`: what the command finishes
 * before it stops) and aborts the signal handed to `work`, which then finishes cleanly (a checkpoint, whole
 * files, no temp file left) and the command exits 130, whether `work` returned or threw on the abort; a second
 * SIGINT exits 130 at once. An error other than the abort's, thrown after the first SIGINT, is thrown on as an
 * Interrupted that carries it: cli.ts reports it as it reports any error (`reportFailure`: flags named, one
 * line), and the status stays 130.
 */
export async function interruptible(message: string, work: (stop: AbortSignal) => Promise<number>): Promise<number> {
  const stop = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    if (++interrupts > 1) return process.exit(130);
    process.stderr.write(`\ncolorpipe: interrupted: ${message} (Ctrl-C again to quit now)\n`);
    stop.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    const code = await work(stop.signal);
    return stop.signal.aborted ? 130 : code;
  } catch (err) {
    if (!stop.signal.aborted) throw err;
    if (isAbortError(err, stop.signal)) return 130;
    throw new Interrupted(err);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** An error that ended a command after its first Ctrl-C (`error`): reported like any other, with exit status 130. */
export class Interrupted extends Error {
  constructor(readonly error: unknown) {
    super(`interrupted, then: ${reasonOf(error)}`, { cause: error });
    this.name = 'Interrupted';
  }
}
