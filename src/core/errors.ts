/**
 * Named errors, each with a stable `code` (the it-* convention), and the bad-input reporter every stage
 * shares. Bad input (a corrupt JPEG, a truncated tar, a non-image) is never thrown through a stream: it is
 * reported to the run's `Reporter`, counted, and the stream goes on, unless the run said `onError: 'fail'`.
 */

/**
 * Every error code colorpipe throws, in one place. The named classes below carry theirs; the codes used with
 * ColorpipeError itself are the run-level failures.
 */
export type ErrorCode =
  | 'ERR_INVALID_OPTION' // InvalidOptionError: a wrong option value or CLI flag
  | 'ERR_BAD_INPUT' // BadInputError: one input that cannot be used (reported, fatal only with onError 'fail')
  | 'ABORT_ERR' // AbortError: the pipeline was stopped
  | 'ERR_OUT_OF_MEMORY' // OutOfMemoryError: the engine's memory is exhausted
  | 'ERR_ENGINE_UNAVAILABLE' // EngineUnavailableError: a backend that cannot run here
  | 'ERR_WASM_ALLOCATION' // WasmAllocationError: one failed wasm heap allocation
  | 'ERR_NO_SAMPLES' // a whole epoch yielded nothing usable
  | 'ERR_CHECKPOINT' // a checkpoint that cannot be read
  | 'ERR_LOADER_CHILD' // a loader child process died
  | 'ERR_LOADER_PROTOCOL' // a loader child sent frames out of order (a bug, not bad input)
  | 'ERR_LOADER_HUB' // the loader's hub thread exited early
  | 'ERR_TORCH_WORKER' // the PyTorch worker process failed or died
  | 'ERR_RANK' // another rank of a data-parallel run failed or left
  | 'ERR_LOCKED'; // a folder another live run is writing (core/lock.ts)

export class ColorpipeError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * A wrong option value, thrown when a stage factory is called (never later, inside the stream). A CLI usage
 * error passes the command's `usage`: the message is then the error's line, a newline and the usage, and
 * `brief` is the error's line alone (cli.ts escapes that part and prints the usage as it is).
 */
export class InvalidOptionError extends ColorpipeError {
  readonly brief: string;
  readonly usage: string | undefined;
  constructor(message: string, options?: { usage?: string }) {
    super('ERR_INVALID_OPTION', options?.usage ? `${message}\n${options.usage}` : message);
    this.brief = message;
    this.usage = options?.usage;
  }
}

/** One input that could not be used: which one (key or path), and why. */
export class BadInputError extends ColorpipeError {
  readonly key: string;
  readonly reason: string;
  constructor(key: string, reason: string, options?: { cause?: unknown }) {
    super('ERR_BAD_INPUT', `${key}: ${reason}`, options);
    this.key = key;
    this.reason = reason;
  }
}

/** The pipeline was aborted (early stop, Ctrl-C, or an error in another stage). */
export class AbortError extends ColorpipeError {
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super('ABORT_ERR', message, options);
  }
}

/** The engine ran out of memory (e.g. wasm32's 4 GiB); the message names a batch size to try. */
export class OutOfMemoryError extends ColorpipeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_OUT_OF_MEMORY', message, options);
  }
}

/** The requested engine cannot run here (package missing, no GPU); the message says what to install or use. */
export class EngineUnavailableError extends ColorpipeError {
  /** A few words for logs: why this engine was skipped by `auto`. */
  readonly short: string;
  constructor(message: string, options?: { cause?: unknown; short?: string }) {
    super('ERR_ENGINE_UNAVAILABLE', message, options);
    this.short = options?.short ?? message.split(/[:.(]/)[0]!.trim();
  }
}

/** The wasm32 heap limit emscripten builds tfjs-backend-wasm with (getHeapMax: 65535 pages of 64 KiB). */
export const WASM_HEAP_LIMIT = 4294901760;

/** A wasm heap allocation failed (malloc returned null); nothing was written, the engine can go on. */
export class WasmAllocationError extends ColorpipeError {
  readonly bytes: number;
  constructor(bytes: number) {
    super('ERR_WASM_ALLOCATION', `wasm heap allocation of ${bytes} bytes failed (heap limit ${WASM_HEAP_LIMIT} bytes)`);
    this.bytes = bytes;
  }
}

export type OnError = 'skip' | 'fail';

export interface BadInputRecord {
  stage: string;
  key: string;
  reason: string;
}

/**
 * Collects bad inputs for a run. `report()` prints one warning line `colorpipe: skipped KEY (stage): REASON`
 * and counts it; with `onError: 'fail'` it throws the BadInputError instead, which ends the pipeline.
 */
export class Reporter {
  readonly onError: OnError;
  readonly records: BadInputRecord[] = [];
  private readonly log: ((line: string) => void) | null;
  private readonly keep: number;

  constructor(options: { onError?: OnError; log?: ((line: string) => void) | null; keep?: number } = {}) {
    const onError = options.onError ?? 'skip';
    if (onError !== 'skip' && onError !== 'fail') {
      throw new InvalidOptionError(`Expected 'skip' or 'fail' for onError but received ${String(onError)}`);
    }
    this.onError = onError;
    this.log = options.log === undefined ? (line) => process.stderr.write(line + '\n') : options.log;
    this.keep = options.keep ?? 10_000;
    this.counts = new Map();
  }

