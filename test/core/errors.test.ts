import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AbortError, BadInputError, ColorpipeError, EngineUnavailableError, InvalidOptionError, OutOfMemoryError, Reporter,
  WasmAllocationError, reasonOf,
} from '../../src/core/errors.js';

test('every error class carries its code and name', () => {
  const cases: Array<[ColorpipeError, string, string]> = [
    [new InvalidOptionError('x'), 'ERR_INVALID_OPTION', 'InvalidOptionError'],
    [new BadInputError('k', 'r'), 'ERR_BAD_INPUT', 'BadInputError'],
    [new AbortError(), 'ABORT_ERR', 'AbortError'],
    [new OutOfMemoryError('x'), 'ERR_OUT_OF_MEMORY', 'OutOfMemoryError'],
    [new EngineUnavailableError('webgpu: no adapter. Use wasm'), 'ERR_ENGINE_UNAVAILABLE', 'EngineUnavailableError'],
    [new WasmAllocationError(16), 'ERR_WASM_ALLOCATION', 'WasmAllocationError'],
  ];
  for (const [e, code, name] of cases) {
    assert.ok(e instanceof ColorpipeError);
    assert.equal(e.code, code);
    assert.equal(e.name, name);
  }
  assert.equal(new EngineUnavailableError('webgpu: no adapter. Use wasm').short, 'webgpu');
});

test('Reporter: one line per bad input, counted by stage; onError fail throws the BadInputError', () => {
  const lines: string[] = [];
  const r = new Reporter({ log: (l) => lines.push(l) });
  r.report('decode', 'a.jpg', 'corrupt');
  r.report('decode', 'b.jpg', 'empty');
  r.report('shards', 'c.tar', 'truncated');
  assert.deepEqual(lines, [
    'colorpipe: skipped a.jpg (decode): corrupt',
    'colorpipe: skipped b.jpg (decode): empty',
    'colorpipe: skipped c.tar (shards): truncated',
  ]);
  assert.deepEqual(r.summary(), { total: 3, byStage: { decode: 2, shards: 1 } });
  const fail = new Reporter({ onError: 'fail', log: null });
  assert.throws(() => fail.report('decode', 'a.jpg', 'corrupt'), (e: unknown) => e instanceof BadInputError && e.key === 'a.jpg');
  assert.throws(() => new Reporter({ onError: 'maybe' as 'skip' }), InvalidOptionError);
});

test('reasonOf: the first line of any thrown value', () => {
  assert.equal(reasonOf(new Error('first\nsecond')), 'first');
  assert.equal(reasonOf('plain'), 'plain');
  assert.equal(reasonOf(new Error('')), 'unknown error');
});
