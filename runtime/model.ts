/**
 * The in-memory shape of a LLaMA-family model: its configuration and its weights.
 *
 * Dimension letters used throughout the runtime:
 * B batch, T time (tokens), C channels (hidden size), NH query heads, NKV key/value heads,
 * HS head size, F feed-forward size, L layers, V vocabulary.
 *
 * Matrices are row-major and stored the way Hugging Face stores them: a linear layer's weight
 * has shape (out, in), so `y = x · Wᵀ`.
 *
 * Weight storage: a {@linkcode Model} holds float32 matrices (what training, tests and the ONNX
 * export use). A `Model<Weight>` may instead keep a checkpoint's F16 or BF16 matrices as their
 * stored 16-bit patterns ({@linkcode HalfWeight}), half the bytes of float32: the CPU runtime
 * widens a few rows at a time where it multiplies (`runtime/cpu/weight_matmul.ts`), the profiler
 * one layer at a time, and the GPU uploads them as they are. Norm weights and biases are always
 * float32 (they are small and read element by element).
 *
 * @module
 */
import { f16Table, f32BitsToBf16Bits, f32BitsToF16Bits } from "./safetensors.ts";

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

/** A half-precision matrix kept as the 16-bit patterns a checkpoint stores. */
export interface HalfWeight {
  /** `F16` (IEEE 754 binary16) or `BF16` (the upper half of a float32). */
  readonly dtype: "F16" | "BF16";
  /** One pattern per element, row-major, in host byte order. */
  readonly bits: Uint16Array;
}

/** A weight matrix: float32 values, or half-precision patterns widened where they are used. */
export type Weight = Float32Array | HalfWeight;

/** One transformer block's weights; `W` is the storage of the matrices. */
export interface LayerWeights<W extends Weight = Float32Array> {
  /** (C) */
  inputNorm: Float32Array;
  /** (NH*HS, C) */
  wq: W;
  /** (NKV*HS, C) */
  wk: W;
  /** (NKV*HS, C) */
  wv: W;
  /** (NH*HS) or null */
  bq: Float32Array | null;
  /** (NKV*HS) or null */
  bk: Float32Array | null;
  /** (NKV*HS) or null */
  bv: Float32Array | null;
  /** (C, NH*HS) */
  wo: W;
  /** (C) */
  postNorm: Float32Array;
  /** (F, C) */
  wGate: W;
  /** (F, C) */
  wUp: W;
  /** (C, F) */
  wDown: W;
}

/** All weights of a model; `W` is the storage of the matrices (float32 by default). */
export interface ModelWeights<W extends Weight = Float32Array> {
  /** (V, C) */
  embed: W;
  /** One entry per transformer block, L in all. */
  layers: LayerWeights<W>[];
  /** (C) */
  finalNorm: Float32Array;
  /** (V, C); the same object as `embed` when embeddings are tied. */
  lmHead: W;
}

/**
 * A configuration and its weights. `Model` holds float32 matrices; `Model<Weight>` may hold
 * half-precision ones too, and every function that takes a `Model<Weight>` takes a `Model`.
 */
export interface Model<W extends Weight = Float32Array> {
  /** The shape and hyperparameters. */
  config: ModelConfig;
  /** The weights, matching `config`. */
  weights: ModelWeights<W>;
}

/** The names of a layer's matrices (the fields that may be half precision). */
export const LAYER_MATRICES = ["wq", "wk", "wv", "wo", "wGate", "wUp", "wDown"] as const;

/** Whether a weight is kept as half-precision patterns. */
export function isHalf(w: Weight): w is HalfWeight {
  return !(w instanceof Float32Array);
}

/** Whether every matrix of a model is float32 (nothing to widen). */
export function allFloat32(model: Model<Weight>): model is Model {
  return matrices(model.weights).every((w) => !isHalf(w));
}

/** Elements of a weight. */
export function weightLength(w: Weight): number {
  return isHalf(w) ? w.bits.length : w.length;
}

/** Bytes a weight occupies in memory (2 per element for half precision, 4 for float32). */
export function weightBytes(w: Weight): number {
  return isHalf(w) ? w.bits.byteLength : w.byteLength;
}

/**
 * Writes elements `start .. start + count` of a weight as float32 into `out[0 .. count)`: a
 * copy for float32, an exact widening for F16 (a table) and BF16 (a shift).
 *
 * @example
 * ```ts
 * import { widenInto } from "./model.ts";
 * const out = new Float32Array(2);
 * widenInto(out, { dtype: "BF16", bits: Uint16Array.from([0x3f80, 0xc000, 0x4040]) }, 1, 2);
 * console.log(out); // Float32Array(2) [ -2, 3 ]
 * ```
 *
 * @param out receives `count` values
 * @param w the weight
 * @param start the first element
 * @param count how many elements (default: to the end)
 * @throws {RangeError} when the range leaves the weight or does not fit `out`
 */
