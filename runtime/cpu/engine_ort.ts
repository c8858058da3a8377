/**
 * onnxruntime-web's WebAssembly backend with threads as an engine (measured here: 30 GFLOP/s on
 * a 1024³ product with 2 threads, about 0.13 ms per call): three small dynamic-shape sessions
 * built from ONNX graphs written here.
 *
 * @module
 */
import * as ort from "onnxruntime-web";
import onnxProto from "onnx-proto";
import { type Engine, owned } from "./engine.ts";

// deno-lint-ignore no-explicit-any
const { onnx } = onnxProto as any;
const F32 = 1;

/** A one-graph ONNX model from nodes; dims are numbers or symbolic names. */
function onnxModel(
  nodes: {
    op: string;
    inputs: string[];
    output: string;
    attrs?: Record<string, number | number[]>;
  }[],
  inputs: [string, (number | string)[]][],
  output: string,
): Uint8Array {
  const vi = (name: string, dims: (number | string)[] | null) =>
    onnx.ValueInfoProto.create({
      name,
      type: {
        tensorType: {
          elemType: F32,
          ...(dims
            ? {
              shape: {
                dim: dims.map((d) => (typeof d === "string" ? { dimParam: d } : { dimValue: d })),
              },
            }
            : {}),
        },
      },
    });
  const attr = (name: string, v: number | number[]) =>
    Array.isArray(v)
      ? onnx.AttributeProto.create({ name, type: 7, ints: v })
      : Number.isInteger(v)
      ? onnx.AttributeProto.create({ name, type: 2, i: v })
      : onnx.AttributeProto.create({ name, type: 1, f: v });
  const graph = onnx.GraphProto.create({
    name: "moa-engine",
    node: nodes.map((n) =>
      onnx.NodeProto.create({
        opType: n.op,
        input: n.inputs,
        output: [n.output],
        attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attr(k, v)),
      })
    ),
    input: inputs.map(([n, d]) => vi(n, d)),
    output: [vi(output, null)],
  });
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: "", version: 17 }], graph }),
  ).finish();
}

/** Runs a one-output session and copies its output `y` into `out`. */
async function runInto(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  out: Float32Array,
): Promise<void> {
  const r = await session.run(feeds);
  out.set(r.y!.data as Float32Array);
}

/** onnxruntime-web on WebAssembly: three small dynamic-shape sessions. */
export class OrtEngine implements Engine {
  readonly name: string;

  private constructor(
    readonly threads: number,
    readonly linear: ort.InferenceSession,
    readonly product: ort.InferenceSession,
    readonly attend: ort.InferenceSession,
  ) {
    this.name = `ort-wasm×${threads}`;
  }

  /**
   * Starts the sessions. The thread count is process-wide in onnxruntime-web and fixed by the
   * first session created.
   * @param threads WebAssembly threads @default min(4, cores)
   */
  static async create(
    threads: number = Math.min(4, navigator.hardwareConcurrency || 1),
  ): Promise<OrtEngine> {
    ort.env.wasm.numThreads = threads;
    ort.env.logLevel = "error";
    const opts: ort.InferenceSession.SessionOptions = { executionProviders: ["wasm"] };
    // y (M, N) = x (M, K) · wᵀ with w (N, K)
    const linear = await ort.InferenceSession.create(
      onnxModel([{ op: "Gemm", inputs: ["x", "w"], output: "y", attrs: { transB: 1 } }], [["x", [
        "M",
        "K",
      ]], ["w", [
        "N",
        "K",
      ]]], "y"),
      opts,
    );
    const product = await ort.InferenceSession.create(
      onnxModel([{ op: "MatMul", inputs: ["a", "b"], output: "y" }], [["a", ["M", "K"]], ["b", [
        "K",
        "N",
      ]]], "y"),
      opts,
    );
    // q (T, NKV, G, HS), k and v (NKV, 1, S, HS), mask (T, S) additive, scale (1)
    const attend = await ort.InferenceSession.create(
      onnxModel(
        [
          { op: "Transpose", inputs: ["q"], output: "qh", attrs: { perm: [1, 2, 0, 3] } }, // (NKV, G, T, HS)
          { op: "Transpose", inputs: ["k"], output: "kt", attrs: { perm: [0, 1, 3, 2] } }, // (NKV, 1, HS, S)
          { op: "MatMul", inputs: ["qh", "kt"], output: "s" }, // (NKV, G, T, S)
          { op: "Mul", inputs: ["s", "scale"], output: "ss" },
          { op: "Add", inputs: ["ss", "mask"], output: "sm" },
          { op: "Softmax", inputs: ["sm"], output: "p", attrs: { axis: -1 } },
          { op: "MatMul", inputs: ["p", "v"], output: "o" }, // (NKV, G, T, HS)
          { op: "Transpose", inputs: ["o"], output: "y", attrs: { perm: [2, 0, 1, 3] } }, // (T, NKV, G, HS)
        ],
        [
          ["q", ["T", "NKV", "G", "HS"]],
          ["k", ["NKV", 1, "S", "HS"]],
          ["v", ["NKV", 1, "S", "HS"]],
          ["mask", [
            "T",
            "S",
          ]],
          ["scale", [1]],
        ],
        "y",
      ),
      opts,
    );
    return new OrtEngine(threads, linear, product, attend);
  }

  /** out = x · wᵀ (Gemm with transB). */
  readonly matmulT: Engine["matmulT"] = (out, x, w, M, K, N) =>
    runInto(this.linear, { x: tensor(x, [M, K]), w: tensor(w, [N, K]) }, out);

  /** out = a · b (MatMul). */
  readonly matmul: Engine["matmul"] = (out, a, b, M, K, N) =>
    runInto(this.product, { a: tensor(a, [M, K]), b: tensor(b, [K, N]) }, out);

  /** Causal attention in one session: scores, an additive causal mask, softmax, values. */
  readonly attention: Engine["attention"] = (out, q, k, v, d) => {
    const { T, S, NH, NKV, HS, first } = d;
    const mask = new Float32Array(T * S);
    for (let t = 0; t < T; t++) {
      mask.fill(-Infinity, t * S + Math.min(S, first + t + 1), (t + 1) * S);
    }
    return runInto(this.attend, {
      q: tensor(q, [T, NKV, NH / NKV, HS]),
      k: tensor(k, [NKV, 1, S, HS]),
      v: tensor(v, [NKV, 1, S, HS]),
      mask: tensor(mask, [T, S]),
      scale: tensor(new Float32Array([1 / Math.sqrt(HS)]), [1]),
    }, out);
  };
}

/** The first values of `a` that fill `dims`, as an onnxruntime tensor. */
function tensor(a: Float32Array, dims: number[]): ort.Tensor {
  return new ort.Tensor("float32", owned(a, dims.reduce((p, n) => p * n, 1)), dims);
}
