/**
 * The before/after comparison: the colorized image over the original, cut at a divider that follows the mouse
 * or a finger (pointer events) and the keyboard (the handle is an ARIA slider: arrows step 1%, with Shift or
 * Page Up/Down 10%, Home and End go to the ends). The cut is a clip-path on the top image, as DeOldify's browser
 * port does it: no copy of the pixels.
 */
import { h } from './dom.js';

/** A comparison of `before` and `after` (images already made), starting at `start` percent. */
export function beforeAfter(before: HTMLImageElement, after: HTMLImageElement, label: string, start = 50): HTMLElement {
  const handle = h('div', {
    class: 'handle',
    role: 'slider',
    tabindex: 0,
    'aria-label': `Divider between the original and the colorized ${label}`,
    'aria-valuemin': 0,
    'aria-valuemax': 100,
  });
  const box = h('div', { class: 'compare' }, before, after, handle);
  let value = -1;
  const set = (v: number) => {
    const next = Math.round(Math.min(100, Math.max(0, v)) * 10) / 10;
    if (next === value) return;
    value = next;
    after.style.clipPath = `inset(0 0 0 ${value}%)`;
    handle.style.left = `${value}%`;
    handle.setAttribute('aria-valuenow', String(value));
    handle.setAttribute('aria-valuetext', `${value}% original, ${Math.round((100 - value) * 10) / 10}% colorized`);
  };
  set(start);

  const fromPointer = (e: PointerEvent) => {
    const r = box.getBoundingClientRect();
    if (r.width > 0) set(((e.clientX - r.left) / r.width) * 100);
  };
  box.addEventListener('pointerdown', (e) => {
    box.setPointerCapture(e.pointerId);
    fromPointer(e);
    handle.focus({ preventScroll: true });
  });
  box.addEventListener('pointermove', (e) => {
    if (box.hasPointerCapture(e.pointerId)) fromPointer(e);
  });
  handle.addEventListener('keydown', (e) => {
    const big = e.shiftKey ? 10 : 1;
    const steps: Record<string, number> = {
      ArrowLeft: -big, ArrowDown: -big, ArrowRight: big, ArrowUp: big, PageDown: -10, PageUp: 10, Home: -100, End: 100,
    };
    const d = steps[e.key];
    if (d === undefined) return;
    e.preventDefault();
    set(value + d);
  });
  return box;
}
