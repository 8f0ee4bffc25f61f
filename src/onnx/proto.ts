/**
 * The ONNX protobuf side of the export: small builders for the messages the graph needs (tensors, nodes,
 * attributes, value infos) and the encoder/decoder. The messages are onnx.proto compiled with protobufjs,
 * as published by the `onnx-proto` package (ONNX 1.10's schema: every field colorpipe writes has been stable
 * since IR version 7); nothing here writes protobuf bytes by hand.
 */
import onnxProto from 'onnx-proto';
import { invalidOption } from '../core/validate.js';

export const onnx = onnxProto.onnx;
export type ModelMessage = onnxProto.onnx.IModelProto;
export type GraphMessage = onnxProto.onnx.IGraphProto;
export type NodeMessage = onnxProto.onnx.INodeProto;
export type TensorMessage = onnxProto.onnx.ITensorProto;
export type ValueInfoMessage = onnxProto.onnx.IValueInfoProto;
export type AttributeMessage = onnxProto.onnx.IAttributeProto;

const DT = onnx.TensorProto.DataType;
const AT = onnx.AttributeProto.AttributeType;

/** Opsets the exporter writes (13: Reshape/Resize/Gemm in their current form; 21: the newest ORT 1.30 and onnx 1.16 know well). */
export const MIN_OPSET = 13;
export const MAX_OPSET = 21;
export const DEFAULT_OPSET = 17;

/**
 * The IR version that goes with a default-domain opset (onnx/docs/Versioning.md: opset 13-14 came with IR 7,
 * 15-18 with IR 8, 19-20 with IR 9, 21 with IR 10). A runtime refuses a model whose IR version it does not
 * know, so the export writes the oldest one its opset allows.
 */
export function irVersionFor(opset: number): number {
  if (!Number.isInteger(opset) || opset < MIN_OPSET || opset > MAX_OPSET) {
    throw invalidOption('options.opset', `integer in [${MIN_OPSET}, ${MAX_OPSET}]`, opset);
  }
  if (opset <= 14) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

/** A float32 initializer (raw little-endian bytes, the compact form). `data` is copied. */
export function floatTensor(name: string, dims: number[], data: Float32Array | number[]): TensorMessage {
  const f = data instanceof Float32Array ? data : Float32Array.from(data);
  const size = dims.reduce((a, b) => a * b, 1);
  if (f.length !== size) throw new Error(`onnx export: ${name} has ${f.length} values for dims [${dims.join(', ')}]`);
  return { name, dims, dataType: DT.FLOAT, rawData: bytesLE(f) };
}

/** An int64 initializer (shapes, axes, pads given as data). */
export function int64Tensor(name: string, dims: number[], data: number[]): TensorMessage {
  return { name, dims, dataType: DT.INT64, rawData: bytesLE(BigInt64Array.from(data.map((v) => BigInt(v)))) };
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The bytes of a typed array in little-endian order (what raw_data stores), on any host. */
function bytesLE(a: Float32Array | BigInt64Array): Uint8Array {
  // A copy, so the message never aliases a weight buffer the caller may reuse.
  if (LITTLE_ENDIAN) return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
  const out = new Uint8Array(a.byteLength);
  const view = new DataView(out.buffer);
  if (a instanceof Float32Array) a.forEach((v, i) => view.setFloat32(4 * i, v, true));
  else a.forEach((v, i) => view.setBigInt64(8 * i, v, true));
  return out;
}

export type AttrValue = number | string | number[] | { floats: number[] };

/** Integers become INT/INTS, other numbers FLOAT, strings STRING, `{ floats }` FLOATS. */
export function attribute(name: string, v: AttrValue): AttributeMessage {
  if (typeof v === 'string') return { name, type: AT.STRING, s: new TextEncoder().encode(v) };
  if (typeof v === 'number') return Number.isInteger(v) ? { name, type: AT.INT, i: v } : { name, type: AT.FLOAT, f: v };
  if (Array.isArray(v)) return { name, type: AT.INTS, ints: v };
  return { name, type: AT.FLOATS, floats: v.floats };
}

export function node(opType: string, inputs: string[], outputs: string[], name: string, attrs: Record<string, AttrValue> = {}): NodeMessage {
  return { opType, input: inputs, output: outputs, name, attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)) };
}

/** A float tensor's value info; a string dimension is symbolic (dim_param), a number fixed (dim_value). */
export function floatValueInfo(name: string, dims: (number | string)[], docString?: string): ValueInfoMessage {
  return {
    name,
    ...(docString ? { docString } : {}),
    type: {
      tensorType: {
        elemType: DT.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** Encodes a model to the bytes of a .onnx file. Verifies the message against the schema first. */
export function encodeModel(model: ModelMessage): Uint8Array {
  const err = onnx.ModelProto.verify(model);
  if (err) throw new Error(`onnx export: invalid ModelProto: ${err}`);
  return onnx.ModelProto.encode(model).finish();
}

/** Decodes .onnx bytes (a whole file) to a ModelProto. Throws on malformed protobuf. */
export function decodeModel(bytes: Uint8Array): onnxProto.onnx.ModelProto {
  return onnx.ModelProto.decode(bytes);
}
