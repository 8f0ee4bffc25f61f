/** What the engine tests assert of any training engine (src/network/train-engine.ts). */
import assert from 'node:assert/strict';
import type { NamedWeight } from '../../src/network/weights.js';
import type { OptimizerState, TrainEngine } from '../../src/network/train-engine.js';

/** |a - b| / |b| (b at least 1e-12 in size). */
export const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);

/** The same names, in order, with the same bytes. */
export function sameWeights(a: NamedWeight[], b: NamedWeight[]): void {
  assert.deepEqual(a.map((w) => w.name), b.map((w) => w.name));
  const bytes = (w: NamedWeight) => Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength);
  for (let i = 0; i < a.length; i++) assert.ok(bytes(a[i]!).equals(bytes(b[i]!)), a[i]!.name);
}

/** Its weights and optimizer state go out and back in bit for bit; returns the state. */
export async function assertStateRoundTrip(e: TrainEngine): Promise<OptimizerState> {
  const w = await e.weights();
  await e.setWeights(w);
  sameWeights(await e.weights(), w);
  const state = await e.optimizerState();
  await e.setOptimizerState(state);
  const back = await e.optimizerState();
  assert.equal(back.iterations, state.iterations);
  sameWeights(back.slots, state.slots);
  return state;
}
