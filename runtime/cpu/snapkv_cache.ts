/**
 * SnapKV and Ada-KV on the CPU backend: caches that read a prompt with full attention and then
 * keep, per kv head, the positions the prompt's last queries (the observation window) attend to
 * most, plus the window itself (DESIGN.md §4.4, §4.5).
 *
 * Both score the prompt the same way: the last `window` queries' attention probabilities over the
 * keys before them (each query's softmax over every key it sees, as full attention computes it),
 * averaged over those queries and the query heads that share the kv head, then pooled over
 * neighbouring positions (a max over `kernel` entries centred on each, or their mean with zero
 * padding) so that a kept key brings its neighbours. They differ in how the budget is spent:
 *
 * - SnapKV (`allocation: "uniform"`): every kv head keeps round(density · n) keys: the window and
 *   the top-scored rest.
 * - Ada-KV (`allocation: "adaptive"`): the layer's heads share one budget of that size times the
 *   number of kv heads. The non-window budget B per head is pooled; the top (heads · B) scores over
 *   all the layer's heads jointly say how many each head wins (c_h), and head h keeps
 *   floor · B + (1 − floor) · c_h of its own top scores (rounded to whole keys summing to
 *   heads · B) besides the window.
 *
 * When the cache is told the prompt's length, it compresses once the prompt is read (after the
 * step that reaches it, however the prompt was split into steps) and keeps every token decoded
 * after it, as both papers do. Without a prompt length every step counts as a prompt: the cache
 * compresses after each step to round(density · n) keys (per head, or per head on average), with
 * that step's last queries as the window; perplexity scores the methods that way, 32 tokens a
 * step (`scoringChunk` in runtime/methods.ts).
 *
 * A step of new tokens attends over the kept keys and the step's own keys, causally, with the
 * engine's dense attention: a head's kept keys are stored contiguously in position order.
 *
 * @module
 */
import type { ModelConfig } from "../model.ts";
import type { KvCache } from "./kv_cache.ts";

/** Query rows per attention call in a long step; bounds the score matrix's memory. */
const QUERY_BLOCK = 512;

/** How a layer's budget is spread over its kv heads. */
export type SnapAllocation = "uniform" | "adaptive";
/** How the window's scores are pooled over neighbouring positions. */
export type SnapPooling = "max" | "mean";

/** Settings of a {@link SnapKvCache}. */
export interface SnapKvOptions {
  /** Share of the keys kept at compression: round(density · n) per kv head (on average). */
  density: number;
  /** SnapKV's equal budget per head, or Ada-KV's shared one. @default "uniform" */
  allocation?: SnapAllocation;
  /** Queries at the end of the prompt whose attention scores the keys; always kept. @default 32 */
  window?: number;
  /** Entries pooled around each score (odd). @default 7 */
  kernel?: number;
  /** Max or mean (zero-padded) pooling. @default "max" */
  pooling?: SnapPooling;
  /** Ada-KV: share of each head's equal budget it keeps whatever the scores say. @default 0.5 */
  floor?: number;
  /** The prompt's length: compress once, when the cache reaches it. @default every step */
  promptLength?: number;
}

/** The kept keys and values of one kv head, in position order. */
class HeadStore {
  count = 0;
  pos: Int32Array;
  k: Float32Array;
  v: Float32Array;

  constructor(readonly HS: number, cap: number) {
    this.pos = new Int32Array(cap);
    this.k = new Float32Array(cap * HS);
    this.v = new Float32Array(cap * HS);
  }

  /** Appends one key/value row at `position`. */
  push(position: number, k: Float32Array, v: Float32Array): void {
    if (this.count === this.pos.length) this.#grow(2 * this.pos.length);
    const HS = this.HS, c = this.count++;
    this.pos[c] = position;
    this.k.set(k, c * HS);
    this.v.set(v, c * HS);
  }

  /** Keeps the entries whose flag is set, in order. */
  retain(keep: Uint8Array): void {
    const HS = this.HS;
    let n = 0;
    for (let c = 0; c < this.count; c++) {
      if (!keep[c]) continue;
      if (n !== c) {
        this.pos[n] = this.pos[c]!;
        this.k.copyWithin(n * HS, c * HS, (c + 1) * HS);
        this.v.copyWithin(n * HS, c * HS, (c + 1) * HS);
      }
      n++;
    }
    this.count = n;
  }

