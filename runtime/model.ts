/**
 * The in-memory shape of a LLaMA-family model: its configuration and its float32 weights.
 *
 * Dimension letters used throughout the runtime:
 * B batch, T time (tokens), C channels (hidden size), NH query heads, NKV key/value heads,
 * HS head size, F feed-forward size, L layers, V vocabulary.
 *
 * Matrices are row-major and stored the way Hugging Face stores them: a linear layer's weight
 * has shape (out, in), so `y = x · Wᵀ`.
 *
 * @module
 */

/** Model families this runtime reads; all share RMSNorm, RoPE, SwiGLU and grouped-query attention. */
export type ModelType = "llama" | "mistral" | "qwen2";

/** RoPE frequency scaling as declared by `rope_scaling` in config.json. */
export type RopeScaling =
  | { type: "linear"; factor: number }
  | {
    type: "llama3";
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  };

/** A validated, normalised `config.json`. */
export interface ModelConfig {
  /** `model_type`: the architecture family. */
  modelType: ModelType;
  /** V */
  vocabSize: number;
  /** C */
  hiddenSize: number;
  /** F */
  intermediateSize: number;
  /** L */
  numLayers: number;
  /** NH */
  numHeads: number;
  /** NKV; equals NH for multi-head attention. */
  numKvHeads: number;
  /** HS; usually C / NH. */
  headDim: number;
  /** ε of RMSNorm. */
  rmsNormEps: number;
  /** RoPE base frequency. */
  ropeTheta: number;
  /** RoPE frequency scaling, or null for none. */
  ropeScaling: RopeScaling | null;
  /** The context length the model was trained for. */
  maxPositionEmbeddings: number;
  /** When true, the output projection reuses the token embedding. */
  tieWordEmbeddings: boolean;
  /** Whether q/k/v projections carry biases (always true for qwen2). */
  attentionBias: boolean;
  /** The token prepended to every prompt, or null when the model has none. */
  bosTokenId: number | null;
  /** Generation stops at any of these. */
  eosTokenIds: number[];
}

/** One transformer block's weights. */
export interface LayerWeights {
  /** (C) */
  inputNorm: Float32Array;
  /** (NH*HS, C) */
  wq: Float32Array;
  /** (NKV*HS, C) */
  wk: Float32Array;
  /** (NKV*HS, C) */
  wv: Float32Array;
  /** (NH*HS) or null */
  bq: Float32Array | null;
  /** (NKV*HS) or null */
  bk: Float32Array | null;
  /** (NKV*HS) or null */
  bv: Float32Array | null;
  /** (C, NH*HS) */
  wo: Float32Array;
  /** (C) */
  postNorm: Float32Array;
  /** (F, C) */
  wGate: Float32Array;
  /** (F, C) */
  wUp: Float32Array;
  /** (C, F) */
  wDown: Float32Array;
}

/** All weights of a model, as float32. */
export interface ModelWeights {
  /** (V, C) */
  embed: Float32Array;
  /** One entry per transformer block, L in all. */
  layers: LayerWeights[];
  /** (C) */
  finalNorm: Float32Array;
  /** (V, C); the same array as `embed` when embeddings are tied. */
  lmHead: Float32Array;
}

/** A configuration and its weights. */
export interface Model {
  /** The shape and hyperparameters. */
  config: ModelConfig;
  /** The weights, matching `config`. */
  weights: ModelWeights;
}
