/**
 * The sparse rule, in one place: the plan type the caches run ({@link SparsePlan}), the span of
 * a rule (α, β) under both span semantics, the ring each head's cache needs, and the one check
 * of a plan's values that the solver's plan files (`solver/plan.ts`), the CPU cache
 * (`MoaKvCache` in `runtime/cpu/sparse_cache.ts`) and the GPU layout (`cacheLayout` in
 * `runtime/gpu/kernels/attention.ts`) share.
 *
 * A rule keeps, besides the first `sink` tokens, a window of S(n) = clamp(α + β·n, 0, n) keys
 * ending at the query ({@link elasticSpan}). How a cache turns the rule into each query's window
 * is its span semantics, chosen per plan (`spans` in plan and experiment files):
 *
 * - `per-query` (this project's, the default): the query at position i sees the sink and a window
 *   of S(i + 1) = clamp(α + β·(i + 1), 0, i + 1) keys ending at itself, token by token, in
 *   prefill and decode alike. A rule with α < 0 leaves early queries only the sink.
 * - `reference` (the MoA reference runtime's): the cache is sized once, when it is created for N
 *   tokens (prompt + most new tokens): C = min(⌈max(⌊α + β·N⌋, sink + block) / block⌉·block, N)
 *   slots per head, the sink's slots included, so the window holds W = C − min(C, sink) keys for
 *   every query. Prefill applies the window in whole blocks: the query block qb (positions
 *   qb·block … qb·block + block − 1) sees the sink and the key blocks qb − w + 1 … qb,
 *   w = ⌈W / block⌉. A decode step (one token) sees the sink and the last W keys, itself
 *   included (the ring's content).
 *
 * The reference fixes sink = block = 64 (so C is a multiple of 64, at least 128); here both come
 * from the plan, the sink a whole number of blocks. `solver/README.md` says which semantics the
 * paper tables use and why.
 *
 * @module
 */

/** The span semantics a plan can be run with. */
export const SPAN_SEMANTICS = ["per-query", "reference"] as const;
/** A span semantics (see the module documentation). */
export type SpanSemantics = (typeof SPAN_SEMANTICS)[number];

/** The part of a MoA plan that inference needs; plan files carry more (density, provenance). */
export interface SparsePlan {
  /** Leading tokens every head keeps. */
  sink: number;
  /** α per (layer, kv head), in tokens. */
  alphas: number[][];
  /** β per (layer, kv head), a share of the current length, in [0, 1]. */
  betas: number[][];
  /** How rules become windows (see the module documentation). @default "per-query" */
  spans?: SpanSemantics;
  /** Block size in tokens: the `reference` semantics needs it (the sink a multiple of it). */
  block?: number;
}

/** The model shape a plan must fit: one rule per layer and kv head. */
export interface PlanShape {
  /** Layers of the model. */
  layers: number;
  /** Key/value heads per layer. */
  kvHeads: number;
}

/**
 * The elastic span S(n) = clamp(α + β·n, 0, n) of a rule at length n.
 *
 * @param alpha α, in tokens
 * @param beta β, a share of the length
 * @param n current length (position of the query + 1)
 * @returns the span; a query at i sees window keys j with i − j < S(n) (may be fractional)
 *
 * @example
 * ```ts
 * import { elasticSpan } from "./spans.ts";
 * console.log(elasticSpan(-8, 0.5, 40)); // 12
 * console.log(elasticSpan(-1024, 0.5, 4096)); // 1024
 * ```
 */
export function elasticSpan(alpha: number, beta: number, n: number): number {
  return Math.min(n, Math.max(0, alpha + beta * n));
}

/**
 * The same rule for every (layer, kv head).
 *
 * @param shape layers and kv heads
 * @param alpha α, in tokens
 * @param beta β, a share of the length
 * @param sink leading tokens kept
 * @returns the plan (per-query semantics)
 *
 * @example
 * ```ts
 * import { uniformPlan } from "./spans.ts";
 * console.log(uniformPlan({ layers: 2, kvHeads: 2 }, 128, 0, 4).alphas[1]); // [128, 128]
 * ```
 */
export function uniformPlan(
  shape: PlanShape,
  alpha: number,
  beta: number,
  sink: number,
): SparsePlan {
  const grid = (x: number) =>
    Array.from({ length: shape.layers }, () => new Array<number>(shape.kvHeads).fill(x));
  return { sink, alphas: grid(alpha), betas: grid(beta) };
}

