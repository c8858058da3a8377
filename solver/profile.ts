/**
 * Attention influence profiling (MoA §3): from one backward pass per calibration sample, how
 * much the loss would rise if a head stopped attending to each (query block, key block) pair.
 *
 * Dropping entry (i, j) of a head's attention row and renormalising the row changes the loss by,
 * to first order,
 *
 *   E_ij = −A_ij / (1 − A_ij) · (G_ij − Σ_n G_in · A_in),      G = ∂L/∂A.
 *
 * |E_ij| over causal entries is summed into block × block tiles, summed over the query heads that
 * share a kv head (grouped-query attention is handled natively: one rule per kv head, so no cache
 * is duplicated), and averaged over samples. The loss of an elastic rule at length N is then the
 * sum of the tiles it drops (`droppedInfluence` in rules.ts), with the band of the span semantics
 * the plan will run with (`bandModeOf` in rules.ts).
 *
 * @module
 */
import { attentionGradsByLayer, type Params } from "../runtime/autodiff/jax_model.ts";
import type { ModelConfig } from "../runtime/model.ts";
import type { CalibrationSample } from "../data/calibration.ts";
import { type BandMode, droppedInfluence, type Rule } from "./rules.ts";

/** Longest profiled length the WebAssembly profiler can hold (measured: 1.2 GB at 2048). */
export const MAX_PROFILE_LENGTH = 2048;

/** Block influence of every kv head at one length, averaged over samples. */
export interface BlockInfluence {
  /** Sequence length N of the samples. */
  length: number;
  /** Tile size in tokens. */
  block: number;
  /** nb = ⌈N / block⌉ */
  numBlocks: number;
  /** [layer][kv head] → row-major (nb, nb) mean Σ|E| per tile */
  values: Float64Array[][];
  /** Calibration samples averaged over. */
  samples: number;
}

/** Keeps 1 − A away from 0 where a row puts all its mass on one key. */
const MIN_REST = 1e-6;

/**
 * Σ|E_ij| per (query block, key block) tile for one layer, summed over the query heads of each
 * kv head.
 * @param probs (NH, T, T) attention probabilities, zero above the diagonal
 * @param grads (NH, T, T) ∂L/∂A
 * @returns per kv head, (nb, nb) tiles
 */
export function layerBlockInfluence(
  probs: Float32Array,
  grads: Float32Array,
  T: number,
  NH: number,
  NKV: number,
  block: number,
  signed = false,
): Float64Array[] {
  const nb = Math.ceil(T / block);
  const G = NH / NKV;
  const out = Array.from({ length: NKV }, () => new Float64Array(nb * nb));
  for (let h = 0; h < NH; h++) {
    const tiles = out[Math.floor(h / G)]!;
    for (let i = 0; i < T; i++) {
      const row = (h * T + i) * T;
      let dot = 0; // Σ_n G_in · A_in
      for (let n = 0; n <= i; n++) dot += grads[row + n]! * probs[row + n]!;
      const qb = Math.floor(i / block) * nb;
      for (let j = 0; j <= i; j++) {
        const a = probs[row + j]!;
        if (a === 0) continue;
        // E_ij = −A_ij / (1 − A_ij) · (G_ij − Σ_n G_in A_in): the first-order loss change
        const e = -(a / Math.max(MIN_REST, 1 - a)) * (grads[row + j]! - dot);
        tiles[qb + Math.floor(j / block)]! += signed ? e : Math.abs(e);
      }
    }
  }
  return out;
}

/**
 * Profiles a model on calibration samples of one length.
 * @param samples sequences of equal length T
 * @param block tile size in tokens
 * @param onSample progress: samples done
 * @param signed sum E itself (the first-order loss change) instead of |E| (the reference's)
 */
export async function profileInfluence(
  config: ModelConfig,
  params: Params,
  samples: CalibrationSample[],
  block: number,
  onSample: (done: number) => void = () => {},
  signed = false,
): Promise<BlockInfluence> {
  if (samples.length === 0) throw new RangeError("profileInfluence: no samples");
  const T = samples[0]!.tokens.length;
  const { numLayers: L, numHeads: NH, numKvHeads: NKV } = config;
  const nb = Math.ceil(T / block);
  const values = Array.from(
    { length: L },
    () => Array.from({ length: NKV }, () => new Float64Array(nb * nb)),
  );
  for (const [s, sample] of samples.entries()) {
    if (sample.tokens.length !== T) {
      throw new RangeError(
        `profileInfluence: sample ${s} has ${sample.tokens.length} tokens, expected ${T}`,
      );
    }
    await attentionGradsByLayer(config, params, sample, T, (layer, probs, grads) => {
      layerBlockInfluence(probs, grads, T, NH, NKV, block, signed).forEach((tiles, g) => {
        const acc = values[layer]![g]!;
        for (let k = 0; k < acc.length; k++) acc[k]! += tiles[k]! / samples.length;
      });
    });
    onSample(s + 1);
  }
  return { length: T, block, numBlocks: nb, values, samples: samples.length };
}

/**
 * The estimated loss increase of every rule for every kv head at the influence's length.
 * @param mode which band each query block is charged (see `BandMode` in rules.ts): `static`
 *   (default, the reference profiler's), `elastic` (the `per-query` cache's) or `reference` (the
 *   reference runtime's cache); `makePlan` charges the band of the plan's span semantics
 * @returns [layer·NKV + g][rule]
 */
export function ruleLosses(
  influence: BlockInfluence,
  rules: readonly Rule[],
  sink: number,
  mode: BandMode = "static",
): number[][] {
  return influence.values.flatMap((heads) =>
    heads.map((tiles) =>
      rules.map((r) => droppedInfluence(r, influence.length, sink, influence.block, tiles, mode))
    )
  );
}
