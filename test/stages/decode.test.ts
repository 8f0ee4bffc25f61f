import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { decode, decodeSample, decodeSettings, decodeTrainLab, augmentation, multiFrameNote } from '../../src/stages/decode.js';
import { pipeline, collect } from '../../src/core/pipeline.js';
import { Reporter, InvalidOptionError } from '../../src/core/errors.js';
import type { DecodedImage, Sample } from '../../src/types.js';
import { Rng } from '../../src/core/rng.js';
import { alphaPng, animatedGif, animatedWebp, badInputs, cmykJpeg, colourfulRgb, greyPng, jpeg, multiPageTiff, png, png16, rotatedJpeg } from '../helpers/images.js';

const sample = (key: string, image: Buffer | undefined, extra: Partial<Sample> = {}): Sample => ({ key, url: 'test.tar', image, fields: {}, ...extra });
const quiet = () => new Reporter({ log: null });
const infer = decodeSettings({ mode: 'infer' });

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

test('infer: a JPEG decodes to its size in 8-bit RGB', async () => {
  const img = await decodeSample(sample('a', await jpeg(40, 30)), infer);
  assert.equal(img.width, 40);
  assert.equal(img.height, 30);
  assert.equal(img.rgb.length, 40 * 30 * 3);
  assert.ok(meanAbsDiff(img.rgb, colourfulRgb(40, 30)) < 4);
  assert.equal(img.alpha, undefined);
});

test('infer: a PNG with alpha keeps the alpha apart', async () => {
  const img = await decodeSample(sample('a', await alphaPng(32, 8)), infer);
  assert.equal(img.rgb.length, 32 * 8 * 3);
  assert.ok(img.alpha);
  assert.equal(img.alpha.length, 32 * 8);
  assert.equal(img.alpha[0], 0);
  assert.equal(img.alpha[5], 20);
  assert.equal(meanAbsDiff(img.rgb, colourfulRgb(32, 8)), 0);
});

test('EXIF orientation is applied: width and height swap', async () => {
  const buf = await rotatedJpeg(40, 24);
  const img = await decodeSample(sample('r', buf), infer);
  assert.equal(img.width, 24);
  assert.equal(img.height, 40);
  // Orientation 6: the stored top-left pixel is displayed at the top-right.
  const stored = colourfulRgb(40, 24);
  const x = img.width - 1;
  for (let c = 0; c < 3; c++) assert.ok(Math.abs(img.rgb[x * 3 + c]! - stored[c]!) < 12);
  const train = await decodeSample(sample('r', buf), decodeSettings({ mode: 'train', resize: 24, crop: 16 }));
  assert.equal(train.rgb.length, 16 * 16 * 3);
});

test('16-bit PNG and CMYK JPEG come out as 8-bit sRGB; grayscale as three equal channels', async () => {
  const want = colourfulRgb(32, 24);
  const p16 = await decodeSample(sample('p', await png16(32, 24)), infer);
  assert.equal(p16.rgb.length, 32 * 24 * 3);
  assert.ok(meanAbsDiff(p16.rgb, want) < 1, 'png16');
  const cmyk = await decodeSample(sample('c', await cmykJpeg(32, 24)), infer);
  assert.equal(cmyk.rgb.length, 32 * 24 * 3);
  // Through sharp's CMYK profile and back: close, not exact (CMYK bytes read as RGB would differ by ~100).
  assert.ok(meanAbsDiff(cmyk.rgb, want) < 24, `cmyk ${meanAbsDiff(cmyk.rgb, want)}`);
  const grey = await decodeSample(sample('g', await greyPng(16, 8)), infer);
  assert.equal(grey.rgb.length, 16 * 8 * 3);
  for (let i = 0; i < 16 * 8; i++) {
    assert.equal(grey.rgb[3 * i], grey.rgb[3 * i + 1]);
    assert.equal(grey.rgb[3 * i], grey.rgb[3 * i + 2]);
  }
});

