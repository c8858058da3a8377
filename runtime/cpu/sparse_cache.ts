/**
 * Sparse key/value caches for the CPU backend: MoA's per-head elastic sink + sliding window
 * (`MoaKvCache`, which also runs StreamingLLM through `streamingRules` in runtime/methods.ts), and the
 * heavy-hitter baseline H2O (`H2oKvCache`). Each is a drop-in `KvCache`: `CpuModel.step` runs
 * them unchanged.
 *
 * MoA's rule for kv head g under the `per-query` span semantics (the default): the query at
 * position i (current length n = i + 1) sees key j ≤ i when j < sink or i − j < S_g(n), with
 * S_g(n) = clamp(α_g + β_g·n, 0, n). Under the `reference` semantics (the MoA reference
 * runtime's, `runtime/spans.ts`) the window is fixed when the cache is created for maxLength
 * tokens and applied in whole blocks in prefill. Query heads that share a kv head (GQA) share its
 * rule.
 *
 * @module
 */
import type { ModelConfig } from "../model.ts";
import type { Engine } from "./engine.ts";
import type { KvCache } from "./kv_cache.ts";
import { KvMemory } from "./engine_simd.ts";
import {
  checkSparsePlan,
  elasticSpan,
  referenceWindowStart,
  ringCapacity,
  slotsUsed,
  type SpanSemantics,
  type SparsePlan,
} from "../spans.ts";

/**
 * Query rows per attention block in prefill, between these bounds: MoA sizes a head's blocks to
 * its window, so a block reads about its own rows plus one window of band keys.
 */
const QUERY_BLOCK_MIN = 64;
const QUERY_BLOCK_MAX = 512;

/**
 * Attention of T queries of one kv head's group over gathered keys, query t seeing the keys
 * whose index lies in [0, a_t) ∪ [b_t, e_t), with ranges = (a, b, e) per query.
 * The engine computes it (`Engine.rangeAttention`). When `acc` is given, the attention
 * probability every key receives (summed over the group's heads and the queries) is added to it.
 *
 * @param out (T, NH, HS), the group's heads written
 * @param q (T, NH, HS)
 * @param keys (nk, HS)
 * @param values (nk, HS)
 * @param ranges (T, 3)
 * @param acc (nk) or null
 */
async function groupAttention(
  engine: Engine,
  out: Float32Array,
  q: Float32Array,
  keys: Float32Array,
  values: Float32Array,
  ranges: Int32Array,
  acc: Float64Array | null,
  g: number,
  G: number,
  NH: number,
  HS: number,
  T: number,
  nk: number,
): Promise<void> {
  const rows = G * T;
  if (nk === 0) {
    for (let t = 0; t < T; t++) out.fill(0, (t * NH + g * G) * HS, (t * NH + g * G + G) * HS);
    return;
  }
  const qg = new Float32Array(rows * HS);
  const o = new Float32Array(rows * HS);
  // row i*T + t holds query head g*G + i at step t
  for (let i = 0; i < G; i++) {
    for (let t = 0; t < T; t++) {
      const src = (t * NH + g * G + i) * HS;
      qg.set(q.subarray(src, src + HS), (i * T + t) * HS);
    }
  }
  await engine.rangeAttention(o, qg, keys, values, ranges, acc, { G, T, nk, HS });
  for (let i = 0; i < G; i++) {
    for (let t = 0; t < T; t++) {
      const src = (i * T + t) * HS;
      out.set(o.subarray(src, src + HS), (t * NH + g * G + i) * HS);
    }
  }
}

function checkInteger(what: string, x: number, min: number): void {
  if (!Number.isInteger(x) || x < min) {
    throw new RangeError(`${what} is ${x}; expected an integer ≥ ${min}`);
  }
}

