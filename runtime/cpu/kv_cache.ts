/**
 * Key/value caches for the CPU backend. A cache owns the attention state of one sequence and
 * computes attention for new queries against it, so that a sparse method (MoA, StreamingLLM,
 * H2O) is a new cache class beside this one rather than a flag threaded through the forward.
 *
 * @module
 */
import type { ModelConfig } from "../model.ts";
import type { Gemm } from "./gemm.ts";
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
    gemm: Gemm,
  ): void;
  /** Marks the T tokens passed to every layer's `attend` as committed. */
  commit(T: number): void;
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

  attend(
    layer: number,
    out: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    T: number,
    gemm: Gemm,
  ): void {
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
    const G = NH / NKV; // query heads per kv head
    const scale = 1 / Math.sqrt(HS);
    for (let t0 = 0; t0 < T; t0 += QUERY_BLOCK) {
      const tb = Math.min(QUERY_BLOCK, T - t0);
      const S = P + t0 + tb; // keys any query of this block may see
      const rows = G * tb;
      const qg = new Float32Array(rows * HS);
      const scores = new Float32Array(rows * S);
      const o = new Float32Array(rows * HS);
      for (let g = 0; g < NKV; g++) {
        // gather the group's queries: row r = i*tb + t for query head g*G + i
        for (let i = 0; i < G; i++) {
          const h = g * G + i;
          for (let t = 0; t < tb; t++) {
            const src = ((t0 + t) * NH + h) * HS;
            const dst = (i * tb + t) * HS;
            for (let d = 0; d < HS; d++) qg[dst + d] = q[src + d]! * scale;
          }
        }
        const Kg = K.subarray(g * cap * HS, (g * cap + S) * HS);
        const Vg = V.subarray(g * cap * HS, (g * cap + S) * HS);
        gemm.matmulT(scores, qg, Kg, rows, HS, S);
        for (let i = 0; i < G; i++) {
          for (let t = 0; t < tb; t++) {
            const r = i * tb + t;
            const visible = P + t0 + t + 1;
            scores.fill(0, r * S + visible, (r + 1) * S);
            softmaxRow(scores, r * S, visible);
          }
        }
        gemm.matmul(o, scores, Vg, rows, S, HS);
        for (let i = 0; i < G; i++) {
          const h = g * G + i;
          for (let t = 0; t < tb; t++) {
            const src = (i * tb + t) * HS;
            out.set(o.subarray(src, src + HS), ((t0 + t) * NH + h) * HS);
          }
        }
      }
    }
  }

  commit(T: number): void {
    this.#length += T;
  }
}