export function widenInto(
  out: Float32Array,
  w: Weight,
  start = 0,
  count = weightLength(w) - start,
): void {
  if (start < 0 || count < 0 || start + count > weightLength(w) || count > out.length) {
    throw new RangeError(
      `widenInto: elements [${start}, ${start + count}) of a ${weightLength(w)}-element ` +
        `weight into ${out.length} values`,
    );
  }
  if (!isHalf(w)) {
    out.set(w.subarray(start, start + count));
    return;
  }
  const src = w.bits;
  if (w.dtype === "BF16") {
    const u32 = new Uint32Array(out.buffer, out.byteOffset, count);
    for (let i = 0; i < count; i++) u32[i] = src[start + i]! << 16;
  } else {
    const table = f16Table();
    for (let i = 0; i < count; i++) out[i] = table[src[start + i]!]!;
  }
}

/**
 * A weight as float32: the array itself when it already is, otherwise a new widened copy.
 *
 * @example
 * ```ts
 * import { widen } from "./model.ts";
 * console.log(widen({ dtype: "F16", bits: Uint16Array.from([0x3c00, 0x4000]) }));
 * // Float32Array(2) [ 1, 2 ]
 * ```
 */
export function widen(w: Weight): Float32Array {
  if (!isHalf(w)) return w;
  const out = new Float32Array(w.bits.length);
  widenInto(out, w);
  return out;
}

/** Every matrix of a model, each once (a tied head is the embedding). */
function matrices<W extends Weight>(w: ModelWeights<W>): W[] {
  const out = [w.embed];
  if (w.lmHead !== w.embed) out.push(w.lmHead);
  for (const l of w.layers) for (const k of LAYER_MATRICES) out.push(l[k]);
  return out;
}

/**
 * Bytes of a model's weights in memory: matrices in their storage, norms and biases as float32.
 * Tied embeddings are counted once (`runtime/model_test.ts`).
 */
export function modelBytes(model: Model<Weight>): number {
  const w = model.weights;
  let n = matrices(w).reduce((a, m) => a + weightBytes(m), w.finalNorm.byteLength);
  for (const l of w.layers) {
    n += l.inputNorm.byteLength + l.postNorm.byteLength;
    for (const b of [l.bq, l.bk, l.bv]) n += b?.byteLength ?? 0;
  }
  return n;
}

/** A model's weights with every matrix mapped by `f` (tied embeddings stay one object). */
export function mapMatrices<A extends Weight, B extends Weight>(
  model: Model<A>,
  f: (w: A) => B,
): Model<B> {
  const w = model.weights;
  const embed = f(w.embed);
  const layers = w.layers.map((l): LayerWeights<B> => ({
    ...l,
    wq: f(l.wq),
    wk: f(l.wk),
    wv: f(l.wv),
    wo: f(l.wo),
    wGate: f(l.wGate),
    wUp: f(l.wUp),
    wDown: f(l.wDown),
  }));
  const lmHead = w.lmHead === w.embed ? embed : f(w.lmHead);
  return { config: model.config, weights: { embed, layers, finalNorm: w.finalNorm, lmHead } };
}

/**
 * A float32 matrix rounded to half precision (to nearest, ties to even), as a checkpoint of
 * that dtype would store it.
 *
 * @example
 * ```ts
 * import { toHalf } from "./model.ts";
 * console.log(toHalf(Float32Array.from([1, -2]), "BF16").bits); // Uint16Array(2) [ 16256, 49152 ]
 * ```
 */
export function toHalf(w: Float32Array, dtype: HalfWeight["dtype"]): HalfWeight {
  const src = new Uint32Array(w.buffer, w.byteOffset, w.length);
  const bits = new Uint16Array(w.length);
  const round = dtype === "F16" ? f32BitsToF16Bits : f32BitsToBf16Bits;
  for (let i = 0; i < w.length; i++) bits[i] = round(src[i]!);
  return { dtype, bits };
}

/**
 * A model with every matrix widened to float32 (matrices already float32 are shared, not
 * copied). For code that needs plain arrays (the ONNX export, training); the runtime itself
 * takes compact weights.
 */
export function widenModel(model: Model<Weight>): Model {
  return mapMatrices(model, widen);
}

/** A field of the model's weights: one of `LayerWeights`, or `embed`, `finalNorm`, `lmHead`. */
export type Slot = keyof LayerWeights | "embed" | "finalNorm" | "lmHead";

/**
 * Where a weight goes in the model, for a {@linkcode WeightSource}: its slot (a field of
 * `LayerWeights`, or `embed`, `finalNorm`, `lmHead`), its layer (null outside the layers) and
 * its number of elements.
 */
export interface WeightPlace {
  /** The field the weight fills. */
  slot: Slot;
  /** The layer, or null for the embedding, final norm and output head. */
  layer: number | null;
  /** Elements, the product of its shape. */
  length: number;
}

/**
 * The values of one weight, in row-major order, in chunks of any size: how
 * `writeModel` (hf.ts) gets weights without holding a whole model in memory.
 */
export type WeightSource = (place: WeightPlace) => Iterable<Float32Array>;