test('train: crop size, and the crop is the augmentation window of the scaled image', async () => {
  const buf = await png(64, 48);
  const s = decodeSettings({ mode: 'train', resize: 32, crop: 24, seed: 5 });
  let flipped = 0;
  let plain = 0;
  for (let k = 0; k < 12 && (flipped === 0 || plain === 0); k++) {
    const key = `k${k}`;
    const img = await decodeSample(sample(key, buf), s);
    assert.equal(img.width, 24);
    assert.equal(img.height, 24);
    assert.equal(img.rgb.length, 24 * 24 * 3);
    const aug = augmentation(64, 48, key, 0, s);
    assert.deepEqual([aug.width, aug.height], [43, 32]);
    const ref = await sharp(buf).resize(aug.width, aug.height, { fit: 'fill' })
      .extract({ left: aug.left, top: aug.top, width: 24, height: 24 }).raw().toBuffer();
    if (aug.flip) {
      flipped++;
      for (let y = 0; y < 24; y++) {
        for (let x = 0; x < 24; x++) {
          for (let c = 0; c < 3; c++) assert.equal(img.rgb[(y * 24 + x) * 3 + c], ref[(y * 24 + 23 - x) * 3 + c]);
        }
      }
    } else {
      plain++;
      assert.deepEqual(Buffer.from(img.rgb), ref);
    }
  }
  assert.ok(flipped > 0 && plain > 0);
});

test('train: same seed, epoch and key give identical bytes; another epoch another crop', async () => {
  const buf = await jpeg(80, 60);
  const s = decodeSettings({ mode: 'train', resize: 40, crop: 24, seed: 11 });
  const at = (epoch: number, key = 'x') =>
    decodeSample(sample(key, buf, { position: { epoch, shardIndex: 0, shard: 's.tar', sample: 0 } }), s);
  const a = await at(0);
  const b = await at(0);
  assert.deepEqual(a.rgb, b.rgb);
  const others = await Promise.all([1, 2, 3, 4].map((e) => at(e)));
  assert.ok(others.some((o) => meanAbsDiff(o.rgb, a.rgb) > 0), 'some other epoch crops differently');
  // Another seed also changes the draws.
  const t = decodeSettings({ mode: 'train', resize: 40, crop: 24, seed: 12 });
  const windows = (st: typeof s) => [0, 1, 2, 3].map((e) => JSON.stringify(augmentation(80, 60, 'x', e, st)));
  assert.notDeepEqual(windows(s), windows(t));
});

test('train: no scaleJitter is the fixed resize, draw for draw; scaleJitter draws the short side in [min, max]', async () => {
  const fixed = decodeSettings({ mode: 'train', resize: 40, crop: 24, seed: 3 });
  assert.equal(fixed.scaleJitter, null);
  // Without jitter: exactly the paper's augmentation as before (one stream: left, top, then the flip).
  for (const [key, epoch] of [['a', 0], ['b', 1], ['c', 7]] as const) {
    const rng = new Rng(3).fork(epoch, key);
    const left = rng.int(53 - 24 + 1);
    const top = rng.int(40 - 24 + 1);
    const flip = rng.next() < 0.5;
    assert.deepEqual(augmentation(80, 60, key, epoch, fixed), { width: 53, height: 40, left, top, flip });
    assert.deepEqual(augmentation(80, 60, key, epoch, decodeSettings({ mode: 'train', resize: 40, crop: 24, seed: 3, scaleJitter: null })),
      augmentation(80, 60, key, epoch, fixed));
  }
  // With jitter: the short side is an integer in [min, max], a pure function of (seed, epoch, key).
  const jit = decodeSettings({ mode: 'train', resize: 40, crop: 24, seed: 3, scaleJitter: [24, 50] });
  const shorts = new Set<number>();
  for (let e = 0; e < 40; e++) {
    const a = augmentation(80, 60, `k${e % 5}`, e, jit);
    assert.deepEqual(augmentation(80, 60, `k${e % 5}`, e, jit), a);
    assert.ok(a.height >= 24 && a.height <= 50, `short side ${a.height}`);
    assert.equal(a.width, Math.max(24, Math.round((80 * a.height) / 60)));
    assert.ok(a.left + 24 <= a.width && a.top + 24 <= a.height);
    shorts.add(a.height);
  }
  assert.ok(shorts.size > 10, 'the scale varies over samples and epochs');
  // A range of one value is that scale, with the crop and flip of the fixed resize.
  const one = decodeSettings({ mode: 'train', resize: 32, crop: 24, seed: 3, scaleJitter: [40, 40] });
  assert.deepEqual(augmentation(80, 60, 'a', 0, one), augmentation(80, 60, 'a', 0, fixed));
  // The decoded crop is the window of the jittered scale.
  const buf = await png(64, 48);
  const s = decodeSettings({ mode: 'train', resize: 32, crop: 24, seed: 5, flip: false, scaleJitter: [24, 44] });
  const img = await decodeSample(sample('j', buf), s);
  const aug = augmentation(64, 48, 'j', 0, s);
  const ref = await sharp(buf).resize(aug.width, aug.height, { fit: 'fill' })
    .extract({ left: aug.left, top: aug.top, width: 24, height: 24 }).raw().toBuffer();
  assert.deepEqual(Buffer.from(img.rgb), ref);
});