/**
 * The ring capacity a head's cache needs besides the sink: the most window keys any query sees
 * up to `maxLength` tokens. Under `per-query` that is min(⌈S(maxLength)⌉, maxLength − sink);
 * under `reference` the reference window W ({@link referenceWindow}) of a cache created for
 * `maxLength` tokens.
 *
 * @param alpha α, in tokens
 * @param beta β, a share of the length
 * @param maxLength longest sequence the cache serves with the exact rule
 * @param sink leading tokens kept
 * @param spans the span semantics
 * @param block block size (the `reference` semantics needs it)
 * @returns window slots, ≥ 0
 *
 * @example
 * ```ts
 * import { ringCapacity } from "./spans.ts";
 * console.log(ringCapacity(-8, 0.5, 100, 4, "per-query")); // 42
 * console.log(ringCapacity(0, 0.5, 1000, 64, "reference", 64)); // 448
 * ```
 */
export function ringCapacity(
  alpha: number,
  beta: number,
  maxLength: number,
  sink: number,
  spans: SpanSemantics,
  block?: number,
): number {
  if (spans === "reference") return referenceWindow(alpha, beta, maxLength, sink, block!);
  const span = Math.ceil(elasticSpan(alpha, beta, maxLength));
  return Math.min(span, Math.max(0, maxLength - sink));
}

/**
 * Slots a head's cache fills at length n: every sink token so far, then the ring up to its
 * capacity: min(n, sink) + min(n − sink, window).
 *
 * @param n sequence length
 * @param sink leading tokens kept
 * @param window the head's ring capacity ({@link ringCapacity})
 * @returns keys (and values) stored
 */
export function slotsUsed(n: number, sink: number, window: number): number {
  return Math.min(n, sink) + Math.min(Math.max(0, n - sink), window);
}

