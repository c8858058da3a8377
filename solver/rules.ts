/**
 * Elastic attention rules (DESIGN.md §3.1). A rule r = (α, β) lets a head keep, at
 * current length N, the first `sink` tokens plus a sliding window of
 *
 *   S(N) = clamp(α + β·N, 0, N)
 *
 * keys ending at the query itself. This module builds the candidate rules, their densities
 * (token-exact or counted in whole blocks as the reference does) and the masks they imply.
 *
 * How a cache turns a rule into each query's window is its span semantics
 * (`runtime/spans.ts`): `per-query` (query i keeps a window of S(i + 1)) or `reference` (the
 * reference runtime's: one window of the cache size at N less the sink, in whole blocks).
 *
 * The masks here:
 * - `ruleKeeps(rule, N, sink, i, j, spans, block)` is the token-level mask of a cache under
 *   either semantics (for `reference`, the prefill of the N tokens in one step).
 * - `droppedBlocks(rule, N, sink, block, mode)` is the block mask profiling sums influence over.
 *   Its `mode` says which band each query block gets: `static` (the reference profiler's band of
 *   S(N) for every query block, which neither cache applies), `elastic` (the `per-query` cache's,
 *   exact when block = 1) or `reference` (the `reference` cache's, exact at any block).
 *   `ruleDensity(…, block)` is the key share of the static mask's last (widest) query row, or of
 *   the reference cache's size.
 *
 * @module
 */
import { InputError } from "../runtime/errors.ts";
import {
  checkReferenceGrid,
  elasticSpan,
  referenceCacheSize,
  referenceWindow,
  referenceWindowStart,
  type SpanSemantics,
} from "../runtime/spans.ts";

/** An elastic rule: span S(N) = α + β·N keys besides the sink, at current length N. */
export interface Rule {
  /** Constant part of the span, in tokens (may be negative). */
  alpha: number;
  /** Part of the span that grows with the length, in [0, 1]. */
  beta: number;
}

/** Options of {@link candidateRules}. */
export interface CandidateOptions {
  /** β takes the values k / betaSteps for k = 0..betaSteps. @default 8 */
  betaSteps?: number;
}

function checkLength(value: number, field: string): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new InputError(`${field}: expected a positive integer, got ${value}`);
  }
}

/**
 * The candidate rules of DESIGN.md §3.2, scaled to the model's own lengths. With u = ⌊min(lengths)/2⌋,
 * α runs over −2u, −u, 0, u, 2u, … up to servingLength/2 and β over 0, 1/8, …, 1; a rule is kept
 * when α + β·N ≤ N for the longest profiled length and for the serving length (the window never
 * outgrows the sequence) and α + β·Nmin > 0 for the shortest profiled length (it keeps
 * something). For profiled 2048/4096/8192 and serving 16384 this is the reference's 48 rules.
 * The order is the reference's: by span at the serving length, ties in α-major, β-minor order.
 *
 * @param profileLengths the profiled lengths (positive integers)
 * @param servingLength the longest length the plan will serve (≥ every profiled length)
 * @param options β grid resolution
 * @returns the candidate rules, sorted by span at the serving length
 * @throws {InputError} when a length is not a positive integer or serving < longest profiled
 *
 * @example
 * ```ts
 * import { candidateRules } from "./rules.ts";
 * const rules = candidateRules([2048, 4096, 8192], 16384);
 * console.log(rules.length); // 48
 * ```
 */
export function candidateRules(
  profileLengths: readonly number[],
  servingLength: number,
  options: CandidateOptions = {},
): Rule[] {
  if (profileLengths.length === 0) {
    throw new InputError("profileLengths: expected at least one length, got []");
  }
  profileLengths.forEach((n, i) => checkLength(n, `profileLengths[${i}]`));
  checkLength(servingLength, "servingLength");
  const nMin = Math.min(...profileLengths);
  const nMax = Math.max(...profileLengths);
  if (servingLength < nMax) {
    throw new InputError(
      `servingLength: expected at least the longest profiled length ${nMax}, got ${servingLength}`,
    );
  }
  const betaSteps = options.betaSteps ?? 8;
  checkLength(betaSteps, "betaSteps");
  const u = Math.max(1, Math.floor(nMin / 2));
  const rules: Rule[] = [];
  for (let alpha = -2 * u; alpha <= servingLength / 2; alpha += u) {
    for (let k = 0; k <= betaSteps; k++) {
      const beta = k / betaSteps;
      if (
        alpha + beta * nMax <= nMax &&
        alpha + beta * servingLength <= servingLength &&
        alpha + beta * nMin > 0
      ) rules.push({ alpha, beta });
    }
  }
  const span = (r: Rule) => r.alpha + r.beta * servingLength;
  return rules.sort((a, b) => span(a) - span(b)); // Array.prototype.sort is stable
}

