/**
 * A pass-through stage that draws a progress bar on stderr: on a TTY one line redrawn at most 10 times a
 * second (each frame clears what the previous one left), elsewhere (CI, pipes) a plain line every `every`
 * seconds. It never changes the items.
 */
import type { Stage } from '../core/pipeline.js';
import { finiteNumber } from '../core/validate.js';

export interface ProgressState {
  /** Items seen so far. */
  count: number;
  /** Seconds since the first item was requested. */
  elapsed: number;
}

export interface ProgressOptions<T> {
  /** Expected number of items (for the bar and the ETA), if known. */
  total?: number;
  /** Text after the bar for the latest item. */
  render?: (item: T, state: ProgressState) => string;
  /** Where to draw; process.stderr by default. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Draw nothing. */
  quiet?: boolean;
  /** Seconds between lines when not a TTY. */
  every?: number;
  label?: string;
}

/** ANSI/ECMA-48 Erase in Line (CSI K): clears from the cursor to the end of the line. */
export const ERASE_TO_END_OF_LINE = '\x1b[K';

export function formatBar(count: number, total: number | undefined, width = 24): string {
  if (!total) return '';
  const f = Math.max(0, Math.min(1, count / total));
  const full = Math.round(f * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${String(Math.round(f * 100)).padStart(3)}% `;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const m = Math.floor(s / 60);
  const r = Math.round(s % 60);
  return m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

export function progress<T>(options: ProgressOptions<T> = {}): Stage<T, T> {
  if (options.total !== undefined) finiteNumber(options.total, 'options.total', { min: 0 });
  const stream = options.stream ?? process.stderr;
  const every = (options.every ?? 10) * 1000;
  return async function* progressStage(source) {
    const start = performance.now();
    let count = 0;
    let lastDraw = 0;
    let drewTTY = false;
    const draw = (item: T | undefined, final: boolean) => {
      if (options.quiet) return;
      const now = performance.now();
      const tty = Boolean(stream.isTTY);
      if (!final && now - lastDraw < (tty ? 100 : every)) return;
      lastDraw = now;
      const elapsed = (now - start) / 1000;
      const state = { count, elapsed };
      const eta = options.total && count > 0 ? ` eta ${formatDuration((elapsed / count) * (options.total - count))}` : '';
      const text = `${options.label ? options.label + ' ' : ''}${formatBar(count, options.total)}${count}${options.total ? '/' + options.total : ''} ${item !== undefined && options.render ? options.render(item, state) : ''} ${formatDuration(elapsed)}${final ? '' : eta}`;
      if (tty) {
        const cols = stream.columns ?? 120;
        // Back to the line's start, the new frame, then erase to the end of the line (CSI K): a shorter frame
        // would otherwise leave the end of the longer one before it on screen ("ta 0s").
        stream.write('\r' + text.slice(0, cols - 1) + ERASE_TO_END_OF_LINE);
        drewTTY = true;
        if (final) stream.write('\n');
      } else {
        stream.write(text + '\n');
      }
    };
    let last: T | undefined;
    try {
      for await (const item of source) {
        count++;
        last = item;
        draw(item, false);
        yield item;
      }
    } finally {
      if (count > 0 || drewTTY) draw(last, true);
    }
  };
}
