/**
 * The heavy operations of the CPU backend — matrix products and causal attention — behind one
 * small interface, so that the engine is chosen by measurement (`deno task bench cpu` prints
 * them side by side):
 *
 * - `TsEngine`: plain TypeScript; no start-up or per-call cost, best for decoding's tiny products.
 * - `OrtEngine`: onnxruntime-web's WebAssembly backend with threads (measured here: 30 GFLOP/s on
 *   a 1024³ product with 2 threads, about 0.13 ms per call); the default for large work.
 * - `JaxEngine`: `@jax-js/jax` on WebAssembly (30–40 GFLOP/s on 1024³ but about 1 ms per call,
 *   and its attention measured 5× slower than onnxruntime's); kept for comparison.
 * - `AutoEngine`: sends each call to the engine that is faster for its size.
 *
 * All methods are async because onnxruntime-web's `run()` is.
 *
 * @module
 */
import { init as jaxInit, numpy as np } from "@jax-js/jax";
import type { Array as JaxArray } from "@jax-js/jax";
import * as ort from "onnxruntime-web";
import onnxProto from "onnx-proto";
import { softmaxRow } from "./ops.ts";

/** Sizes of one `Engine.attention` call. */
export interface AttentionDims {
  /** New queries. */
  T: number;
  /** Keys (positions 0 .. S−1). */
  S: number;
  /** Query heads. */
  NH: number;
  /** Key/value heads; NH is a multiple of it. */
  NKV: number;
  /** Head size. */
  HS: number;
  /** Position of the first query; first + T ≤ S. */
  first: number;
}

/** One compute engine. All arrays are row-major float32. */
export interface Engine {
  /** Engine name, as reported in benchmark output and CSV. */
  readonly name: string;
  /**
   * out (M, N) = x (M, K) · wᵀ, where w is (N, K): a linear layer with Hugging Face weights.
   * `constant` marks w as unchanging (a weight), so an engine may keep its own copy of it.
   */
  matmulT(
    out: Float32Array,
    x: Float32Array,
    w: Float32Array,
    M: number,
    K: number,
    N: number,
    constant?: boolean,
  ): Promise<void>;
  /** out (M, N) = a (M, K) · b (K, N). */
  matmul(
    out: Float32Array,
    a: Float32Array,
    b: Float32Array,
    M: number,
    K: number,
    N: number,
  ): Promise<void>;
  /**
   * Causal grouped-query attention of T queries at positions first .. first+T−1 over keys at
   * positions 0 .. S−1: query t sees keys j ≤ first + t; query head h reads kv head
   * floor(h / (NH/NKV)); the softmax is scaled by 1/sqrt(HS).
   * @param out (T, NH, HS)
   * @param q (T, NH, HS)
   * @param k (NKV, S, HS), head-major
   * @param v (NKV, S, HS), head-major
   */
  attention(
    out: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    dims: AttentionDims,
  ): Promise<void>;
}

/**
 * `Engine.attention` from an engine's two products plus a softmax in TypeScript: per kv head,
 * the group's queries form one (G·T, HS) matrix.
 */
export async function attentionByProducts(
  e: Engine,
  out: Float32Array,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  { T, S, NH, NKV, HS, first }: AttentionDims,
): Promise<void> {
  const G = NH / NKV;
  const rows = G * T;
  const scale = 1 / Math.sqrt(HS);
  const qg = new Float32Array(rows * HS);
  const scores = new Float32Array(rows * S);
  const o = new Float32Array(rows * HS);
  for (let g = 0; g < NKV; g++) {
    // row i*T + t holds query head g*G + i at step t
    for (let i = 0; i < G; i++) {
      for (let t = 0; t < T; t++) {
        const src = (t * NH + g * G + i) * HS;
        const dst = (i * T + t) * HS;
        for (let d = 0; d < HS; d++) qg[dst + d] = q[src + d]! * scale;
      }
    }
    await e.matmulT(scores, qg, k.subarray(g * S * HS, (g + 1) * S * HS), rows, HS, S);
    for (let i = 0; i < G; i++) {
      for (let t = 0; t < T; t++) {
        const r = i * T + t;
        const visible = first + t + 1;
        scores.fill(0, r * S + visible, (r + 1) * S);
        softmaxRow(scores, r * S, visible);
      }
    }
    await e.matmul(o, scores, v.subarray(g * S * HS, (g + 1) * S * HS), rows, S, HS);
    for (let i = 0; i < G; i++) {
      for (let t = 0; t < T; t++) {
        const src = (i * T + t) * HS;
        out.set(o.subarray(src, src + HS), (t * NH + g * G + i) * HS);
      }
    }
  }
}

