import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyOverrides, DEFAULT_CONFIG, loadConfig, makeConfig, resumeConflicts } from '../src/config.js';
import { InvalidOptionError } from '../src/core/errors.js';
import { tmpDir } from './helpers/tar.js';

test('the default is the paper network at 224 (what pipe train uses without --config)', () => {
  const c = makeConfig();
  assert.deepEqual(c.model, { inputSize: 224, width: 1, numClasses: 0 });
  assert.equal(c.augment.crop, 224);
  assert.equal(c.augment.resize, 256, 'the paper: crop 224 of the short side scaled to 256');
  assert.equal(c.train.valEvery, 0);
  assert.deepEqual(makeConfig({ name: 'default' }), makeConfig(), 'DEFAULT_CONFIG is not mutated by makeConfig');
  assert.equal(DEFAULT_CONFIG.augment.resize, 256);
  assert.equal(DEFAULT_CONFIG.augment.scaleJitter, null, 'no random scale unless asked for');
  assert.deepEqual(makeConfig({ model: { inputSize: 32 }, augment: { scaleJitter: [32, 48] } }).augment.scaleJitter, [32, 48]);
});

test('crop and resize follow the input size unless given', () => {
  const c = makeConfig({ model: { inputSize: 64 } });
  assert.equal(c.augment.crop, 64);
  assert.equal(c.augment.resize, Math.round((64 * 256) / 224));
  assert.equal(makeConfig({ model: { inputSize: 64 }, augment: { resize: 80 } }).augment.resize, 80);
});

test('the shipped configs load and validate', () => {
  for (const name of ['tiny', 'demo', 'iizuka2016']) {
    const c = loadConfig(join('configs', `${name}.json`));
    assert.equal(c.name, name);
  }
  assert.equal(loadConfig('configs/iizuka2016.json').model.numClasses, 205);
});

test('bad values are refused with the key named', (t) => {
  assert.throws(() => makeConfig({ model: { inputSize: 30 } }), /model.inputSize/);
  assert.throws(() => makeConfig({ train: { lr: 0 } }), /Expected positive number for train.lr but received 0/);
  assert.throws(() => makeConfig({ train: { optimizer: 'sgd' as 'adam' } }), /train.optimizer/);
  assert.throws(() => makeConfig({ train: { valEvery: -1 } }), /train.valEvery/);
  assert.throws(() => makeConfig({ augment: { resize: 10, crop: 32 }, model: { inputSize: 32 } }), /augment.resize/);
  assert.throws(() => makeConfig({ model: { inputSize: 32 }, augment: { scaleJitter: [24, 48] } }), /augment.scaleJitter/);
  assert.throws(() => makeConfig({ model: { inputSize: 32 }, augment: { scaleJitter: [48, 40] } }), /augment.scaleJitter/);
  assert.throws(() => makeConfig({ model: { inputSize: 32 }, augment: { scaleJitter: 40 as unknown as [number, number] } }), /augment.scaleJitter/);
  const dir = tmpDir(t, 'colorpipe-config-');
  writeFileSync(join(dir, 'bad.json'), '{ not json');
  assert.throws(() => loadConfig(join(dir, 'bad.json')), (e: unknown) => e instanceof InvalidOptionError && /bad\.json/.test(e.message));
});

test('command-line overrides: --size moves the crop and resize too; the input is not changed', () => {
  const base = loadConfig('configs/tiny.json');
  const c = applyOverrides(base, { size: 64, batch: 4, lr: 0.01, steps: 7, seed: 3, checkpointEvery: 2, width: 0.25 });
  assert.deepEqual([c.model.inputSize, c.augment.crop, c.augment.resize], [64, 64, 73]);
  assert.deepEqual([c.train.batch, c.train.lr, c.train.steps, c.train.seed, c.train.checkpointEvery, c.model.width], [4, 0.01, 7, 3, 2, 0.25]);
  assert.equal(base.model.inputSize, 32);
  const jit = applyOverrides(makeConfig({ model: { inputSize: 64 }, augment: { resize: 80, scaleJitter: [64, 100] } }), { size: 32 });
  assert.deepEqual([jit.augment.crop, jit.augment.scaleJitter], [32, [32, 50]], '--size scales the jitter range too');
});

test('config files: an unknown key is refused with the nearest valid name; sections must be objects; _comments pass', (t) => {
  const dir = tmpDir(t, 'colorpipe-config-');
  const load = (json: unknown) => {
    const f = join(dir, 'c.json');
    writeFileSync(f, JSON.stringify(json));
    return () => loadConfig(f);
  };
  assert.throws(load({ train: { batchsize: 8 } }), /Unknown key train.batchsize in the config .*c\.json: did you mean train.batch\?/);
  assert.throws(load({ trian: { batch: 8 } }), /Unknown key trian .*did you mean train\?/);
  assert.throws(load({ model: null }), /Expected an object for model in .*c\.json but received null/);
  assert.throws(load([1, 2]), /Expected a JSON object for the config .*c\.json/);
  assert.equal(load({ _note: 'ok', train: { _why: 'ok', batch: 4 } })().train.batch, 4);
});

test('resumeConflicts lists what a resumed run was asked to change, steps aside', () => {
  const saved = loadConfig('configs/tiny.json');
  assert.deepEqual(resumeConflicts(saved, applyOverrides(saved, { steps: 99 })), []);
  assert.deepEqual(resumeConflicts(saved, applyOverrides(saved, { width: 0.25, lr: 0.01 })), ['model.width: 0.125 -> 0.25', 'train.lr: 0.002 -> 0.01']);
});
