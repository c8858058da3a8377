/**
 * Export a {@link Model} to an ONNX graph (IR version 8, opset 17, standard ops only), for running
 * it in onnxruntime as an independent check of our own forward pass and as a dense baseline.
 *
 * Graph interface (L layers, per layer `l` in 0..L−1):
 * - inputs `input_ids` int64 (B, T); `past_key_l`, `past_value_l` float32 (B, NKV, P, HS), P ≥ 0.
 * - outputs `logits` float32 (B, T, V); `present_key_l`, `present_value_l` float32
 *   (B, NKV, P+T, HS). Keys are stored after RoPE, so a present feeds the next call's past.
 *
 * The new tokens sit at positions P..P+T−1 and query t sees keys 0..P+t. Positions must stay
 * below `maxPositions`, the number of rows of the RoPE tables.
 *
 * @module
 */
import type { LayerWeights, Model, ModelConfig } from "../model.ts";
import { GraphBuilder, MAX_PROTO_BYTES, transposed } from "./graph.ts";

/** Options of {@link exportOnnx}. */
export interface ExportOnnxOptions {
  /**
   * Rows of the RoPE cos/sin tables: positions P+T−1 must stay below it.
   * @default config.maxPositionEmbeddings
   */
  maxPositions?: number;
}

/**
 * Builds the ONNX model of a LLaMA-family {@link Model}: weights as initializers (linear layers
 * stored pre-transposed as (in, out)), a KV-cache interface, and RoPE tables of `maxPositions` rows.
 *
 * @example
 * ```ts
 * import { exportOnnx } from "./export.ts";
 * import { randomModel, tinyConfig } from "../random_model.ts";
 * const bytes = exportOnnx(randomModel(tinyConfig(), 0), { maxPositions: 64 });
 * console.log(bytes.length > 0);
 * ```
 *
 * @param model the configuration and float32 weights to export
 * @param opts export options; see {@link ExportOnnxOptions}
 * @returns the serialised `ModelProto`
 * @throws {Error} when `config.ropeScaling` is not null (not supported yet)
 * @throws {RangeError} when the shapes are inconsistent or the model exceeds 2 GiB
 */
export function exportOnnx(model: Model, opts: ExportOnnxOptions = {}): Uint8Array {
  const { config, weights } = model;
  const maxPositions = opts.maxPositions ?? config.maxPositionEmbeddings;
  checkConfig(config, maxPositions);
  const { numLayers: L, numKvHeads: NKV, headDim: HS } = config;
  const { hiddenSize: C, vocabSize: V } = config;
  if (weights.layers.length !== L) {
    throw new RangeError(
      `exportOnnx: weights.layers has ${weights.layers.length} layers, config.numLayers is ${L}`,
    );
  }
  const totalBytes = 4 * (weights.embed.length + weights.lmHead.length + 2 * maxPositions * HS +
    weights.layers.reduce((n, lw) => n + layerParamCount(lw), 0));
  if (totalBytes > MAX_PROTO_BYTES) {
    throw new RangeError(
      `exportOnnx: the weights take ${totalBytes} bytes, over the 2 GiB protobuf limit ` +
        `(external data is not supported)`,
    );
  }

  const g = new GraphBuilder("exportOnnx");

  // Graph inputs and outputs, with symbolic batch/sequence dimensions.
  g.input("input_ids", ["batch", "seq"], "int64");
  g.output("logits", ["batch", "seq", V]);
  for (let l = 0; l < L; l++) {
    for (const kind of ["key", "value"]) {
      g.input(`past_${kind}_${l}`, ["batch", NKV, "past", HS]);
      g.output(`present_${kind}_${l}`, ["batch", NKV, "total", HS]);
    }
  }

  const ctx = buildContext(g, config, maxPositions);

  // Token embedding: x = embed[input_ids].                                       (B, T, C)
  let x = g.op("Gather", [g.weight("embed", weights.embed, [V, C]), "input_ids"], "embed_out", {
    axis: 0,
  });

  // The transformer blocks.
  weights.layers.forEach((lw, l) => {
    x = transformerBlock(g, ctx, lw, l, x);
  });

  // Final norm and output projection: logits = rmsnorm(x)·finalNorm · lmHeadᵀ.   (B, T, V)
  const h = rmsNorm(g, x, weights.finalNorm, "final_norm", ctx.eps);
  g.op("MatMul", [h, g.weight("lm_head_t", transposed(weights.lmHead, V, C), [C, V])], "logits");

  return g.model(`moa_${config.modelType}`);
}

