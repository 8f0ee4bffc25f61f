/**
 * For in-process command tests (Ctrl-C sent with process.emit('SIGINT')): runs `fn` with SIGINT's listeners (the test runner's, if any) set aside, process.exit and
 * stderr recorded.
 */
export async function withSigint<T>(fn: (exits: number[], lines: string[]) => Promise<T>): Promise<T> {
  const saved = process.listeners('SIGINT');
  process.removeAllListeners('SIGINT');
  const exit = process.exit;
  const write = process.stderr.write;
  const exits: number[] = [];
  const lines: string[] = [];
  process.exit = ((code?: number) => void exits.push(code ?? 0)) as typeof process.exit;
  process.stderr.write = ((chunk: string) => (lines.push(String(chunk)), true)) as typeof process.stderr.write;
  try {
    return await fn(exits, lines);
  } finally {
    process.exit = exit;
    process.stderr.write = write;
    for (const l of saved) process.on('SIGINT', l);
  }
}
