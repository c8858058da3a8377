/**
 * Key/value caches for the CPU backend. A cache owns the attention state of one sequence and
 * computes attention for new queries against it, so that a sparse method (MoA, StreamingLLM,
 * H2O) is a new cache class beside this one rather than a flag threaded through the forward.
 *
 * @module
 */
import type { ModelConfig } from "../model.ts";
import type { AttentionDims, Engine } from "./engine.ts";
import { KvMemory } from "./engine_simd.ts";

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

/** Up to this many new queries (decoding), attention runs in place over the cache. */
const DIRECT_MAX_QUERIES = 8;

/**
 * Attention of a few queries straight over a head-major (NKV, cap, HS) store, without copying
 * it: the decode path, one {@link KvMemory.attend} call per query and kv head (the SIMD kernel
 * where the store has it).
 *
 * @param out (T, NH, HS)
 * @param q (T, NH, HS)
 * @param store the keys and values; layer `layer` is (NKV, cap, HS)
 * @param dims the queries sit at positions first .. first+T−1 and see keys 0 .. their own
 */
export function attendDirect(
  out: Float32Array,
  q: Float32Array,
  store: KvMemory,
  layer: number,
  cap: number,
  { T, NH, NKV, HS, first }: AttentionDims,
): void {
  const G = NH / NKV;
  const runs = new Int32Array(2);
  for (let t = 0; t < T; t++) {
    for (let g = 0; g < NKV; g++) {
      runs[0] = g * cap;
      runs[1] = first + t + 1;
      const at = (t * NH + g * G) * HS;
      store.attend(layer, out, at, q, at, runs, 1);
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
  #store: KvMemory;
  readonly #layers: number;
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
    this.#layers = config.numLayers;
    this.#cap = Math.max(1, capacity);
    this.#store = this.#memory(this.#cap);
  }

  /** Zeroed K and V arrays of `cap` slots per kv head. */
  #memory(cap: number): KvMemory {
    return new KvMemory({
      layers: this.#layers,
      floats: this.#NKV * cap * this.#HS,
      group: this.#NH / this.#NKV,
      headDim: this.#HS,
      maxKeys: cap,
    });
  }

  get length(): number {
    return this.#length;
  }

  bytes(): number {
    return this.#layers * 2 * this.#NKV * this.#length * this.#HS * 4;
  }

  #reserve(need: number): void {
    if (need <= this.#cap) return;
    let cap = this.#cap;
    while (cap < need) cap *= 2;
    const HS = this.#HS, old = this.#store, grown = this.#memory(cap);
    for (const [from, to] of [[old.k, grown.k], [old.v, grown.v]] as const) {
      for (let l = 0; l < this.#layers; l++) {
        for (let g = 0; g < this.#NKV; g++) {
          to[l]!.set(
            from[l]!.subarray(g * this.#cap * HS, (g * this.#cap + this.#length) * HS),
            g * cap * HS,
          );
        }
      }
    }
    this.#store = grown;
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
    const K = this.#store.k[layer]!, V = this.#store.v[layer]!;
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
      attendDirect(out, q, this.#store, layer, cap, { T, S, NH, NKV, HS, first: P });
      return;
    }
    // prefill in blocks of queries, each over the keys its queries may see, read in place
    for (let t0 = 0; t0 < T; t0 += QUERY_BLOCK) {
      const tb = Math.min(QUERY_BLOCK, T - t0);
      await engine.attention(
        out.subarray(t0 * NH * HS, (t0 + tb) * NH * HS),
        q.subarray(t0 * NH * HS, (t0 + tb) * NH * HS),
        K,
        V,
        { T: tb, S: P + t0 + tb, NH, NKV, HS, first: P + t0, cap },
      );
    }
  }

  commit(T: number): void {
    this.#length += T;
  }
}
