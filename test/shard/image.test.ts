import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isNearGray, memberExtFor } from '../../src/shard/image.js';

test('isNearGray: gray, tinted and colourful pixels', () => {
  const px = (rgb: number[][]) => Uint8Array.from(rgb.flat());
  assert.equal(isNearGray(px([[10, 10, 10], [200, 201, 199]]), 3), true);
  assert.equal(isNearGray(px([[120, 100, 80], [130, 110, 90]]), 3), false);
  assert.equal(isNearGray(px([[255, 0, 0, 255]]), 4), false);
  assert.equal(isNearGray(px([[5, 5]]), 2), true);
});

test('memberExtFor: the extension names the format, the source only picks between tif and tiff', () => {
  assert.equal(memberExtFor('jpeg', undefined, 'jpeg'), 'jpg');
  assert.equal(memberExtFor('png', undefined, 'jpg'), 'png');
  assert.equal(memberExtFor('tiff', undefined, 'tiff'), 'tiff');
  assert.equal(memberExtFor('tiff', undefined, 'png'), 'tif');
  assert.equal(memberExtFor('heif', 'av1', 'png'), 'avif');
  assert.equal(memberExtFor('heif', 'hevc', 'heic'), null);
  assert.equal(memberExtFor('svg', undefined, 'png'), null);
});