/** Plain TypeScript kernels: dot products over contiguous rows, four outputs at a time. */
export class TsEngine implements Engine {
  readonly name = "ts";

  matmulT(
    out: Float32Array,
    x: Float32Array,
    w: Float32Array,
    M: number,
    K: number,
    N: number,
  ): Promise<void> {
    matmulTSync(out, x, w, M, K, N);
    return Promise.resolve();
  }

  matmul(
    out: Float32Array,
    a: Float32Array,
    b: Float32Array,
    M: number,
    K: number,
    N: number,
  ): Promise<void> {
    out.fill(0, 0, M * N);
    for (let m = 0; m < M; m++) {
      const oo = m * N;
      for (let k = 0; k < K; k++) {
        const av = a[m * K + k]!;
        if (av === 0) continue;
        const bo = k * N;
        for (let n = 0; n < N; n++) out[oo + n]! += av * b[bo + n]!;
      }
    }
    return Promise.resolve();
  }

  attention(
    out: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    d: AttentionDims,
  ): Promise<void> {
    return attentionByProducts(this, out, q, k, v, d);
  }
}

/** out (M, N) = x (M, K) · wᵀ in plain TypeScript, four dot products at a time. */
export function matmulTSync(
  out: Float32Array,
  x: Float32Array,
  w: Float32Array,
  M: number,
  K: number,
  N: number,
): void {
  for (let m = 0; m < M; m++) {
    const xo = m * K;
    const oo = m * N;
    let n = 0;
    for (; n + 4 <= N; n += 4) {
      const w0 = n * K, w1 = w0 + K, w2 = w1 + K, w3 = w2 + K;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < K; k++) {
        const xv = x[xo + k]!;
        s0 += xv * w[w0 + k]!;
        s1 += xv * w[w1 + k]!;
        s2 += xv * w[w2 + k]!;
        s3 += xv * w[w3 + k]!;
      }
      out[oo + n] = s0;
      out[oo + n + 1] = s1;
      out[oo + n + 2] = s2;
      out[oo + n + 3] = s3;
    }
    for (; n < N; n++) {
      const wo = n * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += x[xo + k]! * w[wo + k]!;
      out[oo + n] = s;
    }
  }
}

/** The first n elements as a Float32Array over a plain ArrayBuffer (what the libraries accept). */
function owned(a: Float32Array, n: number): Float32Array<ArrayBuffer> {
  return a.subarray(0, n) as Float32Array<ArrayBuffer>;
}

// ---------------------------------------------------------------------------------------------
// onnxruntime-web

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

  async matmulT(
    out: Float32Array,
    x: Float32Array,
    w: Float32Array,
    M: number,
    K: number,
    N: number,
  ) {
    await runInto(this.linear, {
      x: new ort.Tensor("float32", owned(x, M * K), [M, K]),
      w: new ort.Tensor("float32", owned(w, N * K), [N, K]),
    }, out);
  }

  async matmul(
    out: Float32Array,
    a: Float32Array,
    b: Float32Array,
    M: number,
    K: number,
    N: number,
  ) {
    await runInto(this.product, {
      a: new ort.Tensor("float32", owned(a, M * K), [M, K]),
      b: new ort.Tensor("float32", owned(b, K * N), [K, N]),
    }, out);
  }

  async attention(
    out: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    d: AttentionDims,
  ) {
    const { T, S, NH, NKV, HS, first } = d;
    const mask = new Float32Array(T * S);
    for (let t = 0; t < T; t++) {
      mask.fill(-Infinity, t * S + Math.min(S, first + t + 1), (t + 1) * S);
    }
    await runInto(this.attend, {
      q: new ort.Tensor("float32", owned(q, T * NH * HS), [T, NKV, NH / NKV, HS]),
      k: new ort.Tensor("float32", owned(k, NKV * S * HS), [NKV, 1, S, HS]),
      v: new ort.Tensor("float32", owned(v, NKV * S * HS), [NKV, 1, S, HS]),
      mask: new ort.Tensor("float32", mask as Float32Array<ArrayBuffer>, [T, S]),
      scale: new ort.Tensor("float32", new Float32Array([1 / Math.sqrt(HS)]), [1]),
    }, out);
  }
}

// ---------------------------------------------------------------------------------------------
// @jax-js/jax