  /** Count per stage of everything reported so far. */
  readonly counts: Map<string, number>;

  get total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  /** Reports one bad input. Throws (ending the run) when onError is 'fail'. */
  report(stage: string, key: string, reason: string, cause?: unknown): void {
    const err = new BadInputError(key, reason, { cause });
    if (this.onError === 'fail') throw err;
    this.counts.set(stage, (this.counts.get(stage) ?? 0) + 1);
    if (this.records.length < this.keep) this.records.push({ stage, key, reason });
    this.log?.(`colorpipe: skipped ${printable(key)} (${stage}): ${printable(reason)}`);
  }

  /** Things the run noticed and worked around that are not bad inputs (a symbolic link loop not followed). */
  readonly notices: BadInputRecord[] = [];

  /** One line `colorpipe: note: KEY (stage): REASON`; not counted as bad input, never fatal. */
  notice(stage: string, key: string, reason: string): void {
    if (this.notices.length < this.keep) this.notices.push({ stage, key, reason });
    this.log?.(`colorpipe: note: ${printable(key)} (${stage}): ${printable(reason)}`);
  }

  summary(): { total: number; byStage: Record<string, number> } {
    return { total: this.total, byStage: Object.fromEntries(this.counts) };
  }
}

// C0 controls, DEL and C1 controls (which include CSI, U+009B, an escape sequence by itself), and the line
// and paragraph separators some terminals and viewers break lines at.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `text` made safe for one line of a terminal or a log: every control character (C0, DEL, C1, U+2028/9) is
 * written as an escape (`\n`, `\x1b`, `\u009b`), so a file name with a newline cannot forge a line of its
 * own, and an escape sequence it starts (ESC [ 2 J ...) is left as harmless text. Everything else is kept.
 * Use it on every file name, key, reason or message that reaches a human-readable line.
 */
export function printable(text: string): string {
  return text.replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    return NAMED[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`);
  });
}

/** Short, single-line reason from any thrown value. */
export function reasonOf(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0]!.trim() || 'unknown error';
}

// What Node's fs error codes mean, in the words a user reads (strerror's, mostly).
const FS_REASONS: Record<string, string> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EEXIST: 'a file is in the way (not a directory)',
  ENOTDIR: 'a part of the path is a file, not a directory',
  EISDIR: 'is a directory',
  ENOENT: 'no such file or directory',
  ENAMETOOLONG: 'file name too long',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  EIO: 'input/output error',
  EFBIG: 'file too large',
  ELOOP: 'too many levels of symbolic links',
};

// The syscalls that only read; any other failing on a path is reported as a write.
const READ_SYSCALLS = new Set(['read', 'scandir', 'opendir', 'stat', 'lstat', 'fstat', 'readlink', 'access', 'realpath', 'statfs']);

/**
 * One line for a file-system error (a Node ErrnoException with a known `code`), naming the path:
 * `cannot write PATH: no space left on device`. `path` overrides the error's own (a write's ENOSPC carries
 * none: the caller names the file). Null when `err` is no such error.
 */
export function fileErrorLine(err: unknown, path?: string): string | null {
  const e = err as NodeJS.ErrnoException | null;
  const reason = e && typeof e === 'object' && typeof e.code === 'string' ? FS_REASONS[e.code] : undefined;
  if (!reason) return null;
  const where = path ?? e!.path;
  const verb = e!.code === 'ENOSPC' || e!.code === 'EDQUOT' || e!.code === 'EROFS' ? 'write'
    : e!.syscall === 'open' ? (e!.code === 'ENOENT' ? 'read' : 'open')
    : READ_SYSCALLS.has(e!.syscall ?? '') ? 'read' : 'write';
  return where ? `cannot ${verb} ${printable(where)}: ${reason}` : `${reason} (${e!.syscall ?? 'file system'})`;
}

/**
 * What the CLI prints for an error that ends a command, as one line (plus the usage for a usage error):
 * a ColorpipeError's message, a file-system error's fileErrorLine, else the error's first line. Never a stack
 * trace (`debug` adds it, for COLORPIPE_DEBUG=1). Every part that came from outside is escaped (printable).
 */
export function errorText(err: unknown, debug = false): string {
  let text: string;
  if (err instanceof InvalidOptionError) text = printable(err.brief) + (err.usage ? `\n${err.usage}` : '');
  else if (err instanceof ColorpipeError) text = printable(err.message);
  else text = fileErrorLine(err) ?? `${err instanceof Error && err.name !== 'Error' ? `${err.name}: ` : ''}${printable(err instanceof Error ? err.message : String(err))}`;
  if (debug && err instanceof Error && err.stack) text += `\n${err.stack}`;
  return text;
}

/** The exit status for an error that ends a command: 2 for a usage error (a bad or missing flag), else 1. */
export function exitCodeOf(err: unknown): number {
  return err instanceof InvalidOptionError ? 2 : 1;
}