// ---------------------------------------------------------------------------------------------
// Model pieces

/** Values shared by all layers: sizes, the RoPE tables gathered at our positions, the mask. */
interface GraphContext {
  C: number;
  F: number;
  NH: number;
  NKV: number;
  HS: number;
  /** The scalar eps initializer of the RMS norms. */
  eps: string;
  /** cos(pos·inv_freq) for our positions, both halves.                            (T, HS) */
  cos: string;
  /** [−sin, +sin](pos·inv_freq) for our positions.                                 (T, HS) */
  sin: string;
  /** Additive causal mask, 0 or −∞, for the G = NH/NKV query heads of a kv head. (G·T, P+T) */
  mask: string;
  /** 1/sqrt(HS) as a scalar initializer. */
  scale: string;
}

function buildContext(g: GraphBuilder, config: ModelConfig, maxPositions: number): GraphContext {
  const { hiddenSize: C, intermediateSize: F } = config;
  const { numHeads: NH, numKvHeads: NKV, headDim: HS } = config;
  const G = NH / NKV;

  // Lengths: T from the ids, P from the first layer's past, S = P + T (all int64 scalars).
  const T = g.op("Squeeze", [g.op("Shape", ["input_ids"], "seq_len_1", { start: 1, end: 2 })]);
  const P = g.op("Squeeze", [g.op("Shape", ["past_key_0"], "past_len_1", { start: 2, end: 3 })]);
  const S = g.op("Add", [P, T], "total_len");
  const one = g.int64s("one", [], [1]);

  // Positions of the new tokens, P..P+T−1 (T), and of all keys, 0..S−1 (S).
  const positions = g.op("Range", [P, S, one], "positions");
  const keyPositions = g.op("Range", [g.int64s("zero", [], [0]), S, one], "key_positions");

  // RoPE tables at our positions (rotate_half's sign folded into the sin table).
  const { cos, sin } = ropeTables(config, maxPositions);
  const cosT = g.op("Gather", [g.weight("rope_cos", cos, [maxPositions, HS]), positions], "cos", {
    axis: 0,
  });
  const sinT = g.op("Gather", [g.weight("rope_sin", sin, [maxPositions, HS]), positions], "sin", {
    axis: 0,
  });

  // Causal mask for a kv head's G query heads stacked along rows (row r is query r mod T):
  // key j is allowed for that query when j ≤ its position.                      (G·T, S)
  const rowPositions = g.op("Tile", [positions, g.int64s("groups", [1], [G])], "row_positions");
  const allowed = g.op("LessOrEqual", [
    keyPositions,
    g.op("Unsqueeze", [rowPositions, g.int64s("axis_1", [1], [1])]),
  ], "mask_allowed");
  const mask = g.op("Where", [
    allowed,
    g.floats("mask_zero", [], [0]),
    g.floats("mask_neg_inf", [], [-Infinity]),
  ], "mask");

  return {
    C,
    F,
    NH,
    NKV,
    HS,
    eps: g.floats("rms_norm_eps", [], [config.rmsNormEps]),
    cos: cosT,
    sin: sinT,
    mask,
    scale: g.floats("attn_scale", [], [1 / Math.sqrt(HS)]),
  };
}

/** One pre-norm block: x += attn(rmsnorm(x)); x += mlp(rmsnorm(x)). Returns the new x. */
function transformerBlock(
  g: GraphBuilder,
  ctx: GraphContext,
  lw: LayerWeights,
  l: number,
  x: string,
): string {
  const p = `layers.${l}`;
  const attnIn = rmsNorm(g, x, lw.inputNorm, `${p}.input_norm`, ctx.eps);
  const afterAttn = g.op("Add", [x, attention(g, ctx, lw, l, attnIn)], `${p}.attn_residual`);
  const mlpIn = rmsNorm(g, afterAttn, lw.postNorm, `${p}.post_norm`, ctx.eps);
  return g.op("Add", [afterAttn, mlp(g, ctx, lw, p, mlpIn)], `${p}.mlp_residual`);
}