/**
 * The window span of a rule at current length N, clamped to [0, N]: the sparse rule's
 * `elasticSpan` (runtime/spans.ts) of a {@link Rule}.
 *
 * @param rule the rule
 * @param n current sequence length
 * @returns S(N) = clamp(α + β·N, 0, N), in tokens (may be fractional)
 *
 * @example
 * ```ts
 * import { ruleSpan } from "./rules.ts";
 * console.log(ruleSpan({ alpha: -1024, beta: 0.5 }, 4096)); // 1024
 * ```
 */
export function ruleSpan(rule: Rule, n: number): number {
  return elasticSpan(rule.alpha, rule.beta, n);
}

/**
 * The band width of a rule at length N in whole blocks, as the reference counts it:
 * max(1, ⌊S(N)/block⌋), the query's own (diagonal) block included.
 *
 * @param rule the rule
 * @param n sequence length
 * @param block block size in tokens
 * @returns the number of blocks in the band
 *
 * @example
 * ```ts
 * import { bandBlocks } from "./rules.ts";
 * console.log(bandBlocks({ alpha: 0, beta: 0.25 }, 4096, 64)); // 16
 * ```
 */
export function bandBlocks(rule: Rule, n: number, block: number): number {
  return Math.max(1, Math.floor(ruleSpan(rule, n) / block));
}

/**
 * The share of the KV cache a rule keeps when the sequence is N long (DESIGN.md §3.5).
 *
 * Without `block`: min(1, (sink + S(N)) / N) in tokens. With `block`, counted in whole blocks as
 * the reference does (its "kv" density of the block layout): the sequence is nb = ⌈N/block⌉
 * blocks, the sink is ⌈sink/block⌉ blocks and the band w = max(1, ⌊S(N)/block⌋) blocks, and the
 * density is min(nb, w + sink blocks) / nb, the widest (last) query row of the block mask.
 * Under the `reference` span semantics (which needs `block`) it is the share the reference
 * runtime's cache holds: C(N) / N, C = `referenceCacheSize` (sink included).
 *
 * @param rule the rule
 * @param n sequence length (positive)
 * @param sink tokens always kept at the start
 * @param block block size in tokens; omit for token-exact density
 * @param spans the span semantics @default "per-query"
 * @returns the density in (0, 1]
 *
 * @example
 * ```ts
 * import { ruleDensity } from "./rules.ts";
 * const r = { alpha: 0, beta: 0.5 };
 * console.log(ruleDensity(r, 4096, 64)); // (64 + 2048) / 4096 = 0.515625
 * console.log(ruleDensity(r, 4096, 64, 64)); // (32 + 1) / 64 = 0.515625
 * console.log(ruleDensity(r, 4096, 64, 64, "reference")); // 2048 / 4096 = 0.5
 * ```
 */
export function ruleDensity(
  rule: Rule,
  n: number,
  sink: number,
  block?: number,
  spans: SpanSemantics = "per-query",
): number {
  if (!(n > 0)) throw new RangeError(`ruleDensity: length must be positive, got ${n}`);
  if (spans === "reference") {
    checkReferenceGrid(sink, block, "ruleDensity");
    return referenceCacheSize(rule.alpha, rule.beta, n, sink, block!) / n;
  }
  if (block === undefined) return Math.min(1, (sink + ruleSpan(rule, n)) / n);
  const nb = Math.ceil(n / block);
  const sinkBlocks = Math.ceil(sink / block);
  return Math.min(nb, bandBlocks(rule, n, block) + sinkBlocks) / nb;
}

