/**
 * Training conventions every engine follows, so that engines agree step for step (`pipe bench fidelity`) and a
 * run can move between them: the optimizers' constants, the learning-rate schedule, and the names of the
 * optimizer's slots in a checkpoint.
 */

/**
 * Adam's epsilon: 1e-7, Keras's default and what tfjs's AdamOptimizer took from a float32 backend, stated here
 * rather than read from the backend (tfjs's default is backend-dependent: 1e-4 on a float16 WebGL backend).
 * PyTorch's default is 1e-8; the PyTorch engine is given this value.
 */
export const ADAM_EPSILON = 1e-7;
export const ADAM_BETA1 = 0.9;
export const ADAM_BETA2 = 0.999;
/** Adadelta as torch and Keras implement it (Zeiler 2012; the paper trained with torch's). */
export const ADADELTA_RHO = 0.95;
export const ADADELTA_EPSILON = 1e-6;

/** Cosine decay from 1 to 0.05 over `steps` iterations, then 0.05: the multiplier of the learning rate at iteration t (1-based). */
export function cosineSchedule(steps: number): (t: number) => number {
  return (t) => 0.05 + 0.95 * 0.5 * (1 + Math.cos((Math.PI * Math.min(t, steps)) / steps));
}

/** The learning rate at iteration t (1-based) for a training config. */
export function learningRateAt(train: { lr: number; lrDecay: string; steps: number }, t: number): number {
  return train.lrDecay === 'cosine' ? train.lr * cosineSchedule(train.steps)(t) : train.lr;
}

/**
 * Slot names of an optimizer type, in the order their groups are stored: per trainable weight W, `W/<slot>`
 * (all of the first slot, then all of the second): Adam `m`, `v`; Adadelta `accum_grad`, `accum_var` (tfjs's own
 * names, which checkpoints have always used).
 */
export function slotNames(optimizer: string): [string, string] {
  return optimizer === 'adadelta' ? ['accum_grad', 'accum_var'] : ['m', 'v'];
}