  #grow(cap: number): void {
    const pos = new Int32Array(cap), k = new Float32Array(cap * this.HS);
    const v = new Float32Array(cap * this.HS);
    pos.set(this.pos);
    k.set(this.k);
    v.set(this.v);
    [this.pos, this.k, this.v] = [pos, k, v];
  }
}

/**
 * Pools scores over neighbouring entries: out[c] is the max (or the mean, counting entries past
 * either end as 0) of s over the `kernel` entries centred on c.
 *
 * @param s the scores
 * @param kernel an odd window width ≥ 1
 * @param pooling max or mean
 * @returns the pooled scores, same length
 * @example
 * ```ts
 * import { poolScores } from "./snapkv_cache.ts";
 * console.log([...poolScores(Float64Array.from([0, 3, 0, 0, 1]), 3, "max")]); // [3, 3, 3, 1, 1]
 * ```
 */
export function poolScores(s: Float64Array, kernel: number, pooling: SnapPooling): Float64Array {
  const n = s.length, r = (kernel - 1) / 2, out = new Float64Array(n);
  for (let c = 0; c < n; c++) {
    const lo = Math.max(0, c - r), hi = Math.min(n - 1, c + r);
    let acc = pooling === "max" ? -Infinity : 0;
    for (let j = lo; j <= hi; j++) acc = pooling === "max" ? Math.max(acc, s[j]!) : acc + s[j]!;
    out[c] = pooling === "max" ? acc : acc / kernel;
  }
  return out;
}

/** Entry indices by descending score, ties to the later entry (the more recent key). */
function ranked(s: Float64Array): number[] {
  return Array.from(s.keys()).sort((a, b) => s[b]! - s[a]! || b - a);
}

/**
 * Ada-KV's split of one layer's budget over its heads: with B the per-head (non-window) budget,
 * head h wins c_h of the top heads·B scores over all heads jointly and gets
 * floor·B + (1 − floor)·c_h, rounded by largest remainder so the total is heads·B; a head never
 * gets more than it holds, and what one cannot take goes to the others in the joint order.
 *
 * @param pooled each head's pooled candidate scores
 * @param base B, the per-head budget
 * @param floor share of B every head keeps, in [0, 1]
 * @returns each head's number of kept candidates
 * @example
 * ```ts
 * import { adaptiveBudgets } from "./snapkv_cache.ts";
 * const a = Float64Array.from([9, 8, 7, 6]), b = Float64Array.from([1, 1, 1, 1]);
 * console.log(adaptiveBudgets([a, b], 2, 0.5)); // [3, 1]: a wins all 4, floor 1 each
 * ```
 */
export function adaptiveBudgets(pooled: Float64Array[], base: number, floor: number): number[] {
  const H = pooled.length, total = Math.min(H * base, pooled.reduce((a, s) => a + s.length, 0));
  const joint: { h: number; c: number }[] = [];
  pooled.forEach((s, h) => s.forEach((_, c) => joint.push({ h, c })));
  joint.sort((x, y) => pooled[y.h]![y.c]! - pooled[x.h]![x.c]! || y.c - x.c || x.h - y.h);
  const wins = new Array<number>(H).fill(0);
  for (const { h } of joint.slice(0, total)) wins[h]!++;
  const want = wins.map((c, h) => Math.min(pooled[h]!.length, floor * base + (1 - floor) * c));
  const got = want.map(Math.floor);
  let left = total - got.reduce((a, x) => a + x, 0);
  const byRemainder = Array.from(want.keys()).sort((a, b) =>
    want[b]! - got[b]! - (want[a]! - got[a]!) || a - b
  );
  for (const h of byRemainder) {
    if (left === 0) break;
    if (got[h]! < pooled[h]!.length && want[h]! > got[h]!) {
      got[h]!++;
      left--;
    }
  }
  // what capped heads could not take goes to the others, best remaining scores first
  const taken = got.map(() => 0);
  for (const { h } of joint) {
    if (left === 0) break;
    if (taken[h]! < got[h]!) taken[h]!++;
    else if (got[h]! < pooled[h]!.length) {
      got[h]!++;
      taken[h]!++;
      left--;
    }
  }
  return got;
}

function checkOption(what: string, x: number, ok: boolean, expected: string): void {
  if (!ok) throw new RangeError(`SnapKvCache: ${what} is ${x}; expected ${expected}`);
}

