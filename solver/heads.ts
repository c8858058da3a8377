/**
 * Per-head attention statistics: how far back each head looks. On LongEval prompts it reports,
 * for every layer and head, the mean attention distance (Σ_j A_ij·(i − j), averaged over queries)
 * and the attention mass on the first `sinkTokens` tokens. Heads with short mean distances are
 * local; heads that reach back over a large share of the context are the long-range ones MoA
 * must keep wide.
 *
 * {@link inductionScores} runs the standard copy test instead: random tokens repeated once, and
 * for each head the attention mass on the previous token and on the token after the current
 * token's earlier occurrence (an induction head's target). Retrieval needs induction heads that
 * work over the whole vocabulary.
 *
 * @module
 */
import type { Engine } from "../runtime/cpu/engine.ts";
import type { CpuModel } from "../runtime/cpu/forward.ts";
import type { KvCache } from "../runtime/cpu/kv_cache.ts";
import { argmax, softmaxRow } from "../runtime/cpu/ops.ts";
import { Rng } from "../runtime/rng.ts";
import type { ModelConfig } from "../runtime/model.ts";

/** Statistics of one head, averaged over the queries of the prompts seen. */
export interface HeadStats {
  layer: number;
  head: number;
  /** Mean over queries of Σ_j A_ij·(i − j), in tokens. */
  meanDistance: number;
  /** Mean over queries of Σ_{j < sinkTokens} A_ij. */
  sinkMass: number;
  /** Mean over queries of the context length i + 1 (to scale distances). */
  meanContext: number;
  /** Mean over queries of A_i,i−1 (a previous-token head puts ~1 here). */
  prevMass: number;
  /**
   * Mean over queries of Σ A_ij over keys j whose previous token equals token i (an induction
   * head's target); NaN when the cache was given no tokens.
   */
  inductionMass: number;
  /** Mean over queries of Σ A_ij over earlier keys j holding token i itself; NaN as above. */
  duplicateMass: number;
}

/**
 * A full-attention cache that also accumulates attention statistics per head. Attention is
 * computed in plain TypeScript so that every probability is seen; meant for analysis, not speed.
 */
export class StatsKvCache implements KvCache {
  #length = 0;
  readonly #k: number[][][]; // [layer][token] → (NKV·HS)
  readonly #v: number[][][];
  readonly sums: {
    distance: Float64Array;
    sink: Float64Array;
    context: Float64Array;
    queries: Float64Array;
    prev: Float64Array;
    induction: Float64Array;
    duplicate: Float64Array;
  };

  /**
   * @param config the model shape
   * @param sinkTokens tokens counted as the "sink" @default 64
   * @param minQuery queries at earlier positions are not counted @default 0
   * @param tokens the whole sequence that will pass through, for the induction mass
   */
  constructor(
    readonly config: ModelConfig,
    readonly sinkTokens = 64,
    readonly minQuery = 0,
    readonly tokens?: ArrayLike<number>,
  ) {
    this.#k = Array.from({ length: config.numLayers }, () => []);
    this.#v = Array.from({ length: config.numLayers }, () => []);
    const n = config.numLayers * config.numHeads;
    this.sums = {
      distance: new Float64Array(n),
      sink: new Float64Array(n),
      context: new Float64Array(n),
      queries: new Float64Array(n),
      prev: new Float64Array(n),
      induction: new Float64Array(n),
      duplicate: new Float64Array(n),
    };
  }

  get length(): number {
    return this.#length;
  }

  bytes(): number {
    const c = this.config;
    return c.numLayers * 2 * c.numKvHeads * this.#length * c.headDim * 4;
  }

