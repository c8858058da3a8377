/**
 * A small builder of ONNX graphs (`onnx-proto` messages): named inputs and outputs with
 * symbolic or fixed dimensions, nodes of any domain with several outputs, float32 initializers
 * and small constants. Used by the model export (`export.ts`) and by the CPU engines that run
 * graphs written here (`runtime/cpu/engine_ort.ts`, `runtime/cpu/engine_native.ts`).
 *
 * @module
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
type TensorProto = InstanceType<typeof onnx.TensorProto>;
type NodeProto = InstanceType<typeof onnx.NodeProto>;
type ValueInfoProto = InstanceType<typeof onnx.ValueInfoProto>;

/** Element types the builder writes. */
export const ELEM = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int32: onnx.TensorProto.DataType.INT32,
  int64: onnx.TensorProto.DataType.INT64,
} as const;

/** An element type name. */
export type ElemType = keyof typeof ELEM;

/** A dimension: a fixed size or a symbolic name. */
export type Dim = number | string;

/** An attribute value: an integer, a list of integers, or a float as `{ f: x }`. */
export type AttrValue = number | number[] | { f: number };

/** Protobuf messages cannot exceed 2 GiB; larger graphs would need ONNX external data. */
export const MAX_PROTO_BYTES = 2 ** 31 - 1;

/** A value's name, element type and dimensions (null: unknown shape). */
export function valueInfo(name: string, elem: ElemType, dims: Dim[] | null): ValueInfoProto {
  const shape = dims === null ? {} : {
    shape: {
      dim: dims.map((d) => (typeof d === "string" ? { dimParam: d } : { dimValue: d })),
    },
  };
  return onnx.ValueInfoProto.create({
    name,
    type: { tensorType: { elemType: ELEM[elem], ...shape } },
  });
}

/** Builds one graph; {@link GraphBuilder.model} serialises it. */
export class GraphBuilder {
  #nodes: NodeProto[] = [];
  #initializers: TensorProto[] = [];
  #inputs: ValueInfoProto[] = [];
  #outputs: ValueInfoProto[] = [];
  #names = new Set<string>();
  #constants = new Map<string, string>();
  #count = 0;
  #bytes = 0;

  /**
   * @param what names the graph in error messages (say, "exportOnnx")
   */
  constructor(readonly what: string) {}

  /** Declares a graph input. */
  input(name: string, dims: Dim[], elem: ElemType = "float32"): string {
    this.#claim(name);
    this.#inputs.push(valueInfo(name, elem, dims));
    return name;
  }

  /** Declares a graph output (a value some node produces). */
  output(name: string, dims: Dim[] | null = null, elem: ElemType = "float32"): void {
    this.#outputs.push(valueInfo(name, elem, dims));
  }

  /**
   * Appends a node and returns its first output's name (`outputs`, or a fresh name made from the
   * op type). An empty input name is an omitted optional input.
   */
  op(
    opType: string,
    inputs: string[],
    outputs?: string | string[],
    attrs: Record<string, AttrValue> = {},
    domain = "",
  ): string {
    const outs = outputs === undefined
      ? [`${opType.toLowerCase()}_${this.#count++}`]
      : typeof outputs === "string"
      ? [outputs]
      : outputs;
    for (const o of outs) if (o !== "") this.#claim(o);
    const T = onnx.AttributeProto.AttributeType;
    const attribute = Object.entries(attrs).map(([name, v]) =>
      typeof v === "number"
        ? { name, type: T.INT, i: v }
        : Array.isArray(v)
        ? { name, type: T.INTS, ints: v }
        : { name, type: T.FLOAT, f: v.f }
    );
    const first = outs[0]!;
    this.#nodes.push(
      onnx.NodeProto.create({
        opType,
        domain,
        input: inputs,
        output: outs,
        name: first,
        attribute,
      }),
    );
    return first;
  }

  /** A float32 initializer holding `data` with shape `dims`. */
  weight(name: string, data: Float32Array, dims: number[]): string {
    if (data.length !== dims.reduce((a, b) => a * b, 1)) {
      throw new RangeError(
        `${this.what}: ${name} has ${data.length} values, expected shape (${dims.join(", ")})`,
      );
    }
    this.#claim(name);
    this.#bytes += data.byteLength;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.#initializers.push(
      onnx.TensorProto.create({ name, dataType: ELEM.float32, dims, rawData: bytes }),
    );
    return name;
  }

  /** A small float32 constant; equal constants are shared under their first name. */
  floats(name: string, dims: number[], values: number[]): string {
    return this.#constant(name, "float32", dims, values);
  }

  /** A small int64 constant; equal constants are shared under their first name. */
  int64s(name: string, dims: number[], values: number[]): string {
    return this.#constant(name, "int64", dims, values);
  }

  /** The graph message. */
  graph(name: string): InstanceType<typeof onnx.GraphProto> {
    return onnx.GraphProto.create({
      name,
      node: this.#nodes,
      initializer: this.#initializers,
      input: this.#inputs,
      output: this.#outputs,
    });
  }

  /**
   * The serialised model: this graph with the standard opset `opset` and, when `contrib`, the
   * `com.microsoft` domain (onnxruntime's contrib ops).
   * @throws {RangeError} when the initializers exceed the 2 GiB protobuf limit
   */
  model(name: string, opset = 17, contrib = false): Uint8Array {
    if (this.#bytes > MAX_PROTO_BYTES) {
      throw new RangeError(
        `${this.what}: the weights take ${this.#bytes} bytes, over the 2 GiB protobuf limit ` +
          `(external data is not supported)`,
      );
    }
    const proto = onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [
        { domain: "", version: opset },
        ...(contrib ? [{ domain: "com.microsoft", version: 1 }] : []),
      ],
      producerName: "moa",
      graph: this.graph(name),
    });
    return onnx.ModelProto.encode(proto).finish();
  }

  #constant(name: string, elem: ElemType, dims: number[], values: number[]): string {
    const key = `${elem}|${dims.join(",")}|${values.join(",")}`;
    const existing = this.#constants.get(key);
    if (existing !== undefined) return existing;
    this.#claim(name);
    const raw = elem === "int64"
      ? new BigInt64Array(values.map((v) => BigInt(v)))
      : new Float32Array(values);
    this.#initializers.push(
      onnx.TensorProto.create({
        name,
        dataType: ELEM[elem],
        dims,
        rawData: new Uint8Array(raw.buffer),
      }),
    );
    this.#constants.set(key, name);
    return name;
  }

  #claim(name: string): void {
    if (this.#names.has(name)) throw new Error(`${this.what}: duplicate value name ${name}`);
    this.#names.add(name);
  }
}

/**
 * The graph of one product with both operands as inputs: y (M, N) = a (M, K) · b with b (K, N)
 * (MatMul), or a · bᵀ with b (N, K) when `transposed` (Gemm with transB).
 */
export function productGraph(what: string, transposed: boolean): GraphBuilder {
  const g = new GraphBuilder(what);
  g.input("a", ["M", "K"]);
  g.input("b", transposed ? ["N", "K"] : ["K", "N"]);
  if (transposed) g.op("Gemm", ["a", "b"], "y", { transB: 1 });
  else g.op("MatMul", ["a", "b"], "y");
  g.output("y");
  return g;
}

/** (rows, cols) row-major → (cols, rows) row-major: a linear layer's weight as MatMul's operand. */
export function transposed(a: Float32Array, rows: number, cols: number): Float32Array {
  if (a.length !== rows * cols) {
    throw new RangeError(
      `transposed: expected a (${rows}, ${cols}) matrix, got ${a.length} values`,
    );
  }
  const out = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  }
  return out;
}
