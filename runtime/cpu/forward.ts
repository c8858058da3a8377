/**
 * The LLaMA-family forward pass on the CPU. Reads like the architecture: embed → L × (RMSNorm →
 * attention → residual → RMSNorm → SwiGLU MLP → residual) → RMSNorm → logits.
 *
 * A step runs a ragged batch: each sequence brings its own cache and any number of new tokens
 * (a prompt, a chunk of one on top of an existing cache, or one decoded token). The linear
 * layers see all new tokens of all sequences as one (ΣT, C) matrix, so no padding is needed;
 * attention runs per sequence against its own cache.
 *
 * @module
 */
import type { Model } from "../model.ts";
import type { Engine } from "./engine.ts";
import { tsEngine } from "./engine_ts.ts";
import { DenseKvCache, type KvCache } from "./kv_cache.ts";
import {
  addBias,
  addInPlace,
  applyRope,
  embedTokens,
  rmsnorm,
  ropeInvFreq,
  siluMul,
} from "./ops.ts";

/** One sequence's part of a batched step. */
export interface StepInput {
  /** The sequence's KV cache; the step appends to it. */
  cache: KvCache;
  /** New tokens, appended after `cache.length` tokens. */
  tokens: ArrayLike<number>;
}

/** Which logits a step returns for each sequence. */
export type LogitsWanted = "last" | "all" | "none";

/** Runs a model on the CPU with a chosen matrix-product engine. */
export class CpuModel {
  readonly #invFreq: Float64Array;

  /**
   * A runner for a model.
   * @param model configuration and float32 weights
   * @param engine the matrix-product engine (see `fastEngine()` in engine.ts)
   */
  constructor(readonly model: Model, readonly engine: Engine = tsEngine) {
    this.#invFreq = ropeInvFreq(model.config);
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
    const F = config.intermediateSize, V = config.vocabSize, eps = config.rmsNormEps;
    const engine = this.engine;
    const starts: number[] = [];
    let T = 0;
    for (const s of batch) {
      starts.push(T);
      T += s.tokens.length;
    }
    // activations, (T, ·)
    const x = new Float32Array(T * C);
    const h = new Float32Array(T * C);
    const q = new Float32Array(T * NH * HS);
    const k = new Float32Array(T * NKV * HS);
    const v = new Float32Array(T * NKV * HS);
    const att = new Float32Array(T * NH * HS);
    const proj = new Float32Array(T * C);
    const gate = new Float32Array(T * F);
    const up = new Float32Array(T * F);
    const positions = new Int32Array(T);
    batch.forEach((s, b) => {
      embedTokens(x.subarray(starts[b]! * C), weights.embed, s.tokens, C, V);
      for (let t = 0; t < s.tokens.length; t++) positions[starts[b]! + t] = s.cache.length + t;
    });

    for (const [l, w] of weights.layers.entries()) {
      // attention block
      rmsnorm(h, x, w.inputNorm, T, C, eps);
      await engine.matmulT(q, h, w.wq, T, C, NH * HS, true);
      await engine.matmulT(k, h, w.wk, T, C, NKV * HS, true);
      await engine.matmulT(v, h, w.wv, T, C, NKV * HS, true);
      if (w.bq) addBias(q, w.bq, T, NH * HS);
      if (w.bk) addBias(k, w.bk, T, NKV * HS);
      if (w.bv) addBias(v, w.bv, T, NKV * HS);
      applyRope(q, positions, this.#invFreq, T, NH, HS);
      applyRope(k, positions, this.#invFreq, T, NKV, HS);
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
      await engine.matmulT(proj, att, w.wo, T, NH * HS, C, true);
      addInPlace(x, proj, T * C);
      // MLP block
      rmsnorm(h, x, w.postNorm, T, C, eps);
      await engine.matmulT(gate, h, w.wGate, T, C, F, true);
      await engine.matmulT(up, h, w.wUp, T, C, F, true);
      siluMul(gate, gate, up, T * F);
      await engine.matmulT(proj, gate, w.wDown, T, F, C, true);
      addInPlace(x, proj, T * C);
    }
    for (const s of batch) s.cache.commit(s.tokens.length);
    if (wanted === "none") return batch.map(() => new Float32Array(0));

    return await Promise.all(batch.map(async (s, b) => {
      const n = s.tokens.length;
      const first = wanted === "last" ? starts[b]! + n - 1 : starts[b]!;
      const rows = wanted === "last" ? Math.min(n, 1) : n;
      const xs = x.subarray(first * C, (first + rows) * C);
      const hn = new Float32Array(rows * C);
      rmsnorm(hn, xs, weights.finalNorm, rows, C, eps);
      const logits = new Float32Array(rows * V);
      await engine.matmulT(logits, hn, weights.lmHead, rows, C, V, true);
      return logits;
    }));
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
  model: Model,
  tokens: ArrayLike<number>,
  engine: Engine = tsEngine,
): Promise<Float32Array> {
  const cpu = new CpuModel(model, engine);
  const cache = cpu.newCache(tokens.length);
  return (await cpu.step([{ cache, tokens }], "all"))[0]!;
}