/**
 * MoA's sparse cache. Per layer one K and one V buffer hold every kv head's segment back to
 * back; kv head g owns sink + window_g slots, window_g = min(⌈S_g(maxLength)⌉, maxLength − sink)
 * (the most its window can need) under the `per-query` semantics, the reference window
 * W_g = C_g(maxLength) − sink under `reference`. Slots 0 .. sink−1 hold the first tokens; the rest
 * is a ring buffer of the most recent tokens (position p at slot sink + (p − sink) mod window_g).
 * Keys are stored after RoPE, so they keep their original positions.
 *
 * `per-query`: attention follows the plan's rule exactly up to `maxLength` tokens; past it the
 * cache keeps working with each window capped at its ring's capacity
 * (i − j < min(S_g(n), window_g)). The result does not depend on how the tokens are split into
 * steps. `reference`: a step of several tokens (prefill) gives each query block the key blocks of
 * its window; a one-token step (decode) sees the last W_g keys (`referenceWindowStart`).
 * Prefill is block-sparse: a block of queries reads the sink keys and the band of keys inside
 * its queries' windows, from the cache and the new keys; only what the rings keep is stored.
 */
export class MoaKvCache implements KvCache {
  #length = 0;
  readonly #NH: number;
  readonly #NKV: number;
  readonly #HS: number;
  readonly #sink: number;
  readonly #spans: SpanSemantics;
  /** Block size of the `reference` semantics (0 under `per-query`). */
  readonly #block: number;
  /** α, β and ring capacity per (layer, kv head), flat L × NKV. */
  readonly #alpha: Float64Array;
  readonly #beta: Float64Array;
  readonly #window: Int32Array;
  /** First slot of each (layer, kv head) segment within its layer's buffers. */
  readonly #start: Int32Array;
  /** Per layer, every kv head's segment back to back, rows of HS. */
  readonly #store: KvMemory;
  /** Scratch for the T = 1 path: the runs of rows a head attends to. */
  readonly #runs = new Int32Array(6);