/**
 * Whether query i keeps key j under a rule, token by token.
 *
 * `per-query` (default): query i (0-based) sees the sequence when it is i + 1 long, so it keeps
 * the sink and a window of S(i + 1) keys ending at itself. `reference`: the reference runtime's
 * prefill of the n tokens (its cache created for n): the sink and the key blocks
 * ⌊i/block⌋ − w + 1 … ⌊i/block⌋, w = ⌈W/block⌉, W the cache size at n less the sink.
 *
 * @param rule the rule
 * @param n sequence length (queries run over 0..n−1)
 * @param sink tokens always kept at the start
 * @param i query position, 0 ≤ i < n
 * @param j key position
 * @param spans the span semantics @default "per-query"
 * @param block block size in tokens (the `reference` semantics needs it)
 * @returns j ≤ i and (j < sink or j is in i's window)
 *
 * @example
 * ```ts
 * import { ruleKeeps } from "./rules.ts";
 * const r = { alpha: 4, beta: 0 }; // window of 4 keys
 * console.log(ruleKeeps(r, 100, 2, 50, 47), ruleKeeps(r, 100, 2, 50, 46)); // true false
 * // reference, blocks of 2, sink 2: cache ⌈max(4, 4)/2⌉·2 = 4 slots, a window of 1 block
 * console.log(ruleKeeps(r, 100, 2, 50, 50, "reference", 2), ruleKeeps(r, 100, 2, 50, 49, "reference", 2)); // true false
 * ```
 */
export function ruleKeeps(
  rule: Rule,
  n: number,
  sink: number,
  i: number,
  j: number,
  spans: SpanSemantics = "per-query",
  block?: number,
): boolean {
  if (!(i >= 0 && i < n)) throw new RangeError(`ruleKeeps: query ${i} outside 0..${n - 1}`);
  if (j < 0 || j > i) return false;
  if (j < sink) return true;
  if (spans === "reference") {
    checkReferenceGrid(sink, block, "ruleKeeps");
    const w = referenceWindow(rule.alpha, rule.beta, n, sink, block!);
    return j >= referenceWindowStart(i, w, sink, block!, false);
  }
  return i - j < ruleSpan(rule, i + 1);
}

/** A square block mask over nb × nb (query block, key block) pairs, row-major. */
export interface BlockMask {
  /** nb = ⌈N / block⌉. */
  numBlocks: number;
  /** dropped[qb·nb + kb] = 1 when the pair is causal (kb ≤ qb) and the rule drops it. */
  dropped: Uint8Array;
}

/**
 * Which band profiling charges each query block (`droppedBlocks`):
 * - `static`: every query block gets the band of the full length N, max(1, ⌊S(N)/block⌋) blocks,
 *   as the reference's profiler charges it (DESIGN.md §3.4). Neither cache applies it: the
 *   `per-query` cache gives early queries narrower windows, the `reference` cache rounds its
 *   size up to whole blocks with the sink inside.
 * - `elastic`: the `per-query` cache's band: query block qb gets the window of its last query,
 *   ⌈S(n_q)/block⌉ blocks at its length n_q = min(N, (qb + 1)·block). With block = 1 this is
 *   exactly what the cache drops; with larger blocks a tile counts as dropped when the block's
 *   last query drops all of it (earlier queries of the block reach no less far back).
 * - `reference`: the `reference` cache's band for a cache created for N tokens,
 *   ⌈W/block⌉ blocks, W = C(N) − sink; exactly what that cache's prefill drops.
 *
 * The profiler charges the band of the run's semantics (`bandModeOf`). Before the semantics were
 * separated the default was `static` with `per-query` caches; see solver/README.md.
 */
export type BandMode = "static" | "elastic" | "reference";

/**
 * The band that agrees with a span semantics.
 * @param spans the semantics the caches run with
 * @returns `elastic` for `per-query`, `reference` for `reference`
 */
export function bandModeOf(spans: SpanSemantics): BandMode {
  return spans === "reference" ? "reference" : "elastic";
}

/** Band width in blocks of query block qb under a band mode. */
function bandOf(
  rule: Rule,
  n: number,
  sink: number,
  block: number,
  qb: number,
  mode: BandMode,
): number {
  switch (mode) {
    case "static":
      return bandBlocks(rule, n, block);
    case "elastic":
      return Math.ceil(ruleSpan(rule, Math.min(n, (qb + 1) * block)) / block);
    case "reference":
      return Math.ceil(referenceWindow(rule.alpha, rule.beta, n, sink, block) / block);
  }
}

