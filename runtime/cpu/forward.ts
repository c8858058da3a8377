/**
 * The LLaMA-family forward pass on the CPU. Reads like the architecture: embed → L × (RMSNorm →
 * attention → residual → RMSNorm → SwiGLU MLP → residual) → RMSNorm → logits.
 *
 * A step runs a ragged batch: each sequence brings its own cache and any number of new tokens
 * (a prompt, a chunk of one on top of an existing cache, or one decoded token). The linear
 * layers see all new tokens of all sequences as one (ΣT, C) matrix, so no padding is needed;
 * attention runs per sequence against its own cache. The blocks around attention are the
 * engine's, prepared once per model (`Engine.prepare`: fused QKV and gate/up, and on the native
 * engine one session per block).
 *
 * @module
 */
import type { Model, Weight } from "../model.ts";
import type { Engine, LayerKernels } from "./engine.ts";
import { tsEngine } from "./engine_ts.ts";
import { DenseKvCache, type KvCache } from "./kv_cache.ts";
import { embedTokens } from "./ops.ts";

/** One sequence's part of a batched step. */
export interface StepInput {
  /** The sequence's KV cache; the step appends to it. */
  cache: KvCache;
  /** New tokens, appended after `cache.length` tokens. */
  tokens: ArrayLike<number>;
}

/** Which logits a step returns for each sequence. */
export type LogitsWanted = "last" | "all" | "none";

/**
 * Runs a model on the CPU with a chosen matrix-product engine. `W` is the storage of the model's
 * matrices (`Weight`, runtime/model.ts): a float32 model gives `CpuModel<Float32Array>`, whose
 * `model` is a plain `Model`.
 */
export class CpuModel<W extends Weight = Weight> {
  readonly #layers: LayerKernels;

  /**
   * A runner for a model.
   * @param model configuration and weights, float32 or with F16/BF16 matrices kept compact (an
   *   engine may copy float32 weights: they must not change afterwards, except on the
   *   TypeScript engine)
   * @param engine the matrix-product engine (see `fastEngine()` in engine_auto.ts)
   */
  constructor(readonly model: Model<W>, readonly engine: Engine = tsEngine) {
    this.#layers = engine.prepare(model);
  }

  /** A new, empty full-attention cache. */
  newCache(capacity = 256): KvCache {
    return new DenseKvCache(this.model.config, capacity);
  }

  /**
   * Runs the new tokens of every sequence through the model, appending them to the caches.
   * @returns per sequence: logits (1, V) for "last", (T, V) for "all", empty for "none"
   */
  async step(batch: StepInput[], wanted: LogitsWanted = "last"): Promise<Float32Array[]> {
    const { config, weights } = this.model;
    const { hiddenSize: C, numHeads: NH, numKvHeads: NKV, headDim: HS } = config;
    const V = config.vocabSize;
    const engine = this.engine, layers = this.#layers;
    const starts: number[] = [];
    let T = 0;
    for (const s of batch) {
      starts.push(T);
      T += s.tokens.length;
    }
    // activations, (T, ·)
    const x = new Float32Array(T * C);
    const q = new Float32Array(T * NH * HS);
    const k = new Float32Array(T * NKV * HS);
    const v = new Float32Array(T * NKV * HS);
    const att = new Float32Array(T * NH * HS);
    const positions = new Int32Array(T);
    batch.forEach((s, b) => {
      embedTokens(x.subarray(starts[b]! * C), weights.embed, s.tokens, C, V);
      for (let t = 0; t < s.tokens.length; t++) positions[starts[b]! + t] = s.cache.length + t;
    });

    const L = weights.layers.length;
    // rows whose logits the step returns, and where each sequence's start among them
    const rows: number[] = [];
    const firstRow: number[] = [];
    batch.forEach((s, b) => {
      firstRow.push(rows.length);
      const n = s.tokens.length;
      if (wanted === "all") { for (let t = 0; t < n; t++) rows.push(starts[b]! + t); }
      else if (wanted === "last" && n > 0) rows.push(starts[b]! + n - 1);
    });
    const logits = new Float32Array(rows.length * V);
    await layers.attentionInputs(0, x, positions, T, q, k, v);
    for (let l = 0; l < L; l++) {
      // attention block: q/k/v came with the previous call; each sequence's cache
      for (const [b, s] of batch.entries()) {
        const t0 = starts[b]!, n = s.tokens.length;
        if (n === 0) continue;
        await s.cache.attend(
          l,
          att.subarray(t0 * NH * HS, (t0 + n) * NH * HS),
          q.subarray(t0 * NH * HS, (t0 + n) * NH * HS),
          k.subarray(t0 * NKV * HS, (t0 + n) * NKV * HS),
          v.subarray(t0 * NKV * HS, (t0 + n) * NKV * HS),
          n,
          engine,
        );
      }
      // output projection, residual, MLP block; then the next layer's q/k/v or the logits
      if (l + 1 < L) {
        await layers.attentionOutput(l, x, att, T, { positions, q, k, v });
      } else if (rows.length > 0) {
        await layers.attentionOutput(l, x, att, T, { rows: Int32Array.from(rows), logits });
      }
    }
    for (const s of batch) s.cache.commit(s.tokens.length);
    return batch.map((_, b) => {
      const end = b + 1 < batch.length ? firstRow[b + 1]! : rows.length;
      return logits.slice(firstRow[b]! * V, end * V);
    });
  }
}

/**
 * The logits of every position of one sequence, from an empty cache.
 *
 * @param model configuration and weights
 * @param tokens token ids
 * @param engine matrix-product engine (default: plain TypeScript)
 * @returns (T, V) logits
 *
 * @example
 * ```ts
 * import { forwardLogits } from "./forward.ts";
 * import { randomModel, tinyConfig } from "../random_model.ts";
 * const model = randomModel(tinyConfig(), 1);
 * const logits = await forwardLogits(model, [1, 5, 9]);
 * console.log(logits.length === 3 * model.config.vocabSize);
 * ```
 */
export async function forwardLogits(
  model: Model<Weight>,
  tokens: ArrayLike<number>,
  engine: Engine = tsEngine,
): Promise<Float32Array> {
  const cpu = new CpuModel(model, engine);
  const cache = cpu.newCache(tokens.length);
  return (await cpu.step([{ cache, tokens }], "all"))[0]!;
}