/**
 * `@jax-js/jax` on WebAssembly. Weights marked constant are transposed and uploaded once and
 * kept for the lifetime of the Float32Array that holds them.
 */
export class JaxEngine implements Engine {
  readonly name = "jax-wasm";
  #weights = new WeakMap<Float32Array, JaxArray>();

  private constructor() {}

  /** Initialises the WebAssembly backend; throws when it is unavailable. */
  static async create(): Promise<JaxEngine> {
    const devices = await jaxInit("wasm");
    if (!devices.includes("wasm")) {
      throw new Error(`@jax-js/jax has no wasm backend here (found: ${devices.join(", ")})`);
    }
    return new JaxEngine();
  }

  matmulT(
    out: Float32Array,
    x: Float32Array,
    w: Float32Array,
    M: number,
    K: number,
    N: number,
    constant = false,
  ): Promise<void> {
    let wt: JaxArray;
    if (constant) {
      let cached = this.#weights.get(w);
      if (cached === undefined) {
        cached = np.array(transpose(w, N, K), { shape: [K, N], device: "wasm" });
        this.#weights.set(w, cached);
      }
      wt = cached.ref;
    } else {
      wt = np.array(owned(w, N * K), { shape: [N, K], device: "wasm" }).transpose();
    }
    const xa = np.array(owned(x, M * K), { shape: [M, K], device: "wasm" });
    out.set(np.matmul(xa, wt).dataSync() as Float32Array);
    return Promise.resolve();
  }

  matmul(
    out: Float32Array,
    a: Float32Array,
    b: Float32Array,
    M: number,
    K: number,
    N: number,
  ): Promise<void> {
    const aa = np.array(owned(a, M * K), { shape: [M, K], device: "wasm" });
    const bb = np.array(owned(b, K * N), { shape: [K, N], device: "wasm" });
    out.set(np.matmul(aa, bb).dataSync() as Float32Array);
    return Promise.resolve();
  }

  attention(
    out: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    d: AttentionDims,
  ): Promise<void> {
    return attentionByProducts(this, out, q, k, v, d);
  }
}

/** (R, C) → (C, R) */
function transpose(a: Float32Array, R: number, C: number): Float32Array<ArrayBuffer> {
  const t = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) t[c * R + r] = a[r * C + c]!;
  return t;
}

// ---------------------------------------------------------------------------------------------
// choosing

/**
 * Sends calls of at least `threshold` multiply-adds to the fast engine and the rest to plain
 * TypeScript. The default threshold (2^17) is where the two cost the same on the 2-core
 * development machines: onnxruntime pays about 0.13 ms per call, TypeScript runs about
 * 1.5 GFLOP/s.
 */
export class AutoEngine implements Engine {
  readonly name: string;
  /**
   * Routes each call by its size.
   * @param small the engine for calls below `threshold` multiply-adds
   * @param large the engine for the others
   * @param threshold multiply-adds at which `large` takes over
   */
  constructor(readonly small: Engine, readonly large: Engine, readonly threshold = 1 << 17) {
    this.name = `${large.name}+${small.name}`;
  }

  matmulT(
    out: Float32Array,
    x: Float32Array,
    w: Float32Array,
    M: number,
    K: number,
    N: number,
    constant = false,
  ): Promise<void> {
    return (M * K * N >= this.threshold ? this.large : this.small).matmulT(
      out,
      x,
      w,
      M,
      K,
      N,
      constant,
    );
  }

  matmul(
    out: Float32Array,
    a: Float32Array,
    b: Float32Array,
    M: number,
    K: number,
    N: number,
  ): Promise<void> {
    return (M * K * N >= this.threshold ? this.large : this.small).matmul(out, a, b, M, K, N);
  }

  attention(
    out: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    d: AttentionDims,
  ): Promise<void> {
    return (d.T * d.NH * d.S * d.HS >= this.threshold ? this.large : this.small).attention(
      out,
      q,
      k,
      v,
      d,
    );
  }
}

/** The plain TypeScript engine (shared; it holds no state). */
export const tsEngine: Engine = new TsEngine();

let fastest: Promise<Engine> | null = null;

/**
 * The fastest engine available here: onnxruntime-web for large work with TypeScript for small
 * calls, or TypeScript alone when onnxruntime-web cannot start.
 */
export function fastEngine(): Promise<Engine> {
  fastest ??= OrtEngine.create().then(
    (o) => new AutoEngine(tsEngine, o) as Engine,
    () => tsEngine,
  );
  return fastest;
}
