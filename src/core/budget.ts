/**
 * A byte budget: bounds what a pipeline holds in flight by the memory its items take, not by their count.
 * A stage acquires a lease of an item's estimated bytes before the item's work starts (waiting while the
 * budget is spent) and the stage that finishes the item releases it. Requests are served in order (a large
 * item is not starved by small ones behind it), and one larger than the whole budget still goes, alone, when
 * nothing else is in flight: the budget bounds memory without refusing any input.
 *
 * Errors: acquire() rejects with the signal's reason (abortErrorOf) when its signal aborts while it waits, and
 * throws InvalidOptionError for a negative or non-finite size.
 */
import { abortErrorOf, onAbort } from './abort.js';
import { invalidOption } from './validate.js';

/** Bytes held until release(); releasing twice is a no-op. */
export interface Lease {
  readonly bytes: number;
  release(): void;
}

interface Waiter {
  bytes: number;
  grant: (lease: Lease) => void;
}

export class ByteBudget {
  readonly limit: number;
  #used = 0;
  #peak = 0;
  #waiting: Waiter[] = [];

  /** @param limit the bytes that may be held at once (> 0). */
  constructor(limit: number) {
    if (!(limit > 0) || !Number.isFinite(limit)) throw invalidOption('limit', 'a positive number of bytes', limit);
    this.limit = limit;
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** The most bytes held at once so far. */
  get peak(): number {
    return this.#peak;
  }

  /** Requests waiting. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * A lease of `bytes`, at once when they fit (or nothing is held), else once enough is released and every
   * earlier request is served.
   */
  acquire(bytes: number, signal?: AbortSignal): Promise<Lease> {
    if (!(bytes >= 0) || !Number.isFinite(bytes)) throw invalidOption('bytes', 'a non-negative number', bytes);
    if (signal?.aborted) return Promise.reject(abortErrorOf(signal));
    if (this.#waiting.length === 0 && this.#fits(bytes)) return Promise.resolve(this.#grant(bytes));
    return new Promise<Lease>((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        grant: (lease) => {
          dispose();
          resolve(lease);
        },
      };
      const dispose = onAbort(signal, () => {
        const i = this.#waiting.indexOf(waiter);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(abortErrorOf(signal!));
        this.#serve();
      });
      this.#waiting.push(waiter);
    });
  }

  #fits(bytes: number): boolean {
    return this.#used === 0 || this.#used + bytes <= this.limit;
  }

  #grant(bytes: number): Lease {
    this.#used += bytes;
    this.#peak = Math.max(this.#peak, this.#used);
    let held = true;
    return {
      bytes,
      release: () => {
        if (!held) return;
        held = false;
        this.#used -= bytes;
        this.#serve();
      },
    };
  }

  /** Grants waiting requests in order while the first fits. */
  #serve(): void {
    while (this.#waiting.length > 0 && this.#fits(this.#waiting[0]!.bytes)) {
      const w = this.#waiting.shift()!;
      w.grant(this.#grant(w.bytes));
    }
  }
}
