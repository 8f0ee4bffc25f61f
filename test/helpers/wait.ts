import { setTimeout as delay } from 'node:timers/promises';

/**
 * Waiting on events, not on time: `until` turns the event loop until a condition holds, and fails the test
 * if it never does, so an assertion that follows it cannot pass because nothing ran.
 */
export async function until(cond: () => boolean, what = 'condition', rounds = 10_000): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    if (cond()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`${what} never held within ${rounds} event-loop turns`);
}

/**
 * Whether `p` has settled (resolved or rejected) yet, asked at any time: `await until(settled(p), ...)` fails a
 * test whose promise never settles instead of hanging it. The caller still awaits `p` for its value or error.
 */
export function settled(p: Promise<unknown>): () => boolean {
  let done = false;
  void p.then(
    () => (done = true),
    () => (done = true),
  );
  return () => done;
}

/** How many timers (setTimeout, setInterval) are pending in this process now. */
export function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/** A few turns of the event loop: lets background pulls that could still happen, happen. */
export async function turns(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}

/**
 * Polls `cond` every 20 ms until it holds; false when `ms` passed first. For what no event of this process
 * announces (another process's state in /proc, the files it writes): it waits on time, within a limit.
 */
export async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) return false;
    await delay(20);
  }
  return true;
}
