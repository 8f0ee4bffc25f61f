import { test } from 'node:test';
import assert from 'node:assert/strict';
import { axisWindows, checkTile, cutWindow, pasteKept, planTiles, TILE_HALO, DEFAULT_TILE, MIN_TILE } from '../../src/colorize/tiles.js';
import { layerTable, localReach } from '../../src/network/table.js';

test('the halo covers the local path\'s reach (72 pixels for the paper\'s table, at any width) and is a multiple of its stride', () => {
  for (const width of [0.125, 1]) assert.deepEqual(localReach(layerTable({ inputSize: 224, width, numClasses: 0 })), { reach: 72, stride: 8 });
  assert.equal(TILE_HALO, 72);
  assert.ok(DEFAULT_TILE % 8 === 0 && DEFAULT_TILE >= MIN_TILE);
  assert.equal(MIN_TILE, 288);
  assert.equal(checkTile(288, 't'), 288);
  for (const bad of [280, 290, 1.5e3 + 0.5, '1024']) assert.throws(() => checkTile(bad, '--tile'), /at least 288 for --tile/);
});

test('windows along an axis: one size, origins on the grid, kept parts meeting end to end, each a halo from inner edges', () => {
  for (const [n, tile, halo] of [[1000, 160, 72], [6000, 1024, 72], [1032, 1024, 72], [160, 160, 72], [168, 160, 72], [4000, 1024, 72]]) {
    const a = axisWindows(n!, tile!, halo!);
    assert.equal(a.size, Math.min(n!, tile!));
    let kept = 0;
    for (const w of a.windows) {
      assert.equal(w.origin % 8, 0);
      assert.ok(w.origin >= 0 && w.origin + a.size <= n!);
      assert.equal(w.keepFrom, kept, `kept parts meet (${n}, ${tile})`);
      assert.ok(w.keepTo > w.keepFrom);
      if (w.origin > 0) assert.ok(w.keepFrom >= w.origin + halo!, 'a halo from the window\'s start');
      if (w.origin + a.size < n!) assert.ok(w.keepTo <= w.origin + a.size - halo!, 'a halo from the window\'s end');
      kept = w.keepTo;
    }
    assert.equal(kept, n);
  }
  assert.throws(() => axisWindows(1000, 150, 72), RangeError);
  assert.throws(() => axisWindows(1000, 144, 72), /at least 152/);
});

test('planTiles: none when the image has at most tile x tile pixels, so a long thin image stays whole', () => {
  assert.equal(planTiles(1024, 1024, 1024, 72), null);
  assert.equal(planTiles(4096, 256, 1024, 72), null);
  const p = planTiles(6000, 4000, 1024, 72)!;
  assert.equal(p.tileWidth, 1024);
  assert.equal(p.tileHeight, 1024);
  assert.equal(p.tiles.length, axisWindows(6000, 1024, 72).windows.length * axisWindows(4000, 1024, 72).windows.length);
  const thin = planTiles(8000, 600, 1024, 72)!;
  assert.equal(thin.tileHeight, 600);
  assert.ok(thin.tiles.every((t) => t.y.origin === 0 && t.y.keepTo === 600));
});

test('cut then paste of the identity (ab = the window\'s pixels at half size) rebuilds the whole plane', () => {
  const W = 328;
  const H = 232;
  const plane = new Float32Array(W * H).map((_, i) => i);
  const plan = planTiles(W, H, 160, 72)!;
  const ab = new Float32Array((W / 2) * (H / 2) * 2).fill(-1);
  const win = new Float32Array(plan.tileWidth * plan.tileHeight);
  for (const t of plan.tiles) {
    cutWindow(plane, W, t.x.origin, t.y.origin, plan.tileWidth, plan.tileHeight, win, 0);
    // "ab" of the window: at half size, both channels the window's even pixel.
    const half = new Float32Array((plan.tileWidth / 2) * (plan.tileHeight / 2) * 2);
    for (let y = 0; y < plan.tileHeight / 2; y++) {
      for (let x = 0; x < plan.tileWidth / 2; x++) {
        const v = win[2 * y * plan.tileWidth + 2 * x]!;
        half[(y * (plan.tileWidth / 2) + x) * 2] = v;
        half[(y * (plan.tileWidth / 2) + x) * 2 + 1] = -v;
      }
    }
    pasteKept(half, 0, plan.tileWidth, t, ab, W / 2);
  }
  for (let y = 0; y < H / 2; y++) {
    for (let x = 0; x < W / 2; x++) {
      const want = plane[2 * y * W + 2 * x]!;
      assert.equal(ab[(y * (W / 2) + x) * 2], want);
      assert.equal(ab[(y * (W / 2) + x) * 2 + 1], -want);
    }
  }
});
