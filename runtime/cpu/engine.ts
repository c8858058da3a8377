/**
 * The heavy operations of the CPU backend — matrix products and causal attention — behind one
 * small interface, so that the engine is chosen by measurement (`deno task bench cpu` prints
 * them side by side):
 *
 * - `NativeEngine`: onnxruntime-node, the native CPU library through Node-API (AVX-512 where
 *   the CPU has it); the default wherever its binary loads. It runs each layer's linear blocks as
 *   one session with the weights inside (fused QKV and gate/up, RMSNorm, RoPE, SwiGLU), and
 *   prefill attention as grouped-query attention over the cache's own buffers.
 * - `TsEngine`: plain TypeScript; no start-up or per-call cost, best for decoding's tiny products.
 * - `OrtEngine`: onnxruntime-web's WebAssembly backend with threads (measured here: 30 GFLOP/s on
 *   a 1024³ product with 2 threads, about 0.13 ms per call); the portable fallback for large work
 *   (browsers, machines without the native binary).
 * - `JaxEngine`: `@jax-js/jax` on WebAssembly (30–40 GFLOP/s on 1024³ but about 1 ms per call,
 *   and its attention measured 5× slower than onnxruntime's); kept for comparison.
 * - `AutoEngine`: sends each call to the engine that is faster for its size.
 *
 * Besides products and attention, an engine prepares a model's linear blocks once
 * ({@link Engine.prepare}, {@link LayerKernels}); the WebAssembly engines build them from their
 * products ({@link productKernels}). Decode attention does not go through the engine: every KV
 * cache runs it in place with the SIMD kernel of `engine_simd.ts`.
 *
 * All methods are async because onnxruntime-web's `run()` is.
 *
 * The engines live one per file: `engine_native.ts`, `engine_ts.ts`, `engine_ort.ts`,
 * `engine_jax.ts` and `engine_auto.ts` (which also picks the fastest one here, `fastEngine`).
 *
 * @module
 */
import { allFloat32, type Model, type Weight } from "../model.ts";
import { matmulTWeight, type Products } from "./weight_matmul.ts";
import {
  addBias,
  addInPlace,
  applyRope,
  rmsnorm,
  ropeInvFreq,
  siluMul,
  softmaxRow,
} from "./ops.ts";

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
  /**
   * Slots per kv head in k and v (the row stride of a head, in rows of HS); the first S are the
   * keys. @default S
   */
  cap?: number;
}

/**
 * One compute engine. All arrays are row-major float32. Its two matrix products are
 * {@link Products} (weight_matmul.ts): `matmulT` is a linear layer with Hugging Face weights
 * (w is (N, K)), and `constant` marks w as unchanging, so an engine may keep its own copy of it.
 */
export interface Engine extends Products {
  /** Engine name, as reported in benchmark output and CSV. */
  readonly name: string;
  /**
   * Causal grouped-query attention of T queries at positions first .. first+T−1 over keys at
   * positions 0 .. S−1: query t sees keys j ≤ first + t; query head h reads kv head
   * floor(h / (NH/NKV)); the softmax is scaled by 1/sqrt(HS).
   * @param out (T, NH, HS)
   * @param q (T, NH, HS)
   * @param k (NKV, cap, HS), head-major; the keys of the T queries are among the first S
   * @param v (NKV, cap, HS), head-major
   */
  attention(
    out: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    dims: AttentionDims,
  ): Promise<void>;
  /**
   * Attention of one kv head's G query heads at T queries (row i·T + t of q and out: head i at
   * query t) over nk gathered keys, query t seeing the keys whose index lies in
   * [0, a_t) ∪ [b_t, e_t) with ranges = (a, b, e) per query (a ≤ b, or b ≥ e for none); a row
   * with no visible key is zero. Softmax scaled by 1/√HS. The sparse caches' prefill.
   * @param out (G·T, HS)
   * @param q (G·T, HS)
   * @param keys (nk, HS)
   * @param values (nk, HS)
   * @param ranges (T, 3)
   * @param acc when given, acc[c] += the probability key c receives, summed over all rows
   */
  rangeAttention(
    out: Float32Array,
    q: Float32Array,
    keys: Float32Array,
    values: Float32Array,
    ranges: Int32Array,
    acc: Float64Array | null,
    dims: RangeDims,
  ): Promise<void>;
  /**
   * The model's linear blocks on this engine, built once per model (later calls return the same
   * object). An engine may copy the weights (fused, transposed, inside a native session): a
   * model's weights must not change after it is prepared. A model with F16/BF16 matrices
   * (runtime/model.ts) is prepared without copies: its products widen the weights a block of
   * rows at a time (`matmulTWeight`, weight_matmul.ts).
   */
  prepare(model: Model<Weight>): LayerKernels;
  /**
   * True when `prepare`'s layers run a whole block (all its products and ops) as one call, as
   * the native engine's sessions do; absent when they are a sequence of this engine's products.
   * `AutoEngine` routes whole blocks to such an engine and single products to the others.
   */
  readonly blockKernels?: boolean;
}