/** Grouped-query causal attention with RoPE and the KV cache; returns o = attn·Woᵀ. (B, T, C) */
function attention(
  g: GraphBuilder,
  ctx: GraphContext,
  lw: LayerWeights,
  l: number,
  h: string,
): string {
  const { C, NH, NKV, HS } = ctx;
  const p = `layers.${l}.attn`;

  // Projections, split into heads: (B, T, N·HS) → (B, N, T, HS).
  const q = splitHeads(g, linear(g, h, lw.wq, lw.bq, NH * HS, C, `${p}.q`), NH, HS);
  const k = splitHeads(g, linear(g, h, lw.wk, lw.bk, NKV * HS, C, `${p}.k`), NKV, HS);
  const v = splitHeads(g, linear(g, h, lw.wv, lw.bv, NKV * HS, C, `${p}.v`), NKV, HS);

  // RoPE on q and k; the cache holds rotated keys.             present: (B, NKV, P+T, HS)
  const qRot = rope(g, ctx, q, HS);
  const presentK = g.op("Concat", [`past_key_${l}`, rope(g, ctx, k, HS)], `present_key_${l}`, {
    axis: 2,
  });
  const presentV = g.op("Concat", [`past_value_${l}`, v], `present_value_${l}`, { axis: 2 });

  // Group the NH query heads by kv head: (B, NH, T, HS) → (B, NKV, G·T, HS), scaled by 1/√HS,
  // so one batched MatMul serves all query heads sharing a kv head.
  const qGrouped = g.op("Reshape", [
    g.op("Mul", [qRot, ctx.scale]),
    g.int64s("group_shape", [4], [0, NKV, -1, HS]),
  ]);

  // Scores, causal mask, softmax.                                          (B, NKV, G·T, S)
  const keysT = g.op("Transpose", [presentK], `${p}.keys_t`, { perm: [0, 1, 3, 2] });
  const scores = g.op("Add", [g.op("MatMul", [qGrouped, keysT], `${p}.scores`), ctx.mask]);
  const probs = g.op("Softmax", [scores], `${p}.probs`, { axis: -1 });

  // Weighted values, heads merged back: (B, NKV, G·T, HS) → (B, T, NH·HS).
  const heads = g.op("Reshape", [
    g.op("MatMul", [probs, presentV], `${p}.context`),
    g.int64s("ungroup_shape", [4], [0, NH, -1, HS]),
  ]);
  const merged = g.op("Reshape", [
    g.op("Transpose", [heads], undefined, { perm: [0, 2, 1, 3] }),
    g.int64s("merge_shape", [3], [0, 0, NH * HS]),
  ]);

  // Output projection.
  return linear(g, merged, lw.wo, null, C, NH * HS, `${p}.o`);
}

/** SwiGLU feed-forward: (silu(h·Wgateᵀ) ⊙ h·Wupᵀ)·Wdownᵀ.                              (B, T, C) */
function mlp(
  g: GraphBuilder,
  ctx: GraphContext,
  lw: LayerWeights,
  prefix: string,
  h: string,
): string {
  const { C, F } = ctx;
  const p = `${prefix}.mlp`;
  const gate = linear(g, h, lw.wGate, null, F, C, `${p}.gate`);
  const up = linear(g, h, lw.wUp, null, F, C, `${p}.up`);
  const silu = g.op("Mul", [gate, g.op("Sigmoid", [gate])], `${p}.silu`);
  const act = g.op("Mul", [silu, up], `${p}.act`);
  return linear(g, act, lw.wDown, null, C, F, `${p}.down`);
}

/** rmsnorm(x)·w with rmsnorm(x) = x / sqrt(mean(x²) + eps) over the last axis. */
function rmsNorm(g: GraphBuilder, x: string, w: Float32Array, name: string, eps: string): string {
  const meanSq = g.op("ReduceMean", [g.op("Mul", [x, x])], `${name}.mean_sq`, {
    axes: [-1],
    keepdims: 1,
  });
  const rms = g.op("Sqrt", [g.op("Add", [meanSq, eps])], `${name}.rms`);
  return g.op("Mul", [g.op("Div", [x, rms]), g.weight(`${name}.weight`, w, [w.length])], name);
}

