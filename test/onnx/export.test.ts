/** The exported file parses back with the same protobuf package: metadata, symbolic dims, folded BN, TF pads. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setupTfjs } from '../../src/tfjs/backend.js';
import { disposeColorizer, exportSourceOf } from '../../src/tfjs/network.js';
import { META, colorpipeVersion, exportOnnx, writeOnnx } from '../../src/onnx/export.js';
import { decodeModel, irVersionFor, type GraphMessage, type NodeMessage } from '../../src/onnx/proto.js';
import { loadOnnxColorizer } from '../../src/onnx/session.js';
import { InvalidOptionError } from '../../src/core/errors.js';
import { trainedLike, pattern } from './helpers.js';
import { tmpDir } from '../helpers/tar.js';

type Dim = { dimValue?: number | { toNumber(): number } | null; dimParam?: string | null };
const dims = (d: Dim[]) => d.map((x) => (x.dimParam ? x.dimParam : Number(x.dimValue)));
const nodes = (g: GraphMessage): NodeMessage[] => g.node ?? [];
/** A Conv node's pads attribute. */
const padsOf = (g: GraphMessage, name: string) => nodes(g).find((n) => n.name === name)!.attribute!.find((a) => a.name === 'pads')!.ints!.map(Number);

test('round trip: the file decodes with its metadata, opset, symbolic dims and no batch-norm node', async (t) => {
  await setupTfjs({ backend: 'cpu' });
  const c = trainedLike({ inputSize: 32, width: 0.125, numClasses: 4 });
  t.after(() => disposeColorizer(c));
  const dir = tmpDir(t, 'onnx-export-');
  const file = join(dir, 'sub', 'model.onnx');
  const bytes = await writeOnnx(await exportSourceOf(c), file, { trainingScale: { shortSide: 40, crop: 32 }, metadata: { 'user.note': 'hello' } });
  assert.deepEqual(readdirSync(join(dir, 'sub')), ['model.onnx'], 'no temp file left');
  const m = decodeModel(readFileSync(file));
  assert.equal(readFileSync(file).byteLength, bytes);
  assert.equal(Number(m.irVersion), 8);
  assert.deepEqual(m.opsetImport.map((o) => [o.domain, Number(o.version)]), [['', 17]]);
  assert.equal(m.producerName, 'colorpipe');
  const meta = Object.fromEntries(m.metadataProps.map((p) => [p.key, p.value]));
  assert.equal(meta[META.version], colorpipeVersion());
  assert.match(colorpipeVersion(), /^\d+\.\d+\.\d+/);
  assert.equal(meta[META.inputSize], '32');
  assert.equal(meta[META.numClasses], '4');
  assert.deepEqual(JSON.parse(meta[META.config]!), { inputSize: 32, width: 0.125, numClasses: 4 });
  assert.match(meta[META.normL]!, /L \/ 100/);
  assert.match(meta[META.normAb]!, /\(ab \+ 128\) \/ 255/);
  assert.match(meta[META.abScale]!, /H\/2, W\/2/);
  assert.equal(meta[META.trainingScale], '{"shortSide":40,"crop":32}');
  assert.equal(meta['user.note'], 'hello');

  const g: GraphMessage = m.graph!;
  const io = (vs: GraphMessage['input']) => Object.fromEntries((vs ?? []).map((v) => [v.name, dims(v.type!.tensorType!.shape!.dim! as Dim[])]));
  assert.deepEqual(io(g.input), { L_local: ['N', 1, 'H', 'W'], L_global: ['G', 1, 32, 32] });
  assert.deepEqual(io(g.output), { ab: ['N', 2, 'H_half', 'W_half'], logits: ['G', 4] });
  const ops = new Set(nodes(g).map((n) => n.opType));
  assert.ok(!ops.has('BatchNormalization'), 'BN folded');
  for (const op of ['Conv', 'Relu', 'Gemm', 'Flatten', 'Resize', 'Sigmoid']) assert.ok(ops.has(op), op);
  // Every initializer is float32 or int64 raw data; the weights were read once (no duplicates).
  const names = (g.initializer ?? []).map((t) => t.name);
  assert.equal(new Set(names).size, names.length);
  // TF 'same' pads: the local path's stride-2 convs pad [0, 0, 1, 1]; stride 1 pads 1; the global path at
  // 32 -> 4 -> 2 -> 1 sees even sizes too.
  const pads = (name: string) => padsOf(g, name);
  assert.deepEqual(pads('local/ll_conv1'), [0, 0, 1, 1]);
  assert.deepEqual(pads('local/ll_conv2'), [1, 1, 1, 1]);
  assert.deepEqual(pads('global/ll_conv5'), [0, 0, 1, 1]);
  assert.deepEqual(pads('gl_conv3'), [0, 0, 1, 1]);
});

test('odd global sizes get TF pads for their size; other opsets load in ONNX Runtime; bad options refused', async (t) => {
  await setupTfjs({ backend: 'cpu' });
  const c = trainedLike({ inputSize: 40, width: 0.125, numClasses: 0 });
  t.after(() => disposeColorizer(c));
  const g: GraphMessage = decodeModel(exportOnnx(await exportSourceOf(c))).graph!;
  const pads = (name: string) => padsOf(g, name);
  // 40 -> 20 -> 10 -> 5: gl_conv1 sees 5 (pads 1, 1), gl_conv3 sees 3 (pads 1, 1).
  assert.deepEqual(pads('gl_conv1'), [1, 1, 1, 1]);
  assert.deepEqual(pads('gl_conv3'), [1, 1, 1, 1]);
  assert.ok(!(g.output ?? []).some((o) => o.name === 'logits'), 'no class head, no logits');
  for (const opset of [13, 21]) {
    const bytes = exportOnnx(await exportSourceOf(c), { opset, fusion: 'concat' });
    assert.equal(Number(decodeModel(bytes).irVersion), irVersionFor(opset));
    const m = await loadOnnxColorizer(bytes, { device: 'cpu', threads: 1 });
    t.after(() => m.release());
    const r = await m.predict({ local: pattern(16 * 16, 1), global: pattern(40 * 40, 2), batch: 1, height: 16, width: 16 });
    assert.equal(r.ab.length, 8 * 8 * 2);
  }
  const source = await exportSourceOf(c);
  assert.throws(() => exportOnnx(source, { opset: 12 }), (e: unknown) => e instanceof InvalidOptionError && /options\.opset/.test(e.message));
  assert.throws(() => exportOnnx(source, { fusion: 'tile' as 'split' }), /options\.fusion/);
});
