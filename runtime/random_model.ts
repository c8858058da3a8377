/**
 * Randomly initialised models, for tests and for benchmarks of shapes we have no weights for.
 *
 * @module
 */
import type { LayerWeights, Model, ModelConfig, WeightPlace, WeightSource } from "./model.ts";
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

/** Elements per chunk of {@linkcode randomWeights} (even, so normal pairs never straddle). */
const RANDOM_CHUNK = 1 << 20;

const SLOT_ORDER = [
  "embed",
  "lmHead",
  "finalNorm",
  "inputNorm",
  "wq",
  "wk",
  "wv",
  "bq",
  "bk",
  "bv",
  "wo",
  "postNorm",
  "wGate",
  "wUp",
  "wDown",
] as const;

/**
 * Random weights of any size for {@linkcode writeModel} (hf.ts), generated a chunk at a time so a
 * checkpoint larger than memory can be written: matrices N(0, (0.02·scale)²), the embedding
 * N(0, 1), norms 1 + N(0, 0.1²), biases like matrices — the distributions of
 * {@linkcode randomModel}, from one stream per weight (seeded by `seed`, the slot and the layer),
 * so the values do not depend on the order weights are asked for. With tied embeddings the
 * output head is the embedding and is never asked for.
 *
 * @example
 * ```ts
 * import { randomWeights } from "./random_model.ts";
 * const source = randomWeights(1);
 * const [chunk] = source({ slot: "embed", layer: null, length: 4 });
 * console.log(chunk!.length); // 4
 * ```
 *
 * @param seed equal seeds give equal weights
 * @param scale multiplies the matrices' std
 * @returns the values of each weight, by place
 */
export function randomWeights(seed = 0, scale = 1): WeightSource {
  const stream = (p: WeightPlace) =>
    new Rng(
      (seed * 1_000_003 + ((p.layer ?? -1) + 1) * 101 + SLOT_ORDER.indexOf(p.slot)) >>> 0,
    );
  return function* (p: WeightPlace): Generator<Float32Array> {
    const rng = stream(p);
    const norm = p.slot === "inputNorm" || p.slot === "postNorm" || p.slot === "finalNorm";
    const [mean, std] = norm ? [1, 0.1] : p.slot === "embed" ? [0, 1] : [0, 0.02 * scale];
    const buf = new Float32Array(Math.min(RANDOM_CHUNK, p.length + (p.length % 2)));
    for (let at = 0; at < p.length; at += buf.length) {
      fillNormal(rng, buf, mean, std);
      yield buf.subarray(0, Math.min(buf.length, p.length - at));
    }
  };
}

/** Fills `out` (even length) with N(mean, std²) samples, two per Box–Muller draw. */
function fillNormal(rng: Rng, out: Float32Array, mean: number, std: number): void {
  for (let i = 0; i + 1 < out.length; i += 2) {
    const r = std * Math.sqrt(-2 * Math.log(1 - rng.next()));
    const a = 2 * Math.PI * rng.next();
    out[i] = mean + r * Math.cos(a);
    out[i + 1] = mean + r * Math.sin(a);
  }
}
