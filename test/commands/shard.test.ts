/** `pipe shard` then a read-back of those shards with the shards stage returns every image with its class. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIXTURES, tempDir } from '../helpers/tar.js';
import { shards } from '../../src/stages/shards.js';
import { listImageFiles } from '../../src/stages/files.js';
import { pipeline, collect } from '../../src/core/pipeline.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

test('pipe shard writes shards that read back with every image and its class', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const r = spawnSync(process.execPath, [CLI, 'shard', '--in', join(FIXTURES, 'images'), '--out', dir, '--maxcount', '10', '--quiet'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const classes = JSON.parse(readFileSync(join(dir, 'classes.json'), 'utf8')) as Record<string, number>;
    const inputs = await listImageFiles(join(FIXTURES, 'images'));
    const got = await collect(pipeline(shards({ urls: join(dir, 'data-*.tar') })));
    assert.equal(got.length, inputs.length);
    for (const s of got) {
      const meta = s.meta as { path: string };
      const cls = meta.path.split('/')[0]!;
      assert.equal(s.cls, classes[cls], `${s.key} has the class of its folder`);
      const src = inputs.find((f) => f.relPath === meta.path)!;
      assert.ok(readFileSync(src.abs).equals(s.image!), 'original bytes');
    }
    const bad = spawnSync(process.execPath, [CLI, 'shard', '--in', join(FIXTURES, 'bad'), '--out', join(dir, 'bad'), '--labels', 'none'], { encoding: 'utf8' });
    assert.equal(bad.status, 0);
    assert.match(bad.stderr, /skipped .*corrupt/);
  } finally {
    cleanup();
  }
});
