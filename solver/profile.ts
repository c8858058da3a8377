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
import { initJax } from "../runtime/autodiff/jax_model.ts";
import { type InfluenceDevice, layerInfluence } from "../runtime/autodiff/influence.ts";
import type { Engine } from "../runtime/cpu/engine.ts";
import type { Model, Weight } from "../runtime/model.ts";
import type { CalibrationSample } from "../data/calibration.ts";
import { type BandMode, droppedInfluence, type Rule } from "./rules.ts";

/**
 * Longest profiled length. The profile runs a layer and a query block at a time
 * (runtime/autodiff/influence.ts), so device memory stays near one layer's weights plus a few
 * 64 MiB blocks at any length; the host keeps (L + 1)·T·C floats of layer inputs, and time grows
 * as T² (measured: `deno task bench scale`).
 */
export const MAX_PROFILE_LENGTH = 16384;

/**
 * Longest sequence whose DuoAttention gate distillation fits WebAssembly's 4 GiB (its gradient is
 * one jax-js program that keeps every layer's T×T attention; the training loss's gradient goes
 * layer by layer past this length, `lossAndGradByLayer` in runtime/autodiff/jax_model.ts).
 */
export const MAX_GRADIENT_LENGTH = 2048;

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

/** Options of {@linkcode profileInfluence}. */
export interface ProfileOptions {
  /** Progress: samples done. */
  onSample?: (done: number) => void;
  /** Sum E itself (the first-order loss change) instead of |E| (the reference's). */
  signed?: boolean;
  /**
   * Where the layers' gradients run: "cpu" on the CPU engine, "wasm" or "webgpu" in jax-js.
   * @default "cpu" when an engine is given, else "wasm"
   */
  device?: InfluenceDevice;
  /** The CPU engine of the output head's products, and of the layers on "cpu". */
  engine?: Engine;
  /** Query rows per block (a multiple of `block`); default: by a 64 MiB budget per array. */
  queryBlock?: number;
}

/**
 * Profiles a model on calibration samples of one length, a layer and a query block at a time
 * (runtime/autodiff/influence.ts).
 * @param model the weights, float32 or compact (F16/BF16 matrices stay compact)
 * @param samples sequences of equal length T
 * @param block tile size in tokens
 * @param opts progress, sign, device, head engine, query block
 */
export async function profileInfluence(
  model: Model<Weight>,
  samples: CalibrationSample[],
  block: number,
  opts: ProfileOptions = {},
): Promise<BlockInfluence> {
  if (samples.length === 0) throw new RangeError("profileInfluence: no samples");
  const T = samples[0]!.tokens.length;
  const { numLayers: L, numKvHeads: NKV } = model.config;
  const nb = Math.ceil(T / block);
  const values = Array.from(
    { length: L },
    () => Array.from({ length: NKV }, () => new Float64Array(nb * nb)),
  );
  const device = opts.device ?? (opts.engine ? "cpu" : "wasm");
  if (device !== "cpu") await initJax(device);
  for (const [s, sample] of samples.entries()) {
    if (sample.tokens.length !== T) {
      throw new RangeError(
        `profileInfluence: sample ${s} has ${sample.tokens.length} tokens, expected ${T}`,
      );
    }
    await layerInfluence(model, sample, (layer, tiles) => {
      tiles.forEach((t, g) => {
        const acc = values[layer]![g]!;
        for (let k = 0; k < acc.length; k++) acc[k]! += t[k]! / samples.length;
      });
    }, {
      block,
      device,
      signed: opts.signed ?? false,
      ...(opts.engine ? { engine: opts.engine } : {}),
      ...(opts.queryBlock ? { queryBlock: opts.queryBlock } : {}),
    });
    opts.onSample?.(s + 1);
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
