/**
 * Key/value caches for the CPU backend. A cache owns the attention state of one sequence and
 * computes attention for new queries against it, so that a sparse method (MoA, StreamingLLM,
 * H2O) is a new cache class beside this one rather than a flag threaded through the forward.
 *
 * @module
 */
import type { ModelConfig } from "../model.ts";
import type { AttentionDims, Engine } from "./engine.ts";
import { softmaxRow } from "./ops.ts";

/** The attention state of one sequence across all layers. */
export interface KvCache {
  /** Tokens already committed (the position of the next token). */
  readonly length: number;
  /** Bytes of K and V the cache holds now. */
  bytes(): number;
  /**
   * Appends T new keys/values of one layer (after RoPE) and writes the causal attention of the
   * T new queries, which sit at positions length .. length+T−1, into out.
   * @param out (T, NH, HS)
   * @param q (T, NH, HS), after RoPE
   * @param k (T, NKV, HS), after RoPE
   * @param v (T, NKV, HS)
   */
  attend(
    layer: number,
    out: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    T: number,
    engine: Engine,
  ): Promise<void>;
  /** Marks the T tokens passed to every layer's `attend` as committed. */
  commit(T: number): void;
}

/** (NKV, cap, HS) → the first S slots of each head as a contiguous (NKV, S, HS). */
function compact(a: Float32Array, NKV: number, cap: number, S: number, HS: number): Float32Array {
  const out = new Float32Array(NKV * S * HS);
  for (let g = 0; g < NKV; g++) out.set(a.subarray(g * cap * HS, (g * cap + S) * HS), g * S * HS);
  return out;
}

/** Up to this many new queries (decoding), attention runs in place over the cache in TypeScript. */
const DIRECT_MAX_QUERIES = 8;

/**
 * Attention of a few queries straight over a (NKV, cap, HS) cache, without copying it: the
 * decode path, where the work is one pass over the keys and values.
 */
export function attendDirect(
  out: Float32Array,
  q: Float32Array,
  K: Float32Array,
  V: Float32Array,
  cap: number,
  { T, NH, NKV, HS, first }: AttentionDims,
): void {
  const G = NH / NKV;
  const scale = 1 / Math.sqrt(HS);
  const scores = new Float32Array(first + T);
  for (let t = 0; t < T; t++) {
    const n = first + t + 1;
    for (let h = 0; h < NH; h++) {
      const base = Math.floor(h / G) * cap * HS;
      const qo = (t * NH + h) * HS;
      for (let j = 0; j < n; j++) {
        const ko = base + j * HS;
        let s = 0;
        for (let d = 0; d < HS; d++) s += q[qo + d]! * K[ko + d]!;
        scores[j] = s * scale;
      }
      softmaxRow(scores, 0, n);
      out.fill(0, qo, qo + HS);
      for (let j = 0; j < n; j++) {
        const p = scores[j]!;
        const vo = base + j * HS;
        for (let d = 0; d < HS; d++) out[qo + d]! += p * V[vo + d]!;
      }
    }
  }
}

/** Query rows handled per attention block in prefill; bounds the score matrix's memory. */
const QUERY_BLOCK = 512;

/**
 * The full cache: every past key and value of every head. Per layer, K and V are (NKV, cap, HS)
 * so that one head's keys are contiguous; capacity doubles when full.
 */
export class DenseKvCache implements KvCache {
  #length = 0;
  #cap: number;
  readonly #k: Float32Array[];
  readonly #v: Float32Array[];
  readonly #NH: number;
  readonly #NKV: number;
  readonly #HS: number;

  /**
   * An empty cache.
   * @param config the model's shape
   * @param capacity initial token capacity (grows as needed)
   */
  constructor(config: ModelConfig, capacity = 256) {
    this.#NH = config.numHeads;
    this.#NKV = config.numKvHeads;
    this.#HS = config.headDim;
    this.#cap = Math.max(1, capacity);
    const n = this.#NKV * this.#cap * this.#HS;
    this.#k = Array.from({ length: config.numLayers }, () => new Float32Array(n));
    this.#v = Array.from({ length: config.numLayers }, () => new Float32Array(n));
  }

  get length(): number {
    return this.#length;
  }

  bytes(): number {
    return this.#k.length * 2 * this.#NKV * this.#length * this.#HS * 4;
  }

  #reserve(need: number): void {
    if (need <= this.#cap) return;
    let cap = this.#cap;
    while (cap < need) cap *= 2;
    const HS = this.#HS;
    for (const arrays of [this.#k, this.#v]) {
      for (let l = 0; l < arrays.length; l++) {
        const old = arrays[l]!;
        const grown = new Float32Array(this.#NKV * cap * HS);
        for (let g = 0; g < this.#NKV; g++) {
          grown.set(
            old.subarray(g * this.#cap * HS, (g * this.#cap + this.#length) * HS),
            g * cap * HS,
          );
        }
        arrays[l] = grown;
      }
    }
    this.#cap = cap;
  }

  async attend(
    layer: number,
    out: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    T: number,
    engine: Engine,
  ): Promise<void> {
    const NH = this.#NH, NKV = this.#NKV, HS = this.#HS, P = this.#length;
    this.#reserve(P + T);
    const cap = this.#cap;
    const K = this.#k[layer]!, V = this.#v[layer]!;
    for (let t = 0; t < T; t++) {
      for (let g = 0; g < NKV; g++) {
        const src = (t * NKV + g) * HS;
        const dst = (g * cap + P + t) * HS;
        K.set(k.subarray(src, src + HS), dst);
        V.set(v.subarray(src, src + HS), dst);
      }
    }
    const S = P + T;
    if (T <= DIRECT_MAX_QUERIES) {
      attendDirect(out, q, K, V, cap, { T, S, NH, NKV, HS, first: P });
      return;
    }
    // keys/values of this layer as contiguous (NKV, S, HS); copied only when capacity > length
    const keys = cap === S ? K.subarray(0, NKV * S * HS) : compact(K, NKV, cap, S, HS);
    const values = cap === S ? V.subarray(0, NKV * S * HS) : compact(V, NKV, cap, S, HS);
    for (let t0 = 0; t0 < T; t0 += QUERY_BLOCK) {
      const tb = Math.min(QUERY_BLOCK, T - t0);
      const Sb = P + t0 + tb; // keys any query of this block may see
      const kb = Sb === S ? keys : compact(keys, NKV, S, Sb, HS);
      const vb = Sb === S ? values : compact(values, NKV, S, Sb, HS);
      await engine.attention(
        out.subarray(t0 * NH * HS, (t0 + tb) * NH * HS),
        q.subarray(t0 * NH * HS, (t0 + tb) * NH * HS),
        kb,
        vb,
        { T: tb, S: Sb, NH, NKV, HS, first: P + t0 },
      );
    }
  }

  commit(T: number): void {
    this.#length += T;
  }
}