// resize 40 of a 64x48 JPEG: no shrink-on-load, under which libjpeg's reduced-size decode may not notice the
// corrupt entropy data at all (seen with libvips 8.18; documented in decode.ts).
test('every bad input is reported and the stream goes on, in order', async () => {
  const good = await jpeg(40, 30);
  const bad = await badInputs();
  const inputs: Sample[] = [sample('good0', good)];
  for (const [name, buf] of Object.entries(bad)) inputs.push(sample(name, buf), sample(`after-${name}`, good));
  inputs.push(sample('noimage', undefined));
  inputs.push(sample('big', await jpeg(200, 100)));
  inputs.push(sample('last', good));
  const reporter = quiet();
  const out = await collect(pipeline(inputs, decode({ mode: 'train', resize: 40, crop: 16, minSide: 8, limitInputPixels: 10_000, concurrency: 3 }), { reporter }));
  assert.deepEqual(out.map((o) => o.key), ['good0', ...Object.keys(bad).map((n) => `after-${n}`), 'last']);
  const reported = new Map(reporter.records.map((r) => [r.key.split('#')[1], r]));
  for (const name of [...Object.keys(bad), 'noimage', 'big']) {
    const r = reported.get(name);
    assert.ok(r, `${name} reported`);
    assert.equal(r.stage, 'decode');
    assert.ok(r.reason.length > 0);
  }
  assert.match(reported.get('tiny')!.reason, /too small/);
  assert.match(reported.get('big')!.reason, /pixel/);
  assert.match(reported.get('empty')!.reason, /empty/);
  // libvips keeps one error buffer for all threads: under concurrency a reason can come out generic
  // ('Warning treated as error due to failOn setting') instead of libjpeg's own words.
  assert.match(reported.get('truncated')!.reason, /premature|truncat|failOn/i);
  assert.equal(reporter.counts.get('decode'), Object.keys(bad).length + 2);
});

test("infer mode tolerates libjpeg warnings by default; failOn 'warning' rejects them", async () => {
  const { corrupt } = await badInputs();
  const img = await decodeSample(sample('c', corrupt), infer);
  assert.equal(img.width, 64);
  await assert.rejects(decodeSample(sample('c', corrupt), decodeSettings({ mode: 'infer', failOn: 'warning' })), /c/);
});

test("onError 'fail' makes the first bad input fatal", async () => {
  const inputs = [sample('ok', await jpeg(20, 20)), sample('bad', Buffer.from('nope'))];
  await assert.rejects(collect(pipeline(inputs, decode({ mode: 'infer' }), { reporter: new Reporter({ onError: 'fail', log: null }) })), /bad/);
});

test('keeps input order with many images in flight, and an early break returns the source', async () => {
  const bufs = await Promise.all(Array.from({ length: 12 }, (_, i) => png(16 + i * 3, 16, i)));
  let returned = false;
  let pulled = 0;
  async function* source() {
    try {
      for (let i = 0; i < bufs.length; i++) {
        pulled++;
        yield sample(`s${i}`, bufs[i]);
      }
    } finally {
      returned = true;
    }
  }
  const all = await collect(pipeline(source(), decode({ mode: 'infer', concurrency: 5 })));
  assert.deepEqual(all.map((d) => d.width), bufs.map((_, i) => 16 + i * 3));
  returned = false;
  pulled = 0;
  const got: DecodedImage[] = [];
  for await (const d of pipeline(source(), decode({ mode: 'infer', concurrency: 4 }))) {
    got.push(d);
    if (got.length === 2) break;
  }
  assert.ok(returned, 'source returned');
  assert.ok(pulled <= 2 + 4 + 1, `pulled ${pulled}: bounded by the concurrency`);
});