/** How a bad value is shown in a message. */
function shown(v: unknown): string {
  if (v === undefined) return "nothing";
  const s = typeof v === "number" ? String(v) : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/**
 * The one check of a sparse plan's values: a sink of whole tokens, one finite α and one β in
 * [0, 1] per (layer, kv head) in two tables of the same rectangular shape (the model's, when
 * `shape` is given), and, under the `reference` semantics, a block ≥ 1 that the sink is a whole
 * number of. The solver's plan files, the CPU caches and the GPU layout all check plans here.
 *
 * @param plan the plan
 * @param where who asks, the start of the message (e.g. a file name)
 * @param shape the model's layers and kv heads, when known
 * @throws {RangeError} `<where>: <field>: expected <what>, got <value>` for the first bad field
 *
 * @example
 * ```ts
 * import { checkSparsePlan } from "./spans.ts";
 * try {
 *   checkSparsePlan({ sink: 4, alphas: [[8]], betas: [[1.5]] }, "plan.json");
 * } catch (e) {
 *   console.log((e as Error).message); // plan.json: betas[0][0]: expected a number in [0, 1], got 1.5
 * }
 * ```
 */
export function checkSparsePlan(plan: SparsePlan, where: string, shape?: PlanShape): void {
  const fail = (field: string, expected: string, got: unknown): never => {
    throw new RangeError(`${where}: ${field}: expected ${expected}, got ${shown(got)}`);
  };
  if (!Number.isInteger(plan.sink) || plan.sink < 0) fail("sink", "an integer ≥ 0", plan.sink);
  const spans = plan.spans ?? "per-query";
  if (!SPAN_SEMANTICS.includes(spans)) {
    fail("spans", `one of ${SPAN_SEMANTICS.map((x) => `"${x}"`).join(", ")}`, spans);
  }
  const block = plan.block;
  if (block !== undefined && (!Number.isInteger(block) || block < 1)) {
    fail("block", "an integer ≥ 1", block);
  }
  if (spans === "reference") {
    if (block === undefined) {
      fail("block", "an integer ≥ 1 (the reference span semantics needs it)", block);
    }
    if (plan.sink % block! !== 0) {
      fail(
        "sink",
        `a multiple of block ${block} (the reference span semantics keeps whole sink blocks)`,
        plan.sink,
      );
    }
  }
  const { alphas, betas } = plan;
  if (shape && alphas.length !== shape.layers) {
    fail("alphas", `${shape.layers} layers (one per model layer)`, `${alphas.length} layers`);
  }
  const width = shape?.kvHeads ?? alphas[0]?.length ?? 0;
  const heads = shape ? "(one per kv head)" : "like alphas[0]";
  alphas.forEach((row, l) => {
    if (row.length !== width) {
      fail(`alphas[${l}]`, `${width} heads ${heads}`, `${row.length} heads`);
    }
    row.forEach((a, h) => {
      if (!Number.isFinite(a)) fail(`alphas[${l}][${h}]`, "a finite number", a);
    });
  });
  if (betas.length !== alphas.length || betas.some((row) => row.length !== width)) {
    const wrong = betas.find((row) => row.length !== width);
    fail(
      "betas",
      `${alphas.length} layers × ${width} heads like alphas`,
      `${betas.length} × ${(wrong ?? betas[0])?.length ?? 0}`,
    );
  }
  betas.forEach((row, l) =>
    row.forEach((b, h) => {
      if (!(b >= 0 && b <= 1)) fail(`betas[${l}][${h}]`, "a number in [0, 1]", b);
    })
  );
}

/**
 * The reference runtime's cache size of a rule for a cache created for `n` tokens: ⌊α + β·n⌋
 * (truncated toward zero, as Python's `int`), at least sink + block, rounded up to whole blocks,
 * at most n. The sink's slots are part of it.
 *
 * @param alpha α, in tokens
 * @param beta β, a share of the length
 * @param n tokens the cache is created for (prompt + most new tokens), ≥ 1
 * @param sink leading tokens kept (inside the cache size)
 * @param block block size in tokens, ≥ 1
 * @returns slots per head
 *
 * @example
 * ```ts
 * import { referenceCacheSize } from "./spans.ts";
 * // the reference's (−1024, 1) at a 4,096-token prompt and 1,024 new tokens: 4,096 of 5,120
 * console.log(referenceCacheSize(-1024, 1, 5120, 64, 64)); // 4096
 * console.log(referenceCacheSize(0, 0.01, 5120, 64, 64)); // 128, the minimum
 * ```
 */
export function referenceCacheSize(
  alpha: number,
  beta: number,
  n: number,
  sink: number,
  block: number,
): number {
  const raw = Math.trunc(alpha + beta * n);
  return Math.min(Math.ceil(Math.max(raw, sink + block) / block) * block, n);
}

/**
 * The window of a rule under the reference semantics: the cache size less the sink's slots.
 *
 * @param alpha α, in tokens
 * @param beta β, a share of the length
 * @param n tokens the cache is created for
 * @param sink leading tokens kept
 * @param block block size in tokens
 * @returns W = C − min(C, sink), the keys every query's window holds at most
 *
 * @example
 * ```ts
 * import { referenceWindow } from "./spans.ts";
 * console.log(referenceWindow(0, 0.5, 1000, 64, 64)); // 512 − 64 = 448
 * ```
 */
export function referenceWindow(
  alpha: number,
  beta: number,
  n: number,
  sink: number,
  block: number,
): number {
  const c = referenceCacheSize(alpha, beta, n, sink, block);
  return c - Math.min(c, sink);
}

/**
 * The first window position the query at `pos` sees under the reference semantics.
 *
 * In prefill the window is the key blocks ⌊pos/block⌋ − w + 1 … ⌊pos/block⌋ with w = ⌈W/block⌉;
 * a decode step sees the last W positions. Either way no further back than W positions (the
 * ring's capacity; this binds only past the length the cache was created for, or when W is not
 * a whole number of blocks).
 *
 * @param pos query position
 * @param window W, the rule's reference window ({@link referenceWindow})
 * @param sink leading tokens kept
 * @param block block size in tokens
 * @param decode whether the query is a one-token step
 * @returns the first window position, ≥ sink; > pos when the window is empty
 *
 * @example
 * ```ts
 * import { referenceWindowStart } from "./spans.ts";
 * // W = 128 (2 blocks of 64): position 200 is in block 3, so prefill sees blocks 2 and 3
 * console.log(referenceWindowStart(200, 128, 64, 64, false)); // 128
 * console.log(referenceWindowStart(200, 128, 64, 64, true)); // 73
 * ```
 */
export function referenceWindowStart(
  pos: number,
  window: number,
  sink: number,
  block: number,
  decode: boolean,
): number {
  const ring = pos - window + 1;
  if (decode) return Math.max(sink, ring);
  const w = Math.ceil(window / block);
  return Math.max(sink, (Math.floor(pos / block) - w + 1) * block, ring);
}

/**
 * Checks what the reference semantics needs of a sink and block: a block ≥ 1 and a sink of whole
 * blocks (the reference's is one block of 64).
 *
 * @param sink leading tokens kept
 * @param block block size in tokens
 * @param where who asks, for the message
 * @throws {RangeError} naming the values when they do not fit
 */
export function checkReferenceGrid(sink: number, block: number | undefined, where: string): void {
  if (block === undefined || !Number.isInteger(block) || block < 1) {
    throw new RangeError(
      `${where}: the reference span semantics needs a block size (an integer ≥ 1), got ${block}`,
    );
  }
  if (!Number.isInteger(sink) || sink < 0 || sink % block !== 0) {
    throw new RangeError(
      `${where}: the reference span semantics needs a sink of whole blocks; sink ${sink} is not ` +
        `a multiple of block ${block}`,
    );
  }
}