  attend(
    layer: number,
    out: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    T: number,
    _engine: Engine,
  ): Promise<void> {
    const { numHeads: NH, numKvHeads: NKV, headDim: HS } = this.config;
    const G = NH / NKV, KW = NKV * HS, P = this.#length;
    const K = this.#k[layer]!, V = this.#v[layer]!;
    for (let t = 0; t < T; t++) {
      K.push(Array.from(k.subarray(t * KW, (t + 1) * KW)));
      V.push(Array.from(v.subarray(t * KW, (t + 1) * KW)));
    }
    const scale = 1 / Math.sqrt(HS);
    const p = new Float32Array(P + T);
    for (let t = 0; t < T; t++) {
      const i = P + t, n = i + 1;
      for (let h = 0; h < NH; h++) {
        const g = Math.floor(h / G) * HS, qo = (t * NH + h) * HS;
        for (let j = 0; j < n; j++) {
          const kj = K[j]!;
          let s = 0;
          for (let d = 0; d < HS; d++) s += q[qo + d]! * kj[g + d]!;
          p[j] = s * scale;
        }
        softmaxRow(p, 0, n);
        out.fill(0, qo, qo + HS);
        let dist = 0, sink = 0, ind = 0, dup = 0;
        const tok = this.tokens, ti = tok?.[i];
        for (let j = 0; j < n; j++) {
          const a = p[j]!, vj = V[j]!;
          for (let d = 0; d < HS; d++) out[qo + d]! += a * vj[g + d]!;
          dist += a * (i - j);
          if (j < this.sinkTokens) sink += a;
          if (tok && j > 0 && j < i && tok[j - 1] === ti) ind += a;
          if (tok && j < i && tok[j] === ti) dup += a;
        }
        if (i >= this.minQuery) {
          const idx = layer * NH + h;
          this.sums.distance[idx]! += dist;
          this.sums.sink[idx]! += sink;
          this.sums.context[idx]! += n;
          this.sums.queries[idx]! += 1;
          this.sums.prev[idx]! += i > 0 ? p[i - 1]! : 0;
          this.sums.induction[idx]! += ind;
          this.sums.duplicate[idx]! += dup;
        }
      }
    }
    return Promise.resolve();
  }

  commit(T: number): void {
    this.#length += T;
  }
}

/**
 * Runs prompts through the model with statistics caches and averages per head.
 * @param prompts token ids per prompt
 * @param opts sinkTokens (default 64) and minQuery: only queries at or after this position count
 */
export async function headStats(
  cpu: CpuModel,
  prompts: number[][],
  opts: { sinkTokens?: number; minQuery?: number } = {},
): Promise<HeadStats[]> {
  const c = cpu.model.config;
  const n = c.numLayers * c.numHeads;
  const keys = [
    "distance",
    "sink",
    "context",
    "queries",
    "prev",
    "induction",
    "duplicate",
  ] as const;
  const tot = Object.fromEntries(keys.map((k) => [k, new Float64Array(n)])) as Record<
    (typeof keys)[number],
    Float64Array
  >;
  for (const p of prompts) {
    const cache = new StatsKvCache(c, opts.sinkTokens ?? 64, opts.minQuery ?? 0, p);
    await cpu.step([{ cache, tokens: p }], "none");
    for (const key of keys) {
      for (let i = 0; i < n; i++) tot[key][i]! += cache.sums[key][i]!;
    }
  }
  const out: HeadStats[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    for (let h = 0; h < c.numHeads; h++) {
      const i = l * c.numHeads + h, q = Math.max(1, tot.queries[i]!);
      out.push({
        layer: l,
        head: h,
        meanDistance: tot.distance[i]! / q,
        sinkMass: tot.sink[i]! / q,
        meanContext: tot.context[i]! / q,
        prevMass: tot.prev[i]! / q,
        inductionMass: tot.induction[i]! / q,
        duplicateMass: tot.duplicate[i]! / q,
      });
    }
  }
  return out;
}

/**
 * The induction test: `sequences` of `[BOS, r, r]` with r = `span` tokens drawn uniformly from
 * ids [first, first + vocab), scored on the second copy (where an induction head attends to the
 * token after the current token's first occurrence, and copying predicts every next token).
 * @returns per head stats (prevMass, inductionMass) over the second copies, and the model's
 *   next-token accuracy there (the copies it gets right)
 */
export async function inductionScores(
  cpu: CpuModel,
  o: {
    span: number;
    sequences: number;
    vocab: number;
    first?: number;
    bos?: number;
    seed?: number;
  },
): Promise<{ heads: HeadStats[]; copyAccuracy: number }> {
  const first = o.first ?? 3;
  const rng = new Rng(o.seed ?? 0);
  const prompts: number[][] = [];
  for (let s = 0; s < o.sequences; s++) {
    const r = Array.from({ length: o.span }, () => rng.int(first, first + o.vocab - 1));
    prompts.push([o.bos ?? 1, ...r, ...r]);
  }
  const heads = await headStats(cpu, prompts, { sinkTokens: 1, minQuery: 1 + o.span });
  let hit = 0, n = 0;
  const V = cpu.model.config.vocabSize;
  for (const p of prompts) {
    const cache = cpu.newCache(p.length);
    const logits = (await cpu.step([{ cache, tokens: p }], "all"))[0]!;
    for (let t = 1 + o.span; t < p.length - 1; t++) {
      if (argmax(logits, t * V, V) === p[t + 1]) hit++;
      n++;
    }
  }
  return { heads, copyAccuracy: hit / n };
}
