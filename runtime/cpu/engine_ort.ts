/**
 * onnxruntime-web's WebAssembly backend with threads as an engine (measured here: 30 GFLOP/s on
 * a 1024³ product with 2 threads, about 0.13 ms per call): three small dynamic-shape sessions
 * built from ONNX graphs written here.
 *
 * @module
 */
import * as ort from "onnxruntime-web";
import { GraphBuilder, productGraph } from "../onnx/graph.ts";
import {
  compactHeads,
  type Engine,
  owned,
  preparedOnce,
  productKernels,
  rangeAttentionByProducts,
} from "./engine.ts";

/** A session of a graph written with {@link GraphBuilder} on the wasm execution provider. */
function session(g: GraphBuilder): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(g.model("moa-engine"), { executionProviders: ["wasm"] });
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
    // q (T, NKV, G, HS), k and v (NKV, 1, S, HS), mask (T, S) additive, scale (1)
    const attend = new GraphBuilder("OrtEngine");
    attend.input("q", ["T", "NKV", "G", "HS"]);
    attend.input("k", ["NKV", 1, "S", "HS"]);
    attend.input("v", ["NKV", 1, "S", "HS"]);
    attend.input("mask", ["T", "S"]);
    attend.input("scale", [1]);
    attend.op("Transpose", ["q"], "qh", { perm: [1, 2, 0, 3] }); // (NKV, G, T, HS)
    attend.op("Transpose", ["k"], "kt", { perm: [0, 1, 3, 2] }); // (NKV, 1, HS, S)
    attend.op("MatMul", ["qh", "kt"], "s"); // (NKV, G, T, S)
    attend.op("Mul", ["s", "scale"], "ss");
    attend.op("Add", ["ss", "mask"], "sm");
    attend.op("Softmax", ["sm"], "p", { axis: -1 });
    attend.op("MatMul", ["p", "v"], "o"); // (NKV, G, T, HS)
    attend.op("Transpose", ["o"], "y", { perm: [2, 0, 1, 3] }); // (T, NKV, G, HS)
    attend.output("y");
    const [l, p, a] = await Promise.all([
      session(productGraph("OrtEngine", true)),
      session(productGraph("OrtEngine", false)),
      session(attend),
    ]);
    return new OrtEngine(threads, l, p, a);
  }

  /** out = x · wᵀ (Gemm with transB). */
  readonly matmulT: Engine["matmulT"] = (out, x, w, M, K, N) =>
    runInto(this.linear, { a: tensor(x, [M, K]), b: tensor(w, [N, K]) }, out);

  /** out = a · b (MatMul). */
  readonly matmul: Engine["matmul"] = (out, a, b, M, K, N) =>
    runInto(this.product, { a: tensor(a, [M, K]), b: tensor(b, [K, N]) }, out);

  /** Causal attention in one session: scores, an additive causal mask, softmax, values. */
  readonly attention: Engine["attention"] = (out, q, kCache, vCache, d) => {
    const { T, S, NH, NKV, HS, first, cap = S } = d;
    const k = cap === S ? kCache : compactHeads(kCache, NKV, cap, S, HS);
    const v = cap === S ? vCache : compactHeads(vCache, NKV, cap, S, HS);
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

  /** The layers from this engine's products, q/k/v and gate/up fused (a call costs 0.13 ms). */
  /** Range attention from this engine's products ({@link rangeAttentionByProducts}). */
  readonly rangeAttention: Engine["rangeAttention"] = (out, q, k, v, ranges, acc, d) =>
    rangeAttentionByProducts(this, out, q, k, v, ranges, acc, d);

  readonly prepare: Engine["prepare"] = preparedOnce((m) => productKernels(this, m, true));
}

/** The first values of `a` that fill `dims`, as an onnxruntime tensor. */
function tensor(a: Float32Array, dims: number[]): ort.Tensor {
  return new ort.Tensor("float32", owned(a, dims.reduce((p, n) => p * n, 1)), dims);
}
