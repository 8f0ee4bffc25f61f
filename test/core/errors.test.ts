import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AbortError, BadInputError, ColorpipeError, EngineUnavailableError, InvalidOptionError, OutOfMemoryError, Reporter,
  WasmAllocationError, errorText, exitCodeOf, fileErrorLine, printable, reasonOf,
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

test('printable escapes C0, DEL and C1 controls (and the sequences they start stay inert text)', { timeout: 5000 }, () => {
  assert.equal(printable('plain/ä 名.jpg'), 'plain/ä 名.jpg');
  assert.equal(printable('a\nb\r\tc'), 'a\\nb\\r\\tc');
  assert.equal(printable('\x1b[31mred\x1b[0m\x00\x7f\x9b2J\u0085\u2028'), '\\x1b[31mred\\x1b[0m\\x00\\x7f\\x9b2J\\x85\\u2028');
  const lines: string[] = [];
  new Reporter({ log: (l) => lines.push(l) }).report('decode', 'x\ncolorpipe: 99 written, 0 skipped, 0 failed', 'bad\x1b]0;title\x07');
  assert.deepEqual(lines, ['colorpipe: skipped x\\ncolorpipe: 99 written, 0 skipped, 0 failed (decode): bad\\x1b]0;title\\x07']);
});

test('fileErrorLine and errorText: one line naming the path; exit status 2 for usage errors, else 1', { timeout: 5000 }, () => {
  const errno = (code: string, syscall: string, path?: string) => Object.assign(new Error(`${code}: x, ${syscall} '${path}'`), { code, syscall, path });
  assert.equal(fileErrorLine(errno('ENOSPC', 'write'), 'out/a.png'), 'cannot write out/a.png: no space left on device');
  assert.equal(fileErrorLine(errno('EROFS', 'open', '/ro/x')), 'cannot write /ro/x: read-only file system');
  assert.equal(fileErrorLine(errno('EACCES', 'mkdir', '/r/o')), 'cannot write /r/o: permission denied');
  assert.equal(fileErrorLine(errno('EACCES', 'scandir', '/in')), 'cannot read /in: permission denied');
  assert.equal(fileErrorLine(errno('ENOTDIR', 'mkdir', 'f/x\n')), 'cannot write f/x\\n: a part of the path is a file, not a directory');
  assert.equal(fileErrorLine(new Error('plain')), null);
  assert.equal(errorText(errno('EEXIST', 'mkdir', 'runs/f')), 'cannot write runs/f: a file is in the way (not a directory)');
  assert.equal(errorText(new InvalidOptionError('Missing --in\x1b', { usage: 'Usage:\n  x' })), 'Missing --in\\x1b\nUsage:\n  x');
  assert.equal(errorText(new TypeError('boom\nat line')), 'TypeError: boom\\nat line');
  assert.ok(!errorText(new Error('x')).includes('    at '), 'no stack');
  assert.equal(exitCodeOf(new InvalidOptionError('x')), 2);
  assert.equal(exitCodeOf(new BadInputError('k', 'r')), 1);
  assert.equal(exitCodeOf(new Error('x')), 1);
});

test('Reporter.notice: one escaped line, kept apart from the bad inputs, never fatal', () => {
  const lines: string[] = [];
  const r = new Reporter({ onError: 'fail', log: (l) => lines.push(l) });
  r.notice('files', 'in/d/p1\n', 'symbolic link loop');
  assert.deepEqual(lines, ['colorpipe: note: in/d/p1\\n (files): symbolic link loop']);
  assert.equal(r.total, 0);
  assert.deepEqual(r.notices, [{ stage: 'files', key: 'in/d/p1\n', reason: 'symbolic link loop' }]);
});
