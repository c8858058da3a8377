/**
 * Randomly initialised models, for tests and for benchmarks of shapes we have no weights for.
 *
 * @module
 */
import type { LayerWeights, Model, ModelConfig } from "./model.ts";
import { Rng } from "./rng.ts";

/**
 * A small LLaMA config with sensible defaults; fields given override them.
 *
 * @example
 * ```ts
 * import { tinyConfig } from "./random_model.ts";
 * const c = tinyConfig({ numLayers: 2 });
 * console.log(c.numLayers, c.numKvHeads);
 * ```
 */
export function tinyConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  const base: ModelConfig = {
    modelType: "llama",
    vocabSize: 256,
    hiddenSize: 64,
    intermediateSize: 172,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 4096,
    tieWordEmbeddings: false,
    attentionBias: false,
    bosTokenId: 1,
    eosTokenIds: [2],
  };
  return { ...base, ...over };
}

function gaussian(rng: Rng, n: number, std: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * std;
  return a;
}

function nearOnes(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = 1 + 0.1 * rng.normal();
  return a;
}

/**
 * A model with Gaussian weights (std 0.02·scale, norms near 1), deterministic in `seed`.
 *
 * @param config the architecture
 * @param seed equal seeds give equal weights
 * @param scale multiplies the weight std; larger values give peakier attention
 * @returns a model ready for inference
 */
export function randomModel(config: ModelConfig, seed = 0, scale = 1): Model {
  const rng = new Rng(seed);
  const { hiddenSize: C, numHeads: NH, numKvHeads: NKV, headDim: HS } = config;
  const F = config.intermediateSize;
  const std = 0.02 * scale;
  const bias = (n: number) => config.attentionBias ? gaussian(rng, n, std) : null;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < config.numLayers; l++) {
    layers.push({
      inputNorm: nearOnes(rng, C),
      wq: gaussian(rng, NH * HS * C, std),
      wk: gaussian(rng, NKV * HS * C, std),
      wv: gaussian(rng, NKV * HS * C, std),
      bq: bias(NH * HS),
      bk: bias(NKV * HS),
      bv: bias(NKV * HS),
      wo: gaussian(rng, C * NH * HS, std),
      postNorm: nearOnes(rng, C),
      wGate: gaussian(rng, F * C, std),
      wUp: gaussian(rng, F * C, std),
      wDown: gaussian(rng, C * F, std),
    });
  }
  const embed = gaussian(rng, config.vocabSize * C, 1);
  const lmHead = config.tieWordEmbeddings ? embed : gaussian(rng, config.vocabSize * C, std);
  return { config, weights: { embed, layers, finalNorm: nearOnes(rng, C), lmHead } };
}
