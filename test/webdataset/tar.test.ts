import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitMemberName, pickImageExt } from '../../src/webdataset/tar.js';

test('member names split like webdataset: key up to the first dot of the basename, lower-case extension', () => {
  assert.deepEqual(splitMemberName('a/x.seg.png'), { key: 'a/x', ext: 'seg.png' });
  assert.deepEqual(splitMemberName('x.JPG'), { key: 'x', ext: 'jpg' });
  assert.deepEqual(splitMemberName('./x.jpg'), { key: 'x', ext: 'jpg' });
  assert.deepEqual(splitMemberName('a.b/c/000017.cls'), { key: 'a.b/c/000017', ext: 'cls' });
  assert.equal(splitMemberName('__key__.txt'), null);
  assert.equal(splitMemberName('a/.hidden.jpg'), null);
  assert.equal(splitMemberName('README'), null);
  assert.equal(splitMemberName('dir/'), null);
  assert.equal(pickImageExt(['seg.png', 'jpg', 'cls']), 'jpg');
  assert.equal(pickImageExt(['cls', 'seg.png']), 'seg.png');
  assert.equal(pickImageExt(['cls', 'json', 'txt']), undefined);
});