/** Sizes of one `Engine.rangeAttention` call. */
export interface RangeDims {
  /** Query heads of the kv head. */
  G: number;
  /** Queries. */
  T: number;
  /** Gathered keys. */
  nk: number;
  /** Head size. */
  HS: number;
}

/**
 * The parts of a forward step around attention, for one model on one engine. Rows are tokens of
 * a ragged batch, row-major float32; `x` is the residual stream (T, C).
 */
export interface LayerKernels {
  /**
   * The attention inputs of layer `layer`: h = RMSNorm(x); q, k, v = h·[Wq | Wk | Wv]ᵀ (+ biases);
   * RoPE on q and k at each row's position.
   * @param q (T, NH·HS), written
   * @param k (T, NKV·HS), written
   * @param v (T, NKV·HS), written
   */
  attentionInputs(
    layer: number,
    x: Float32Array,
    positions: Int32Array,
    T: number,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
  ): Promise<void>;
  /**
   * The rest of layer `layer`, in place: x += att·Woᵀ, then x += W_down·(silu(h·W_gateᵀ) ⊙ h·W_upᵀ)
   * with h = RMSNorm(x); then, in the same call, what `next` asks for: the next layer's
   * attention inputs (as {@link LayerKernels.attentionInputs}), or, after the last layer, the
   * logits RMSNorm(x)·lm_headᵀ of some rows (x itself is then left unspecified).
   * @param att (T, NH·HS), the attention output
   */
  attentionOutput(
    layer: number,
    x: Float32Array,
    att: Float32Array,
    T: number,
    next: NextInputs | LogitsOf,
  ): Promise<void>;
}

/** {@link LayerKernels.attentionOutput} continues with the next layer's attention inputs. */
export interface NextInputs {
  /** (T) each row's position, as for `attentionInputs`. */
  positions: Int32Array;
  /** (T, NH·HS), written */
  q: Float32Array;
  /** (T, NKV·HS), written */
  k: Float32Array;
  /** (T, NKV·HS), written */
  v: Float32Array;
}

/** {@link LayerKernels.attentionOutput} ends the step with the logits of some rows. */
export interface LogitsOf {
  /** Row indices into x (R). */
  rows: Int32Array;
  /** (R, V), written */
  logits: Float32Array;
}

/**
 * `Engine.attention` from an engine's two products plus a softmax in TypeScript: per kv head,
 * the group's queries form one (G·T, HS) matrix.
 */
