/** The flags that name a model and choose what runs it: one table, shared by colorize, eval and export. */
import { BACKENDS } from '../tfjs/backend.js';
import { RUNTIMES } from '../colorize/runner.js';
import { ONNX_DEVICES } from '../onnx/session.js';
import { int, oneOf, string, type FlagTable, type Kind } from './flags.js';

/** `--resolution auto|full|N`: 'auto' when absent; N an integer >= 8 (the network's stride). */
const side = int({ min: 8 });
const resolution: Kind<'auto' | 'full' | number> = {
  type: 'string',
  read: (raw, flag, usage) => (raw === undefined || raw === 'auto' || raw === 'full' ? (raw ?? 'auto') : side.read(raw, flag, usage)!),
};

export const MODEL_FLAGS = {
  model: {
    option: 'model',
    kind: string({ required: true }),
    value: 'PATH',
    help: 'a run directory (runs/NAME), a model directory, a model.json or a model.onnx',
  },
  engine: { option: 'runtime', kind: oneOf(RUNTIMES, 'auto'), value: 'E', help: 'auto (default: ONNX Runtime when it loads, else tfjs)|onnx|tfjs' },
  device: {
    option: 'device',
    kind: oneOf(ONNX_DEVICES, 'auto'),
    value: 'D',
    help: "ONNX Runtime's device: auto (default: cuda, then a real GPU via webgpu, then cpu)|cpu|webgpu|cuda",
  },
  backend: {
    option: 'backend',
    kind: oneOf(BACKENDS, 'auto'),
    value: 'B',
    help: "tfjs's backend (--engine tfjs): auto|tensorflow|webgpu|wasm|cpu (default auto)",
  },
  resolution: {
    option: 'resolution',
    kind: resolution,
    value: 'R',
    help:
      'auto (default: the scale the model trained at, long side at most 2048), full (the original size, rounded to ' +
      "a multiple of 8) or N (long side N); the output keeps the input's size either way",
  },
} satisfies FlagTable;
