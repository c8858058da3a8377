/**
 * Data-parallel gradients for the trainer: a batch of B sequences is cut into contiguous groups
 * of sequences, each group's loss and gradient is taken by its own Deno worker (one jax-js
 * WebAssembly instance per worker, so each uses one core), and the parts are combined into the
 * gradient of the whole batch.
 *
 * The loss is a weighted mean, Σ mask·nll / Σ mask (`lossAndGrad` in
 * `runtime/autodiff/jax_model.ts`), so part i, whose mask sums to Sᵢ, enters with weight Sᵢ / S:
 * Σᵢ (Sᵢ/S)·∇lossᵢ = ∇loss of the whole batch, up to float32 summation order
 * (`grad_pool_test.ts` checks it against the one-process gradient). A part whose mask is all zero
 * adds nothing and is not sent.
 *
 * @module
 */
import type { Batch } from "../../runtime/autodiff/jax_model.ts";
import type { ModelConfig } from "../../runtime/model.ts";

/** One group of sequences: the rows [from, to) of a batch. */
export interface BatchPart {
  batch: Batch;
  /** sequences in the part */
  B: number;
  /** Σ mask over the part */
  weight: number;
}

/**
 * Cuts a batch of B sequences into at most `parts` contiguous groups of sequences, as even as
 * they can be (sizes differ by at most one), dropping groups whose mask is all zero.
 *
 * @param batch tokens, targets, mask (and positions), each B·T long
 * @param B sequences
 * @param T tokens per sequence
 * @param parts the most groups wanted (≥ 1)
 * @returns the non-empty groups, in batch order
 * @throws {RangeError} when `parts` is not a positive integer or the arrays are not B·T long
 */
export function splitBatch(batch: Batch, B: number, T: number, parts: number): BatchPart[] {
  if (!Number.isInteger(parts) || parts < 1) {
    throw new RangeError(`parts: expected an integer ≥ 1, got ${parts}`);
  }
  for (const [name, a] of Object.entries(batch)) {
    if (a !== undefined && a.length !== B * T) {
      throw new RangeError(`${name} has length ${a.length}, expected B·T = ${B * T}`);
    }
  }
  const n = Math.min(parts, B);
  const out: BatchPart[] = [];
  let from = 0;
  for (let i = 0; i < n; i++) {
    const rows = Math.floor(B / n) + (i < B % n ? 1 : 0);
    const [a, b] = [from * T, (from + rows) * T];
    from += rows;
    const mask = batch.mask.slice(a, b);
    let weight = 0;
    for (const m of mask) weight += m;
    if (weight <= 0) continue;
    out.push({
      B: rows,
      weight,
      batch: {
        tokens: batch.tokens.slice(a, b),
        targets: batch.targets.slice(a, b),
        mask,
        ...(batch.positions ? { positions: batch.positions.slice(a, b) } : {}),
      },
    });
  }
  return out;
}

/** One part's result: its mean loss and gradient (weights' order), and its mask sum. */
export interface PartGrad {
  loss: number;
  grads: Float32Array[];
  weight: number;
}

/**
 * The loss and gradient of the whole batch from its parts: each part weighted by its share of
 * the mask, Sᵢ / Σ S.
 *
 * @param parts at least one part, all with the same gradient shapes
 * @returns the batch's mean loss and gradient (new arrays)
 * @throws {RangeError} when there is no part, the weights do not sum above 0 or shapes differ
 */
export function combineParts(parts: PartGrad[]): { loss: number; grads: Float32Array[] } {
  if (parts.length === 0) throw new RangeError("combineParts: no part");
  const total = parts.reduce((s, p) => s + p.weight, 0);
  if (!(total > 0)) throw new RangeError("combineParts: the parts' mask weights sum to 0");
  const grads = parts[0]!.grads.map((g) => new Float32Array(g.length));
  let loss = 0;
  for (const p of parts) {
    if (p.grads.length !== grads.length) {
      throw new RangeError(`combineParts: ${p.grads.length} gradients, expected ${grads.length}`);
    }
    const s = p.weight / total;
    loss += s * p.loss;
    p.grads.forEach((g, k) => {
      const out = grads[k]!;
      if (g.length !== out.length) {
        throw new RangeError(
          `combineParts: gradient ${k} has ${g.length} entries, not ${out.length}`,
        );
      }
      for (let i = 0; i < g.length; i++) out[i]! += s * g[i]!;
    });
  }
  return { loss, grads };
}

/** What the main thread sends a worker for one part. */
export interface GradRequest {
  config: ModelConfig;
  /** the model's weights in `namedWeights` order */
  weights: Float32Array[];
  batch: Batch;
  B: number;
  T: number;
}

/** A worker's answer: the part's loss and gradient, or the error it met. */
export type GradReply = { loss: number; grads: Float32Array[] } | { error: string };

/**
 * A pool of gradient workers (`grad_worker.ts`), one jax-js instance each. Workers start once
 * and keep their compiled programs between steps; `close` ends them.
 *
 * @example Two workers share a batch of two sequences (training: `train` in train.ts)
 * ```ts ignore
 * const pool = new GradPool(2);
 * const { loss, grads } = await pool.lossAndGrad(config, weights, batch, 2, 2048);
 * pool.close();
 * ```
 */
export class GradPool implements Disposable {
  readonly #workers: Worker[];

  /**
   * Starts `size` workers.
   * @throws {RangeError} when `size` is not an integer ≥ 2 (one part needs no pool)
   */
  constructor(size: number) {
    if (!Number.isInteger(size) || size < 2) {
      throw new RangeError(`workers: expected an integer ≥ 2, got ${size}`);
    }
    const url = new URL("./grad_worker.ts", import.meta.url).href;
    this.#workers = Array.from({ length: size }, () => new Worker(url, { type: "module" }));
  }

  /** Workers in the pool. */
  get size(): number {
    return this.#workers.length;
  }

  /**
   * The masked mean loss of a batch and its gradient with respect to every weight, the batch's
   * sequences shared out among the workers.
   *
   * @param config the architecture
   * @param weights the weights in `namedWeights` order (copied to each worker)
   * @param batch tokens, targets, mask (and positions), B·T each
   * @param B sequences
   * @param T tokens per sequence
   * @returns the loss and one gradient array per weight
   * @throws {RangeError} on an all-zero mask; {Error} with a worker's message when one fails
   */
  async lossAndGrad(
    config: ModelConfig,
    weights: Float32Array[],
    batch: Batch,
    B: number,
    T: number,
  ): Promise<{ loss: number; grads: Float32Array[] }> {
    const parts = splitBatch(batch, B, T, this.#workers.length);
    if (parts.length === 0) throw new RangeError("mask selects no position (its sum is 0)");
    // every reply is awaited before an error is thrown, so none arrives during a later call
    const settled = await Promise.allSettled(parts.map((p, i) => {
      const w = this.#workers[i]!;
      return new Promise<PartGrad>((resolve, reject) => {
        w.onmessage = (e: MessageEvent<GradReply>) => {
          const r = e.data;
          if ("error" in r) reject(new Error(`gradient worker ${i}: ${r.error}`));
          else resolve({ loss: r.loss, grads: r.grads, weight: p.weight });
        };
        w.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`gradient worker ${i}: ${e.message}`));
        };
        const req: GradRequest = { config, weights, batch: p.batch, B: p.B, T };
        w.postMessage(req);
      });
    }));
    const failed = settled.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    return combineParts(settled.map((s) => (s as PromiseFulfilledResult<PartGrad>).value));
  }

  /** Ends every worker. */
  close(): void {
    for (const w of this.#workers) w.terminate();
  }

  /** `close`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