/**
 * The SnapKV / Ada-KV cache of one sequence (see the module documentation). Per layer and kv
 * head, the kept keys and values sit contiguously in position order; the last `window` queries of
 * every layer are kept (after RoPE) to score the keys at compression.
 */
export class SnapKvCache implements KvCache {
  #length = 0;
  /** Whether the prompt has been compressed (prompt mode: never again). */
  #compressed = false;
  readonly #NH: number;
  readonly #NKV: number;
  readonly #HS: number;
  readonly #opts: Required<Omit<SnapKvOptions, "promptLength">>;
  readonly #prompt: number | null;
  /** [layer][kv head] */
  readonly #heads: HeadStore[][];
  /** Per layer, the last `window` queries: (window, NH, HS) in a ring by position, and positions. */
  readonly #q: Float32Array[];
  readonly #qPos: Int32Array[];

  /**
   * @param config the model's shape
   * @param options density, allocation, window, pooling, prompt length
   * @param maxLength the longest the sequence will grow (sizes the first allocation)
   */
  constructor(config: ModelConfig, options: SnapKvOptions, maxLength = 256) {
    const o = {
      allocation: "uniform" as SnapAllocation,
      window: 32,
      kernel: 7,
      pooling: "max" as SnapPooling,
      floor: 0.5,
      ...options,
    };
    const d = o.density;
    checkOption("density", d, d > 0 && d <= 1, "a number in (0, 1]");
    checkOption("window", o.window, Number.isInteger(o.window) && o.window >= 1, "an integer ≥ 1");
    checkOption("kernel", o.kernel, Number.isInteger(o.kernel) && o.kernel % 2 === 1, "odd");
    checkOption("floor", o.floor, o.floor >= 0 && o.floor <= 1, "a number in [0, 1]");
    const p = o.promptLength;
    if (p !== undefined) {
      checkOption("promptLength", p, Number.isInteger(p) && p >= 1, "an integer ≥ 1");
    }
    this.#prompt = p ?? null;
    this.#opts = {
      density: d,
      allocation: o.allocation,
      window: o.window,
      kernel: o.kernel,
      pooling: o.pooling,
      floor: o.floor,
    };
    this.#NH = config.numHeads;
    this.#NKV = config.numKvHeads;
    this.#HS = config.headDim;
    const cap = Math.max(1, Math.min(maxLength, 1 << 16));
    this.#heads = Array.from(
      { length: config.numLayers },
      () => Array.from({ length: this.#NKV }, () => new HeadStore(this.#HS, cap)),
    );
    this.#q = Array.from(
      { length: config.numLayers },
      () => new Float32Array(o.window * this.#NH * this.#HS),
    );
    this.#qPos = Array.from({ length: config.numLayers }, () => new Int32Array(o.window).fill(-1));
  }

  get length(): number {
    return this.#length;
  }