/** y = x·Wᵀ (+ b), with W (out, in) stored transposed as an (in, out) initializer. */
function linear(
  g: GraphBuilder,
  x: string,
  w: Float32Array,
  b: Float32Array | null,
  outDim: number,
  inDim: number,
  name: string,
): string {
  const wT = g.weight(`${name}.weight_t`, transposed(w, outDim, inDim), [inDim, outDim]);
  const y = g.op("MatMul", [x, wT], b ? `${name}.matmul` : name);
  return b ? g.op("Add", [y, g.weight(`${name}.bias`, b, [outDim])], name) : y;
}

/** (B, T, N·HS) → (B, N, T, HS). */
function splitHeads(g: GraphBuilder, x: string, N: number, HS: number): string {
  const shape = g.int64s(`heads_shape_${N}`, [4], [0, 0, N, HS]);
  return g.op("Transpose", [g.op("Reshape", [x, shape])], `${x}.heads`, { perm: [0, 2, 1, 3] });
}

/**
 * HF rotate_half RoPE on (B, N, T, HS): x·cos + [x₂, x₁]·[−sin, sin], where x₁, x₂ are the
 * halves of the head vector (the sign of rotate_half lives in the sin table).
 */
function rope(g: GraphBuilder, ctx: GraphContext, x: string, HS: number): string {
  const half = HS / 2;
  const axes = g.int64s("last_axis", [1], [-1]);
  const slice = (from: number, to: number) =>
    g.op("Slice", [x, g.int64s(`at_${from}`, [1], [from]), g.int64s(`at_${to}`, [1], [to]), axes]);
  const swapped = g.op("Concat", [slice(half, HS), slice(0, half)], `${x}.swapped`, { axis: -1 });
  return g.op("Add", [
    g.op("Mul", [x, ctx.cos]),
    g.op("Mul", [swapped, ctx.sin]),
  ], `${x}.rope`);
}

/**
 * RoPE tables (maxPositions, HS): cos[p, i] = cos(p·θ^(−2(i mod HS/2)/HS)) and sin the same
 * with sign −1 on the first half (rotate_half's sign). Computed in float64, rounded once.
 */
function ropeTables(
  config: ModelConfig,
  maxPositions: number,
): { cos: Float32Array; sin: Float32Array } {
  const HS = config.headDim;
  const half = HS / 2;
  const cos = new Float32Array(maxPositions * HS);
  const sin = new Float32Array(maxPositions * HS);
  for (let i = 0; i < half; i++) {
    const invFreq = Math.pow(config.ropeTheta, (-2 * i) / HS);
    for (let pos = 0; pos < maxPositions; pos++) {
      const angle = pos * invFreq;
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[pos * HS + i] = c;
      cos[pos * HS + half + i] = c;
      sin[pos * HS + i] = -s;
      sin[pos * HS + half + i] = s;
    }
  }
  return { cos, sin };
}

// ---------------------------------------------------------------------------------------------
// Checks and array helpers

function checkConfig(config: ModelConfig, maxPositions: number): void {
  if (config.ropeScaling !== null) {
    throw new Error(
      `exportOnnx: config.ropeScaling ${JSON.stringify(config.ropeScaling)} ` +
        `is not supported by the ONNX export yet (only null)`,
    );
  }
  const { numLayers: L, numHeads: NH, numKvHeads: NKV, headDim: HS } = config;
  if (!Number.isInteger(L) || L < 1) {
    throw new RangeError(`exportOnnx: config.numLayers must be an integer ≥ 1, got ${L}`);
  }
  if (!Number.isInteger(NH / NKV) || NKV < 1) {
    throw new RangeError(
      `exportOnnx: config.numHeads (${NH}) must be a multiple of config.numKvHeads (${NKV})`,
    );
  }
  if (!Number.isInteger(HS) || HS < 2 || HS % 2 !== 0) {
    throw new RangeError(`exportOnnx: config.headDim must be an even integer ≥ 2, got ${HS}`);
  }
  if (!Number.isInteger(maxPositions) || maxPositions < 1) {
    throw new RangeError(`exportOnnx: maxPositions must be an integer ≥ 1, got ${maxPositions}`);
  }
}

function layerParamCount(lw: LayerWeights): number {
  return [
    lw.inputNorm,
    lw.wq,
    lw.wk,
    lw.wv,
    lw.bq,
    lw.bk,
    lw.bv,
    lw.wo,
    lw.postNorm,
    lw.wGate,
    lw.wUp,
    lw.wDown,
  ].reduce((n, a) => n + (a?.length ?? 0), 0);
}
