import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { colorpipeVersion } from '../../src/core/version.js';

test("colorpipeVersion is package.json's version (what --version prints and the ONNX metadata records)", () => {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
  assert.equal(colorpipeVersion(), pkg.version);
});