  /** Bytes of K and V held now: Σ over layers and kv heads of kept keys × 2 × HS × 4. */
  bytes(): number {
    let kept = 0;
    for (const layer of this.#heads) for (const h of layer) kept += h.count;
    return kept * 2 * this.#HS * 4;
  }

  /**
   * The positions one kv head keeps.
   * @param layer layer index
   * @param kvHead kv head index
   * @returns kept positions, ascending
   */
  kept(layer: number, kvHead: number): number[] {
    const h = this.#heads[layer]![kvHead]!;
    return Array.from(h.pos.subarray(0, h.count));
  }

  attend: KvCache["attend"] = async (layer, out, q, k, v, T, engine) => {
    const NH = this.#NH, NKV = this.#NKV, HS = this.#HS, P = this.#length, G = NH / NKV;
    const w = this.#opts.window;
    // the step's last queries join the observation window
    const ring = this.#q[layer]!, ringPos = this.#qPos[layer]!;
    for (let t = Math.max(0, T - w); t < T; t++) {
      const slot = (P + t) % w;
      ring.set(q.subarray(t * NH * HS, (t + 1) * NH * HS), slot * NH * HS);
      ringPos[slot] = P + t;
    }
    const qg = new Float32Array(T * G * HS), og = new Float32Array(T * G * HS);
    for (let g = 0; g < NKV; g++) {
      const head = this.#heads[layer]![g]!;
      for (let t = 0; t < T; t++) {
        head.push(
          P + t,
          k.subarray((t * NKV + g) * HS, (t * NKV + g + 1) * HS),
          v.subarray((t * NKV + g) * HS, (t * NKV + g + 1) * HS),
        );
        qg.set(q.subarray((t * NH + g * G) * HS, (t * NH + g * G + G) * HS), t * G * HS);
      }
      // the kept keys then the step's own: query t sees entries 0 .. S − T + t
      for (let t0 = 0; t0 < T; t0 += QUERY_BLOCK) {
        const tb = Math.min(QUERY_BLOCK, T - t0), first = head.count - T + t0, S = first + tb;
        await engine.attention(
          og.subarray(t0 * G * HS, (t0 + tb) * G * HS),
          qg.subarray(t0 * G * HS, (t0 + tb) * G * HS),
          head.k.subarray(0, S * HS),
          head.v.subarray(0, S * HS),
          { T: tb, S, NH: G, NKV: 1, HS, first },
        );
      }
      for (let t = 0; t < T; t++) {
        out.set(og.subarray(t * G * HS, (t + 1) * G * HS), (t * NH + g * G) * HS);
      }
    }
  };

  commit(T: number): void {
    this.#length += T;
    const n = this.#length;
    if (this.#prompt === null || (!this.#compressed && n >= this.#prompt)) {
      for (let l = 0; l < this.#heads.length; l++) this.#compress(l, n);
      this.#compressed = true;
    }
  }

  /**
   * Mean attention probability each entry of kv head g receives from the stored window queries
   * (over the queries and the group's heads; each query's softmax over the entries it sees).
   */
  #windowScores(layer: number, g: number): Float64Array {
    const NH = this.#NH, HS = this.#HS, G = NH / this.#NKV;
    const head = this.#heads[layer]!, store = head[g]!, S = store.count;
    const ring = this.#q[layer]!, ringPos = this.#qPos[layer]!;
    const scale = 1 / Math.sqrt(HS), acc = new Float64Array(S), logits = new Float64Array(S);
    let rows = 0;
    for (let slot = 0; slot < ringPos.length; slot++) {
      const p = ringPos[slot]!;
      if (p < 0) continue;
      let seen = 0; // entries at positions ≤ p
      while (seen < S && store.pos[seen]! <= p) seen++;
      for (let i = 0; i < G; i++) {
        const qo = (slot * NH + g * G + i) * HS;
        let top = -Infinity;
        for (let c = 0; c < seen; c++) {
          let s = 0;
          for (let d = 0; d < HS; d++) s += ring[qo + d]! * store.k[c * HS + d]!;
          logits[c] = s * scale;
          top = Math.max(top, logits[c]!);
        }
        let z = 0;
        for (let c = 0; c < seen; c++) z += logits[c] = Math.exp(logits[c]! - top);
        for (let c = 0; c < seen; c++) acc[c]! += logits[c]! / z;
        rows++;
      }
    }
    if (rows > 0) { for (let c = 0; c < S; c++) acc[c]! /= rows; }
    return acc;
  }

  /** Keeps round(density · n) entries per head (on average, for Ada-KV) of layer `layer`. */
  #compress(layer: number, n: number): void {
    const { density, window, kernel, pooling, allocation, floor } = this.#opts;
    const budget = Math.round(density * n);
    const recentFrom = n - Math.min(window, budget); // the window: positions ≥ recentFrom
    const heads = this.#heads[layer]!;
    const candidates = heads.map((h) => {
      let c = 0;
      while (c < h.count && h.pos[c]! < recentFrom) c++;
      return c; // entries before the window are candidates 0 .. c − 1
    });
    const base = budget - (n - recentFrom);
    if (candidates.every((c) => c <= base)) return; // nothing to drop
    const pooled = heads.map((_, g) =>
      poolScores(this.#windowScores(layer, g).subarray(0, candidates[g]!), kernel, pooling)
    );
    const counts = allocation === "adaptive"
      ? adaptiveBudgets(pooled, base, floor)
      : pooled.map((s) => Math.min(s.length, base));
    heads.forEach((h, g) => {
      const keep = new Uint8Array(h.count).fill(1, candidates[g]!);
      for (const c of ranked(pooled[g]!).slice(0, counts[g]!)) keep[c] = 1;
      h.retain(keep);
    });
  }
}
