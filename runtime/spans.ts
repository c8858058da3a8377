/**
 * How a cache turns a head's rule (α, β) into the keys each query sees. Two semantics, chosen per
 * plan (`spans` in plan and experiment files):
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