test('options are validated when the factory is called', () => {
  assert.throws(() => decode({ mode: 'nope' as 'train' }), InvalidOptionError);
  assert.throws(() => decode({ mode: 'train', crop: 0 }), /Expected positive integer for options.crop but received 0/);
  assert.throws(() => decode({ mode: 'train', resize: 100, crop: 200 }), InvalidOptionError);
  assert.throws(() => decode({ mode: 'infer', concurrency: 1.5 }), InvalidOptionError);
  assert.throws(() => decode({ mode: 'train', resize: 40, crop: 32, scaleJitter: [24, 48] }), /options.scaleJitter/);
  assert.throws(() => decode({ mode: 'train', resize: 40, crop: 32, scaleJitter: [48, 40] }), /options.scaleJitter/);
  assert.throws(() => decode({ mode: 'train', resize: 40, crop: 32, scaleJitter: [40.5, 48] as [number, number] }), /options.scaleJitter/);
  assert.throws(() => decode({ mode: 'train', resize: 40, crop: 32, scaleJitter: [40] as unknown as [number, number] }), /options.scaleJitter/);
});

test('multiFrameNote: says which frame is used for each multi-frame format, null for one frame', () => {
  assert.equal(multiFrameNote({ format: 'gif', pages: 12 }), 'animated GIF with 12 frames: only the first is used');
  assert.equal(multiFrameNote({ format: 'webp', pages: 3 }), 'animated WebP with 3 frames: only the first is used');
  assert.equal(multiFrameNote({ format: 'tiff', pages: 2 }), 'multi-page TIFF with 2 pages: only the first is used');
  assert.equal(multiFrameNote({ format: 'heif', pages: 4 }), 'HEIF with 4 images: only the primary image is used');
  assert.equal(multiFrameNote({ format: 'gif', pages: 1 }), null);
  assert.equal(multiFrameNote({ format: 'png' }), null);
});

test('animated GIF and WebP, multi-page TIFF: the first frame is decoded and noted once per file; one frame, no note', async () => {
  const gif = await animatedGif(24, 20, 12);
  const webp = await animatedWebp(24, 20, 3);
  const tiff = await multiPageTiff(24, 20, 2);
  const still = await animatedGif(24, 20, 1);
  // The header alone tells (sharp's metadata), and the pixels are frame 0's (lossless WebP: exact).
  assert.equal(multiFrameNote(await sharp(gif).metadata()), 'animated GIF with 12 frames: only the first is used');
  const w = await decodeSample(sample('w', webp), infer);
  assert.deepEqual([w.width, w.height, w.note], [24, 20, 'animated WebP with 3 frames: only the first is used']);
  assert.equal(meanAbsDiff(w.rgb, colourfulRgb(24, 20, 0)), 0);
  assert.equal((await decodeSample(sample('s', still), infer)).note, undefined);
  const lab = await decodeTrainLab(sample('t', tiff), decodeSettings({ mode: 'train', resize: 20, crop: 16 }));
  assert.deepEqual([lab.width, lab.note], [16, 'multi-page TIFF with 2 pages: only the first is used']);

  // Two epochs of the same files: every sample comes out, each multi-frame file is noted once, with its name.
  for (const mode of ['infer', 'train'] as const) {
    const lines: string[] = [];
    const reporter = new Reporter({ log: (l) => lines.push(l) });
    const files = [sample('anim', gif), sample('webp', webp), sample('still', still), sample('pages', tiff)];
    const files2 = [sample('anim', gif, { url: '/in/a.gif', relPath: 'a.gif' }), sample('anim', gif, { url: '/in/b.gif', relPath: 'b.gif' })];
    const out = await collect(pipeline([...files, ...files, ...files2, ...files2], decode({ mode, resize: 20, crop: 16, concurrency: 3 }), { reporter }));
    assert.deepEqual(out.map((o) => o.key), ['anim', 'webp', 'still', 'pages', 'anim', 'webp', 'still', 'pages', 'anim', 'anim', 'anim', 'anim'], mode);
    assert.equal(reporter.total, 0);
    assert.deepEqual(lines, [
      'colorpipe: note: test.tar#anim (decode): animated GIF with 12 frames: only the first is used',
      'colorpipe: note: test.tar#webp (decode): animated WebP with 3 frames: only the first is used',
      'colorpipe: note: test.tar#pages (decode): multi-page TIFF with 2 pages: only the first is used',
      'colorpipe: note: /in/a.gif (decode): animated GIF with 12 frames: only the first is used',
      'colorpipe: note: /in/b.gif (decode): animated GIF with 12 frames: only the first is used',
    ], mode);
    assert.deepEqual(reporter.notices.map((n) => n.stage), ['decode', 'decode', 'decode', 'decode', 'decode']);
  }
});
