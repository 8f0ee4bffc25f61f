/** How an error that ends a command reaches the user: the API's option names as the command's flags, one line. */
import { InvalidOptionError, errorText, exitCodeOf } from '../core/errors.js';
import { Interrupted } from './interrupt.js';

/**
 * The one way an error that ends a command is reported, whatever path it took (thrown by the command, or after
 * Ctrl-C through interruptible): the API's option names become the command's flags (`withFlagNames` with its
 * FLAG_NAMES), then one line on stderr (errorText: a usage error adds the usage; a stack trace only with
 * COLORPIPE_DEBUG=1). Returns the exit status: 130 after Ctrl-C, else 2 for a usage error and 1 for the rest.
 */
export function reportFailure(err: unknown, names: FlagNames | undefined): number {
  const interrupted = err instanceof Interrupted;
  const e = withFlagNames(interrupted ? err.error : err, names);
  process.stderr.write(`colorpipe: ${errorText(e, process.env.COLORPIPE_DEBUG === '1')}\n`);
  return interrupted ? 130 : exitCodeOf(e);
}

/**
 * A command's API option names and the flags that set them (`{ input: '--in' }`): the API's errors say
 * `options.input`, a CLI user typed `--in`. Each command exports its table as FLAG_NAMES; cli.ts rewords the
 * InvalidOptionError that ends a command with `withFlagNames`, in one place (`reportFailure`).
 */
export type FlagNames = Readonly<Record<string, string>>;

/**
 * `err` with every `options.NAME` that `names` maps replaced by its flag (`options.input` -> `--in`); a
 * nested name (`options.resumeAfter.epoch`) and names the table lacks stay as they are. Other errors are
 * returned unchanged.
 */
export function withFlagNames(err: unknown, names: FlagNames | undefined): unknown {
  if (!names || !(err instanceof InvalidOptionError)) return err;
  const brief = err.brief.replace(/\boptions\.([A-Za-z][A-Za-z0-9]*)(?![A-Za-z0-9]|\.[A-Za-z])/g, (all, name: string) =>
    Object.hasOwn(names, name) ? names[name]! : all);
  return brief === err.brief ? err : new InvalidOptionError(brief, { usage: err.usage });
}
