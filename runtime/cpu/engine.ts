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
 * The engines live one per file: `engine_ts.ts`, `engine_ort.ts`, `engine_jax.ts` and
 * `engine_auto.ts` (which also picks the fastest one here, `fastEngine`).
 *
 * @module
 */
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

/** The first n elements as a Float32Array over a plain ArrayBuffer (what the libraries accept). */
export function owned(a: Float32Array, n: number): Float32Array<ArrayBuffer> {
  return a.subarray(0, n) as Float32Array<ArrayBuffer>;
}
