/**
 * A growing list of ONNX nodes and initializers: what the inference graph (graph.ts) and the training graph
 * (train-graph.ts) write with. Initializers are kept once per name; constants (int64 vectors, float scalars)
 * are made once per value.
 */
import { floatTensor, int64Tensor, node, type AttrValue, type NodeMessage, type TensorMessage } from './proto.js';

export class Nodes {
  readonly nodes: NodeMessage[] = [];
  readonly inits: TensorMessage[] = [];
  private readonly have = new Set<string>();
  private count = 0;

  /** Adds an initializer unless one of that name exists; returns its name. */
  init(t: TensorMessage): string {
    if (!this.have.has(t.name!)) {
      this.have.add(t.name!);
      this.inits.push(t);
    }
    return t.name!;
  }

  has(name: string): boolean {
    return this.have.has(name);
  }

  /** A node with one output named `output`. */
  add(op: string, inputs: string[], output: string, attrs: Record<string, AttrValue> = {}): string {
    this.nodes.push(node(op, inputs, [output], output, attrs));
    return output;
  }

  /** A node whose output gets a fresh name (`<hint>:<n>`). */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, hint = op): string {
    return this.add(op, inputs, `${hint}:${++this.count}`, attrs);
  }

  /**
   * Gives the output `from` of a node of this list the name `to`, in every node that reads it. False (nothing
   * changed) when no node here computes `from` (a graph input, an initializer).
   */
  rename(from: string, to: string): boolean {
    const producer = this.nodes.find((n) => n.output?.includes(from));
    if (!producer) return false;
    for (const n of this.nodes) {
      if (n.output) n.output = n.output.map((o) => (o === from ? to : o));
      if (n.input) n.input = n.input.map((i) => (i === from ? to : i));
    }
    return true;
  }

  /** An int64 vector constant (shapes, axes, pads, slice bounds). */
  ints(values: number[]): string {
    return this.init(int64Tensor(`i64[${values.join(',')}]`, [values.length], values));
  }

  /** A float32 scalar constant. */
  scalar(v: number): string {
    return this.init(floatTensor(`f32(${v})`, [], [v]));
  }

  /** A float32 vector constant. */
  floats(values: number[]): string {
    return this.init(floatTensor(`f32[${values.join(',')}]`, [values.length], values));
  }
}