/**
 * The causal (query block, key block) pairs a rule drops at length N, with the reference's
 * layout: every query block keeps the first ⌈sink/block⌉ key blocks and a band of w blocks
 * ending at its diagonal block; the rest below the diagonal is dropped. The band w is the
 * {@link BandMode}'s: max(1, ⌊S(N)/block⌋) for every query block (`static`, the default: the
 * reference profiler's), the block's last query's window at its own length (`elastic`: the
 * `per-query` cache's) or the reference cache's window in blocks (`reference`). Profiling's loss
 * of the rule is the sum of block influence over these pairs.
 *
 * @param rule the rule
 * @param n sequence length
 * @param sink tokens always kept at the start
 * @param block block size in tokens
 * @param mode which band each query block gets
 * @returns the dropped pairs as a row-major nb × nb mask
 *
 * ```ts
 * import { droppedBlocks } from "./rules.ts";
 * const m = droppedBlocks({ alpha: 128, beta: 0 }, 512, 64, 64); // 8 blocks, band 2, sink 1
 * console.log(m.dropped.reduce((a, b) => a + b, 0)); // 15 of the 36 causal pairs
 * ```
 */
export function droppedBlocks(
  rule: Rule,
  n: number,
  sink: number,
  block: number,
  mode: BandMode = "static",
): BlockMask {
  if (mode === "reference") checkReferenceGrid(sink, block, "droppedBlocks");
  const nb = Math.ceil(n / block);
  const sinkBlocks = Math.ceil(sink / block);
  const dropped = new Uint8Array(nb * nb);
  for (let qb = 0; qb < nb; qb++) {
    const w = bandOf(rule, n, sink, block, qb, mode);
    for (let kb = sinkBlocks; kb <= qb - w; kb++) dropped[qb * nb + kb] = 1;
  }
  return { numBlocks: nb, dropped };
}

/**
 * Σ of block influence over the pairs {@link droppedBlocks} drops, without building the mask.
 *
 * @param rule the rule
 * @param n sequence length
 * @param sink tokens always kept at the start
 * @param block block size in tokens
 * @param influence row-major nb × nb block influence, nb = ⌈n / block⌉ // (nb, nb)
 * @param mode which band each query block gets (see {@link BandMode})
 * @returns the estimated loss increase of the rule at length n
 *
 * ```ts
 * import { droppedInfluence } from "./rules.ts";
 * const ones = new Float64Array(8 * 8).fill(1);
 * console.log(droppedInfluence({ alpha: 128, beta: 0 }, 512, 64, 64, ones)); // 15
 * ```
 */
export function droppedInfluence(
  rule: Rule,
  n: number,
  sink: number,
  block: number,
  influence: ArrayLike<number>,
  mode: BandMode = "static",
): number {
  const nb = Math.ceil(n / block);
  if (influence.length !== nb * nb) {
    throw new RangeError(
      `droppedInfluence: influence has ${influence.length} entries, expected ${nb}×${nb}`,
    );
  }
  if (mode === "reference") checkReferenceGrid(sink, block, "droppedInfluence");
  const sinkBlocks = Math.ceil(sink / block);
  let sum = 0;
  for (let qb = 0; qb < nb; qb++) {
    const w = bandOf(rule, n, sink, block, qb, mode);
    for (let kb = sinkBlocks; kb <= qb - w; kb++) sum += influence[qb * nb + kb]!;
  }
  return sum;
}

/**
 * The influence a rule drops under the `per-query` cache's semantics (token by token, each query's
 * window at its own length, as {@link ruleKeeps}): Σ over queries i and keys j with
 * sink ≤ j and i − j ≥ S(i + 1) of influence[i][j].
 *
 * @param rule the rule
 * @param n sequence length
 * @param sink leading tokens kept
 * @param influence row-major (n, n) per-token influence (a profile with block 1)
 * @returns the dropped influence
 * @example
 * ```ts
 * import { droppedTokenInfluence } from "./rules.ts";
 * const inf = new Float64Array(16).fill(1); // 4 × 4
 * console.log(droppedTokenInfluence({ alpha: 1, beta: 0 }, 4, 0, inf)); // 6: every j < i
 * ```
 */
export function droppedTokenInfluence(
  rule: Rule,
  n: number,
  sink: number,
  influence: ArrayLike<number>,
): number {
  if (influence.length !== n * n) {
    throw new RangeError(
      `droppedTokenInfluence: influence has ${influence.length} entries, expected ${n}×${n}`,
    );
  }
  let sum = 0;
  for (let i = 0; i < n; i++) {
    // dropped: sink ≤ j ≤ i − S(i + 1), i.e. j ≤ ⌊i − S⌋
    const last = Math.floor(i - ruleSpan(rule, i + 1));
    for (let j = sink; j <= last; j++) sum += influence[i * n + j]!;
  }
  return sum;
}