  /**
   * @param config the model's shape
   * @param plan sink and α, β per (layer, kv head); span semantics and block
   * @param maxLength the longest sequence served with the plan's exact rule; sizes the rings
   *   (under `reference`, the N the reference runtime sizes its cache for: prompt + new tokens)
   */
  constructor(config: ModelConfig, plan: SparsePlan, readonly maxLength: number) {
    const L = config.numLayers, NKV = config.numKvHeads;
    this.#NH = config.numHeads;
    this.#NKV = NKV;
    this.#HS = config.headDim;
    checkInteger("MoaKvCache: maxLength", maxLength, 1);
    checkSparsePlan(plan, "MoaKvCache: plan", { layers: L, kvHeads: NKV });
    this.#sink = plan.sink;
    this.#spans = plan.spans ?? "per-query";
    this.#block = this.#spans === "reference" ? plan.block! : 0;
    this.#alpha = new Float64Array(plan.alphas.flat());
    this.#beta = new Float64Array(plan.betas.flat());
    this.#window = new Int32Array(L * NKV);
    this.#start = new Int32Array(L * NKV);
    let widest = 0;
    const slotsPerLayer: number[] = [];
    for (let l = 0; l < L; l++) {
      let slots = 0;
      for (let g = 0; g < NKV; g++) {
        const i = l * NKV + g;
        this.#window[i] = ringCapacity(
          this.#alpha[i]!,
          this.#beta[i]!,
          maxLength,
          this.#sink,
          this.#spans,
          plan.block,
        );
        this.#start[i] = slots;
        slots += this.#sink + this.#window[i]!;
        widest = Math.max(widest, this.#window[i]!);
      }
      slotsPerLayer.push(slots);
    }
    this.#store = new KvMemory({
      layers: L,
      floats: Math.max(...slotsPerLayer) * this.#HS,
      group: this.#NH / NKV,
      headDim: this.#HS,
      maxKeys: this.#sink + widest,
    });
    this.#slots = slotsPerLayer;
  }

  /** Slots of each layer's buffers. */
  readonly #slots: number[];

  get length(): number {
    return this.#length;
  }

  /**
   * Slots a kv head's segment owns (sink + ring capacity).
   * @param layer layer index
   * @param kvHead kv head index
   * @returns sink + window_g
   */
  capacity(layer: number, kvHead: number): number {
    return this.#sink + this.#window[layer * this.#NKV + kvHead]!;
  }

  /**
   * Slots a kv head's segment fills now: min(n, sink) + min(n − sink, window_g).
   * @param layer layer index
   * @param kvHead kv head index
   * @returns tokens stored for that head
   */
  slotsUsed(layer: number, kvHead: number): number {
    return slotsUsed(this.#length, this.#sink, this.#window[layer * this.#NKV + kvHead]!);
  }

  /** Bytes of K and V stored now: Σ over layers and kv heads of slots used × 2 × HS × 4. */
  bytes(): number {
    let slots = 0;
    for (let l = 0; l < this.#slots.length; l++) {
      for (let g = 0; g < this.#NKV; g++) slots += this.slotsUsed(l, g);
    }
    return slots * 2 * this.#HS * 4;
  }

  /** Bytes of K and V allocated: Σ over layers and kv heads of (sink + window) × 2 × HS × 4. */
  capacityBytes(): number {
    return this.#slots.reduce((a, s) => a + s, 0) * this.#HS * 2 * 4;
  }

  /** Span of (layer, kv head) at length n, capped at the ring's capacity. */
  #span(i: number, n: number): number {
    return Math.min(elasticSpan(this.#alpha[i]!, this.#beta[i]!, n), this.#window[i]!);
  }

  /**
   * First window position the query at position p sees (≥ sink; > p when none); `decode`: the
   * query is a one-token step (only the `reference` semantics tells the two apart).
   */
  #windowStart(i: number, p: number, decode: boolean): number {
    if (this.#spans === "reference") {
      return referenceWindowStart(p, this.#window[i]!, this.#sink, this.#block, decode);
    }
    return Math.max(this.#sink, Math.floor(p - this.#span(i, p + 1)) + 1);
  }

  /** Slot of a stored position within its head's segment. */
  #slot(i: number, p: number): number {
    return p < this.#sink ? p : this.#sink + (p - this.#sink) % this.#window[i]!;
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
    const NH = this.#NH, NKV = this.#NKV, HS = this.#HS, P = this.#length, sink = this.#sink;
    const G = NH / NKV;
    const K = this.#store.k[layer]!, V = this.#store.v[layer]!;
    if (T === 1) {
      // store first: the slot token P overwrites holds a position no query from P on can see
      this.#keep(layer, k, v, 1);
      const runs = this.#runs;
      for (let g = 0; g < NKV; g++) {
        const i = layer * NKV + g, base = this.#start[i]!, w = this.#window[i]!;
        // the sink, then the window's positions ws..P: a stretch of the ring, maybe wrapped
        runs[0] = base;
        runs[1] = Math.min(sink, P + 1);
        const ws = this.#windowStart(i, P, true), count = Math.max(0, P + 1 - ws);
        let nruns = 1;
        if (count > 0) {
          const first = this.#slot(i, ws) - sink, head = Math.min(count, w - first);
          runs[2] = base + sink + first;
          runs[3] = head;
          runs[4] = base + sink;
          runs[5] = count - head;
          nruns = head < count ? 3 : 2;
        }
        this.#store.attend(layer, out, g * G * HS, q, g * G * HS, runs, nruns);
      }
      return;
    }
    for (let g = 0; g < NKV; g++) {
      const i = layer * NKV + g, base = this.#start[i]!;
      const block = Math.min(QUERY_BLOCK_MAX, Math.max(QUERY_BLOCK_MIN, this.#window[i]!));
      for (let t0 = 0; t0 < T; t0 += block) {
        const tb = Math.min(block, T - t0);
        const last = P + t0 + tb - 1; // position of the block's last query
        const nSink = Math.min(sink, last + 1);
        let lo = last + 1;
        for (let t = 0; t < tb; t++) lo = Math.min(lo, this.#windowStart(i, P + t0 + t, false));
        const nk = nSink + (last + 1 - lo);
        const keys = new Float32Array(nk * HS), values = new Float32Array(nk * HS);
        const gather = (p: number, c: number) => {
          if (p >= P) {
            const src = ((p - P) * NKV + g) * HS;
            keys.set(k.subarray(src, src + HS), c * HS);
            values.set(v.subarray(src, src + HS), c * HS);
          } else {
            const src = (base + this.#slot(i, p)) * HS;
            keys.set(K.subarray(src, src + HS), c * HS);
            values.set(V.subarray(src, src + HS), c * HS);
          }
        };
        for (let p = 0; p < nSink; p++) gather(p, p);
        for (let p = lo; p <= last; p++) gather(p, nSink + p - lo);
        const ranges = new Int32Array(3 * tb);
        for (let t = 0; t < tb; t++) {
          const p = P + t0 + t;
          ranges[3 * t] = Math.min(sink, p + 1);
          ranges[3 * t + 1] = nSink + Math.max(0, this.#windowStart(i, p, false) - lo);
          ranges[3 * t + 2] = nSink + (p + 1 - lo);
        }
        await groupAttention(
          engine,
          out.subarray(t0 * NH * HS, (t0 + tb) * NH * HS),
          q.subarray(t0 * NH * HS, (t0 + tb) * NH * HS),
          keys,
          values,
          ranges,
          null,
          g,
          G,
          NH,
          HS,
          tb,
          nk,
        );
      }
    }
    this.#keep(layer, k, v, T);
  }

  /** Writes what the sinks and rings keep of T new tokens (k, v: (T, NKV, HS)). */
  #keep(layer: number, k: Float32Array, v: Float32Array, T: number): void {
    const NKV = this.#NKV, HS = this.#HS, P = this.#length, sink = this.#sink;
    const K = this.#store.k[layer]!, V = this.#store.v[layer]!;
    for (let g = 0; g < NKV; g++) {
      const i = layer * NKV + g, base = this.#start[i]!, w = this.#window[i]!;
      for (let p = P; p < P + T; p++) {
        if (p >= sink && p < P + T - w) continue; // overwritten before it could be read
        const src = ((p - P) * NKV + g) * HS, dst = (base + this.#slot(i, p)) * HS;
        K.set(k.subarray(src, src + HS), dst);
        V.set(v.subarray(src, src + HS), dst);
      }
    }
  }

  commit(T: number): void {
    this.#length += T;
  }
}

/** H2O's budget, in keys per kv head. */
export interface H2oOptions {
  /** Share of the target length the cache keeps: budget = round(density · length). */
  density: number;
  /** The target length N the budget is a share of. */
  length: number;
  /** Most recent tokens always kept. @default floor(budget / 2) */
  recent?: number;
}

/** One kept key of an H2O head. */
export interface H2oEntry {
  position: number;
  /** Attention probability the key has received so far, summed over queries and the group. */
  score: number;
}

/**
 * H2O (heavy-hitter oracle): per layer and kv head, keeps at most `budget` keys: the `recent`
 * most recent tokens plus the keys with the largest accumulated attention (the sum of the
 * probabilities each key has received from every query so far, over the query heads of the
 * group). When over budget, the non-recent key with the smallest accumulated score is evicted
 * (ties: the oldest). Prefill attends densely over the kept and new keys, as the H2O paper does,
 * then evicts down to the budget; decoding attends only over the kept keys and itself.
 *
 * Per layer, K and V are (NKV, budget + 1, HS); slots are unordered, each with its position and
 * score. The extra slot holds a decoded token until eviction.
 */
export class H2oKvCache implements KvCache {
  #length = 0;
  /** Keys kept per kv head. */
  readonly budget: number;
  /** Most recent tokens always kept. */
  readonly recent: number;
  readonly #NH: number;
  readonly #NKV: number;
  readonly #HS: number;
  readonly #cap: number;
  /** Per layer, (NKV, cap, HS) keys and values. */
  readonly #store: KvMemory;
  readonly #layers: number;
  /** Per layer, (NKV, cap): position of the token in each slot. */
  readonly #pos: Int32Array[];
  /** Per layer, (NKV, cap): accumulated attention score of each slot. */
  readonly #score: Float64Array[];
  /** Per layer, (NKV): slots filled. */
  readonly #count: Int32Array[];
  readonly #runs = new Int32Array(2);

  /**
   * @param config the model's shape
   * @param options density and target length (budget = round(density · length)), recent tokens
   */
  constructor(config: ModelConfig, options: H2oOptions) {
    const { density, length } = options;
    if (!(density > 0 && density <= 1)) {
      throw new RangeError(`H2oKvCache: density is ${density}; expected a number in (0, 1]`);
    }
    checkInteger("H2oKvCache: length", length, 1);
    this.budget = Math.round(density * length);
    checkInteger(`H2oKvCache: budget round(${density} · ${length})`, this.budget, 1);
    this.recent = options.recent ?? Math.floor(this.budget / 2);
    checkInteger("H2oKvCache: recent", this.recent, 0);
    if (this.recent > this.budget) {
      throw new RangeError(
        `H2oKvCache: recent is ${this.recent}; expected at most the budget ${this.budget}`,
      );
    }
    this.#NH = config.numHeads;
    this.#NKV = config.numKvHeads;
    this.#HS = config.headDim;
    this.#cap = this.budget + 1;
    const L = config.numLayers, n = this.#NKV * this.#cap;
    this.#layers = L;
    this.#store = new KvMemory({
      layers: L,
      floats: n * this.#HS,
      group: this.#NH / this.#NKV,
      headDim: this.#HS,
      maxKeys: this.#cap,
    });
    this.#pos = Array.from({ length: L }, () => new Int32Array(n));
    this.#score = Array.from({ length: L }, () => new Float64Array(n));
    this.#count = Array.from({ length: L }, () => new Int32Array(this.#NKV));
  }

  get length(): number {
    return this.#length;
  }

  /** Bytes of K and V stored now: Σ over layers and kv heads of keys kept × 2 × HS × 4. */
  bytes(): number {
    let kept = 0;
    for (const c of this.#count) for (const n of c) kept += n;
    return kept * 2 * this.#HS * 4;
  }

  /** Bytes of K and V allocated (budget + 1 slots per layer and kv head). */
  capacityBytes(): number {
    return this.#layers * this.#NKV * this.#cap * 2 * this.#HS * 4;
  }

  /**
   * The keys one head keeps, by position.
   * @param layer layer index
   * @param kvHead kv head index
   * @returns kept positions with their accumulated scores, ascending by position
   */
  kept(layer: number, kvHead: number): H2oEntry[] {
    const base = kvHead * this.#cap, n = this.#count[layer]![kvHead]!;
    const pos = this.#pos[layer]!, score = this.#score[layer]!;
    return Array.from({ length: n }, (_, s) => ({
      position: pos[base + s]!,
      score: score[base + s]!,
    })).sort((a, b) => a.position - b.position);
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
    const NH = this.#NH, NKV = this.#NKV, HS = this.#HS, P = this.#length, cap = this.#cap;
    const G = NH / NKV;
    const K = this.#store.k[layer]!, V = this.#store.v[layer]!;
    const pos = this.#pos[layer]!, score = this.#score[layer]!, count = this.#count[layer]!;
    if (T === 1) {
      for (let g = 0; g < NKV; g++) {
        const base = g * cap, n = count[g]! + 1;
        const dst = (base + n - 1) * HS;
        K.set(k.subarray(g * HS, g * HS + HS), dst);
        V.set(v.subarray(g * HS, g * HS + HS), dst);
        pos[base + n - 1] = P;
        score[base + n - 1] = 0;
        this.#runs[0] = base;
        this.#runs[1] = n;
        const acc = score.subarray(base, base + n);
        this.#store.attend(layer, out, g * G * HS, q, g * G * HS, this.#runs, 1, acc);
        count[g] = n;
        if (n > this.budget) this.#evictOne(layer, g, P + 1);
      }
      return;
    }
    for (let g = 0; g < NKV; g++) {
      const base = g * cap, old = count[g]!;
      const acc = new Float64Array(old + T); // old slots, then new tokens
      for (let t0 = 0; t0 < T; t0 += QUERY_BLOCK_MAX) {
        const tb = Math.min(QUERY_BLOCK_MAX, T - t0);
        const nk = old + t0 + tb;
        const keys = new Float32Array(nk * HS), values = new Float32Array(nk * HS);
        keys.set(K.subarray(base * HS, (base + old) * HS));
        values.set(V.subarray(base * HS, (base + old) * HS));
        for (let t = 0; t < t0 + tb; t++) {
          const src = (t * NKV + g) * HS;
          keys.set(k.subarray(src, src + HS), (old + t) * HS);
          values.set(v.subarray(src, src + HS), (old + t) * HS);
        }
        const ranges = new Int32Array(3 * tb);
        for (let t = 0; t < tb; t++) ranges[3 * t] = old + t0 + t + 1;
        await groupAttention(
          engine,
          out.subarray(t0 * NH * HS, (t0 + tb) * NH * HS),
          q.subarray(t0 * NH * HS, (t0 + tb) * NH * HS),
          keys,
          values,
          ranges,
          acc.subarray(0, nk),
          g,
          G,
          NH,
          HS,
          tb,
          nk,
        );
      }
      // candidates: c < old is slot c, c ≥ old is new token c − old
      const n = P + T;
      const posOf = (c: number) => c < old ? pos[base + c]! : P + c - old;
      const scoreOf = (c: number) => c < old ? score[base + c]! + acc[c]! : acc[c]!;
      const evict = Math.max(0, old + T - this.budget);
      const dropped = new Uint8Array(old + T);
      if (evict > 0) {
        const older: number[] = [];
        for (let c = 0; c < old + T; c++) if (posOf(c) < n - this.recent) older.push(c);
        older.sort((a, b) => scoreOf(a) - scoreOf(b) || posOf(a) - posOf(b));
        for (let r = 0; r < evict; r++) dropped[older[r]!] = 1;
      }
      for (let c = 0; c < old; c++) score[base + c] = scoreOf(c);
      // kept new tokens fill the evicted slots, then the empty ones
      const free: number[] = [];
      for (let c = 0; c < old; c++) if (dropped[c]) free.push(c);
      for (let s = old; s < this.budget; s++) free.push(s);
      let f = 0;
      for (let t = 0; t < T; t++) {
        const c = old + t;
        if (dropped[c]) continue;
        const s = free[f++]!;
        const src = (t * NKV + g) * HS;
        K.set(k.subarray(src, src + HS), (base + s) * HS);
        V.set(v.subarray(src, src + HS), (base + s) * HS);
        pos[base + s] = P + t;
        score[base + s] = acc[c]!;
      }
      count[g] = old + T - evict;
    }
  }

  /** Evicts the non-recent slot with the lowest score (ties: oldest) by moving the last slot in. */
  #evictOne(layer: number, g: number, n: number): void {
    const HS = this.#HS, base = g * this.#cap;
    const pos = this.#pos[layer]!, score = this.#score[layer]!, count = this.#count[layer]!;
    let worst = -1;
    for (let s = 0; s < count[g]!; s++) {
      if (pos[base + s]! >= n - this.recent) continue;
      if (
        worst < 0 || score[base + s]! < score[base + worst]! ||
        (score[base + s] === score[base + worst] && pos[base + s]! < pos[base + worst]!)
      ) worst = s;
    }
    const last = count[g]! - 1;
    if (worst !== last) {
      for (const a of [this.#store.k[layer]!, this.#store.v[layer]!]) {
        a.copyWithin((base + worst) * HS, (base + last) * HS, (base + last + 1) * HS);
      }
      pos[base + worst] = pos[base + last]!;
      score[base + worst] = score[base + last]!;
    }
    count[g] = last;
  }

  commit(T: number): void {
    this.#length += T;
  }
}