export async function attentionByProducts(
  e: Engine,
  out: Float32Array,
  q: Float32Array,
  kCache: Float32Array,
  vCache: Float32Array,
  { T, S, NH, NKV, HS, first, cap = S }: AttentionDims,
): Promise<void> {
  const k = cap === S ? kCache : compactHeads(kCache, NKV, cap, S, HS);
  const v = cap === S ? vCache : compactHeads(vCache, NKV, cap, S, HS);
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

/**
 * Softmax of row[off .. off+nk) over the entries whose index lies in [0, a) ∪ [b, e), where
 * a ≤ b or the second range is empty; the other entries become 0, and a row with no visible
 * entry becomes all zeros.
 */
export function maskedSoftmax(
  row: Float32Array,
  off: number,
  nk: number,
  a: number,
  b: number,
  e: number,
): void {
  let max = -Infinity;
  for (let c = 0; c < a; c++) max = Math.max(max, row[off + c]!);
  for (let c = b; c < e; c++) max = Math.max(max, row[off + c]!);
  if (max === -Infinity) {
    row.fill(0, off, off + nk);
    return;
  }
  let sum = 0;
  for (let c = 0; c < a; c++) {
    const x = Math.exp(row[off + c]! - max);
    row[off + c] = x;
    sum += x;
  }
  for (let c = b; c < e; c++) {
    const x = Math.exp(row[off + c]! - max);
    row[off + c] = x;
    sum += x;
  }
  const inv = 1 / sum;
  for (let c = 0; c < a; c++) row[off + c]! *= inv;
  for (let c = b; c < e; c++) row[off + c]! *= inv;
  if (e > b) {
    row.fill(0, off + a, off + b);
    row.fill(0, off + e, off + nk);
  } else {
    row.fill(0, off + a, off + nk);
  }
}

/**
 * `Engine.rangeAttention` from an engine's two products, with the masked softmax in TypeScript.
 */
export async function rangeAttentionByProducts(
  e: Engine,
  out: Float32Array,
  q: Float32Array,
  keys: Float32Array,
  values: Float32Array,
  ranges: Int32Array,
  acc: Float64Array | null,
  { G, T, nk, HS }: RangeDims,
): Promise<void> {
  const rows = G * T, scale = 1 / Math.sqrt(HS);
  const qs = new Float32Array(rows * HS);
  for (let i = 0; i < rows * HS; i++) qs[i] = q[i]! * scale;
  const scores = new Float32Array(rows * nk);
  await e.matmulT(scores, qs, keys, rows, HS, nk);
  for (let i = 0; i < G; i++) {
    for (let t = 0; t < T; t++) {
      const off = (i * T + t) * nk;
      const a = ranges[3 * t]!, b = ranges[3 * t + 1]!, end = ranges[3 * t + 2]!;
      maskedSoftmax(scores, off, nk, a, b, end);
      if (acc) {
        for (let c = 0; c < a; c++) acc[c]! += scores[off + c]!;
        for (let c = b; c < end; c++) acc[c]! += scores[off + c]!;
      }
    }
  }
  await e.matmul(out, scores, values, rows, nk, HS);
}

/** (NKV, cap, HS) → the first S slots of each head as a contiguous (NKV, S, HS). */
export function compactHeads(
  a: Float32Array,
  NKV: number,
  cap: number,
  S: number,
  HS: number,
): Float32Array {
  const out = new Float32Array(NKV * S * HS);
  for (let g = 0; g < NKV; g++) out.set(a.subarray(g * cap * HS, (g * cap + S) * HS), g * S * HS);
  return out;
}

/** The weights of one layer with q/k/v and gate/up side by side, as one product each computes. */
interface FusedLayer {
  wqkv: Float32Array;
  bqkv: Float32Array | null;
  wGateUp: Float32Array;
}

/** [a; b; …] stacked by rows: the weight of one product computing all their outputs. */
export function stackRows(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * {@link LayerKernels} from an engine's `matmulT` and the TypeScript ops of ops.ts. With `fuse`,
 * q/k/v and gate/up are one product each over weights stacked once here (worth it where a call
 * costs something, as on onnxruntime-web); without, the model's own arrays are read, so the
 * weights may change between calls (the TypeScript engine).
 */
export function productKernels(e: Engine, model: Model<Weight>, fuse: boolean): LayerKernels {
  const { config, weights } = model;
  const { hiddenSize: C, numHeads: NH, numKvHeads: NKV, headDim: HS } = config;
  const F = config.intermediateSize, V = config.vocabSize, eps = config.rmsNormEps;
  const invFreq = ropeInvFreq(config);
  const QKV = (NH + 2 * NKV) * HS;
  const fused: FusedLayer[] = fuse && allFloat32(model)
    ? model.weights.layers.map((w) => ({
      wqkv: stackRows([w.wq, w.wk, w.wv]),
      bqkv: w.bq && w.bk && w.bv ? stackRows([w.bq, w.bk, w.bv]) : null,
      wGateUp: stackRows([w.wGate, w.wUp]),
    }))
    : [];
  const inputs: LayerKernels["attentionInputs"] = async (l, x, positions, T, q, k, v) => {
    const w = weights.layers[l]!;
    const h = new Float32Array(T * C);
    rmsnorm(h, x, w.inputNorm, T, C, eps);
    const f = fused[l];
    if (f) {
      const qkv = new Float32Array(T * QKV);
      await e.matmulT(qkv, h, f.wqkv, T, C, QKV, true);
      if (f.bqkv) addBias(qkv, f.bqkv, T, QKV);
      splitColumns(qkv, T, [[q, NH * HS], [k, NKV * HS], [v, NKV * HS]]);
    } else {
      await matmulTWeight(e, q, h, w.wq, T, C, NH * HS);
      await matmulTWeight(e, k, h, w.wk, T, C, NKV * HS);
      await matmulTWeight(e, v, h, w.wv, T, C, NKV * HS);
      if (w.bq) addBias(q, w.bq, T, NH * HS);
      if (w.bk) addBias(k, w.bk, T, NKV * HS);
      if (w.bv) addBias(v, w.bv, T, NKV * HS);
    }
    applyRope(q, positions, invFreq, T, NH, HS);
    applyRope(k, positions, invFreq, T, NKV, HS);
  };
  return {
    attentionInputs: inputs,
    async attentionOutput(l, x, att, T, next) {
      const w = weights.layers[l]!;
      const proj = new Float32Array(T * C);
      await matmulTWeight(e, proj, att, w.wo, T, NH * HS, C);
      addInPlace(x, proj, T * C);
      const h = new Float32Array(T * C);
      rmsnorm(h, x, w.postNorm, T, C, eps);
      const gate = new Float32Array(T * F), up = new Float32Array(T * F);
      const f = fused[l];
      if (f) {
        const gu = new Float32Array(T * 2 * F);
        await e.matmulT(gu, h, f.wGateUp, T, C, 2 * F, true);
        splitColumns(gu, T, [[gate, F], [up, F]]);
      } else {
        await matmulTWeight(e, gate, h, w.wGate, T, C, F);
        await matmulTWeight(e, up, h, w.wUp, T, C, F);
      }
      siluMul(gate, gate, up, T * F);
      await matmulTWeight(e, proj, gate, w.wDown, T, F, C);
      addInPlace(x, proj, T * C);
      if ("q" in next) {
        await inputs(l + 1, x, next.positions, T, next.q, next.k, next.v);
        return;
      }
      const R = next.rows.length, hn = new Float32Array(R * C);
      next.rows.forEach((r, i) => hn.set(x.subarray(r * C, (r + 1) * C), i * C));
      rmsnorm(hn, hn, weights.finalNorm, R, C, eps);
      await matmulTWeight(e, next.logits, hn, weights.lmHead, R, C, V);
    },
  };
}

/** Copies the column blocks of a (T, Σ widths) matrix into (T, width) matrices, in order. */
export function splitColumns(
  a: Float32Array,
  T: number,
  parts: [Float32Array, number][],
): void {
  const width = parts.reduce((n, [, w]) => n + w, 0);
  for (let t = 0; t < T; t++) {
    let o = t * width;
    for (const [out, w] of parts) {
      out.set(a.subarray(o, o + w), t * w);
      o += w;
    }
  }
}

/**
 * Memoises {@link Engine.prepare} per model: `build` runs once for each model object.
 */
export function preparedOnce(
  build: (model: Model<Weight>) => LayerKernels,
): (model: Model<Weight>) => LayerKernels {
  const done = new WeakMap<Model<Weight>, LayerKernels>();
  return (model) => {
    let k = done.get(model);
    if (k === undefined) {
      k = build(model);
      done.set(model, k);
    }
    return k;
  };
}

/** An environment variable, or undefined where there is none or no permission to read it. */
export function envFlag(name: string): string | undefined {
  try {
    return globalThis.Deno?.env.get(name);
  } catch {
    return undefined;
  }
}

/** The first n elements as a Float32Array over a plain ArrayBuffer (what the libraries accept). */
export function owned(a: Float32Array, n: number): Float32Array<ArrayBuffer> {
  return a.subarray(0, n) as Float32Array<ArrayBuffer>;
}
