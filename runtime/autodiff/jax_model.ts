/**
 * The LLaMA-family forward pass written in `@jax-js/jax`, so that it can be differentiated:
 * the training loss and its gradient with respect to every weight, and the attention
 * probabilities A of every head with ∂L/∂A (for MoA's attention-influence profile).
 *
 * It computes the same function as `runtime/cpu/forward.ts` (HF LLaMA: RMSNorm, RoPE in the
 * "rotate half" layout with linear/llama3 frequency scaling, grouped-query attention, SwiGLU,
 * optional q/k/v biases, tied or untied output head), in float32, softmax included.
 *
 * Call {@linkcode initJax} once before anything else. Arrays live on the jax device chosen there
 * (`"wasm"` by default; `"webgpu"` where available). All wasm arrays share one 4 GiB memory.
 *
 * Ownership: jax-js arrays are consumed when passed to an operation (see the jax-js README).
 * Functions here never consume the `Params` they are given; the `Params` and gradient trees they
 * return belong to the caller, who frees them with {@linkcode disposeParams}.
 *
 * Layout: attention runs on 3-D arrays with the G = NH/NKV query heads of a kv head stacked
 * along rows, q (B·NKV, G·T, HS) against k, v (B·NKV, T, HS), so grouped-query attention needs
 * no broadcast or repeat of k and v. The causal mask and one-hot targets are comparisons with an
 * iota, fused into their consumers (no T×T or V×V constants).
 *
 * Performance (wasm, on 2 cores shared with other work, so ranges; C=128, 4 layers, NH=4, NKV=2,
 * V=512, F=344, 0.86M parameters): `lossAndGrad` ≈ 1 000–1 800 tokens/s at B=1, T=256,
 * ≈ 1 200–2 150 at B=4, T=256 and ≈ 500–700 at B=1, T=1024, where the T² attention dominates
 * (jax-js's wasm `exp` costs ≈ 15 ns per element, 4M per layer at T=1024). A step is several
 * hundred small kernels, so the per-kernel cost matters; see {@linkcode InitOptions}.
 *
 * Memory: the one-program `lossAndGrad` holds the activations of every layer for its backward
 * pass; measured peak wasm memory for the model above at B=1: 223 MB at T=512 and 693 MB at
 * T=1024, about 11·L·NH·T² floats, and everything on wasm shares one 4 GiB space (so T ≲ 2.5k
 * there). Beyond that it goes layer by layer ({@linkcode lossAndGradByLayer}: one block of query
 * rows' attention at a time; moa-tiny at T = 4,096, B = 1 in 0.8 GB of process memory), as
 * {@linkcode attentionGradsByLayer} does for the profile.
 *
 * @module
 */
import {
  type Array as JaxArray,
  blockUntilReady,
  defaultDevice,
  type Device,
  init,
  jit,
  nn,
  numpy as np,
  tree,
  valueAndGrad,
} from "@jax-js/jax";
import { type LayerWeights, type Model, type ModelConfig, type Weight, widen } from "../model.ts";
import { ropeInvFreq } from "../cpu/ops.ts";

/** Devices the autodiff model can run on. */
export type JaxDevice = "wasm" | "webgpu";

/**
 * How token embeddings are looked up.
 * - `"take"`: a gather (`np.take`) whose gradient is a scatter-add; the cheapest, but its
 *   gradient fails on jax-js's WebGPU backend (0.1.25).
 * - `"onehot"`: one-hot (N, V) · embed (V, C); 2·N·V·C more flops each way; works everywhere.
 */
export type EmbeddingLookup = "take" | "onehot";

/** One transformer block's weights as jax arrays; shapes as in {@linkcode LayerWeights}. */
export type LayerParams = {
  /** (C) */
  inputNorm: JaxArray;
  /** (NH*HS, C), Hugging Face (out, in) layout */
  wq: JaxArray;
  /** (NKV*HS, C) */
  wk: JaxArray;
  /** (NKV*HS, C) */
  wv: JaxArray;
  /** (NH*HS); present only when the config has attention biases */
  bq?: JaxArray;
  /** (NKV*HS) */
  bk?: JaxArray;
  /** (NKV*HS) */
  bv?: JaxArray;
  /** (C, NH*HS) */
  wo: JaxArray;
  /** (C) */
  postNorm: JaxArray;
  /** (F, C) */
  wGate: JaxArray;
  /** (F, C) */
  wUp: JaxArray;
  /** (C, F) */
  wDown: JaxArray;
};

/**
 * All weights of a model as a jax pytree mirroring `ModelWeights`. Linear weights keep the
 * Hugging Face (out, in) layout (a layer computes x · Wᵀ), so a gradient leaf has exactly the
 * shape and layout of the Float32Array weight it belongs to. `lmHead` is absent when the
 * embeddings are tied (the head then reuses `embed`, and its gradient flows into `embed`).
 */
export type Params = {
  /** (V, C) */
  embed: JaxArray;
  layers: LayerParams[];
  /** (C) */
  finalNorm: JaxArray;
  /** (V, C); absent when embeddings are tied */
  lmHead?: JaxArray;
};

/** Options shared by the functions of this module. */
export interface JaxModelOptions {
  /**
   * Embedding lookup; see {@linkcode EmbeddingLookup}.
   * @default "take" on wasm, "onehot" on webgpu
   */
  embedding?: EmbeddingLookup;
}

/** One training batch: B sequences of T tokens, flattened row-major to (B*T). */
export interface Batch {
  /** (B*T) input token ids */
  tokens: Int32Array;
  /** (B*T) the token each position should predict */
  targets: Int32Array;
  /** (B*T) weight of each position's loss (0 drops a position; 1 for response tokens) */
  mask: Float32Array;
  /**
   * (B*T) the position id of each token, for RoPE; default `0..T-1` in every row. Training
   * spreads them to show a model long distances on short examples (`data/train/mix.ts`).
   */
  positions?: Int32Array;
}

/** Options of {@linkcode initJax}. */
export interface InitOptions {
  /**
   * On wasm, run kernels on jax-js's pool of Web Workers (one per core) and read results
   * asynchronously, instead of on the calling thread. Each worker dispatch costs a message
   * round trip (measured ≈ 0.4 ms against ≈ 0.04 ms on the calling thread) and a training step
   * of a small model runs hundreds of kernels: on 2 shared cores the calling thread was up to
   * 2× faster at T ≤ 256 and about even at T = 1024. With more idle cores the workers may win
   * for long sequences. Ignored on webgpu, which is always async.
   * @default false
   */
  wasmWorkers?: boolean;
  /**
   * The most bytes the one-program {@linkcode lossAndGrad} may hold for its backward pass
   * (about 11·L·B·NH·T² floats) before `layerwise: "auto"` goes layer by layer. The default
   * suits wasm, where every array shares one 4 GiB space; on a large GPU the one program fits
   * much longer sequences (jax-js asks the adapter for its largest buffers).
   * @default 3 GiB
   */
  programBytes?: number;
}

let current: JaxDevice | null = null;
let syncReads = true;
const DEFAULT_PROGRAM_BYTES = 3 * 2 ** 30;
let programBytes = DEFAULT_PROGRAM_BYTES;

/**
 * Starts the jax-js backend for a device and makes it the default for new arrays.
 *
 * @param device `"wasm"` (CPU WebAssembly, the default) or `"webgpu"`
 * @param opts where wasm kernels run
 * @returns the device now in use
 * @throws Error when the device is unavailable here
 *
 * @example
 * ```ts
 * import { initJax } from "./jax_model.ts";
 * console.log(await initJax("wasm"));
 * ```
 */
export async function initJax(
  device: JaxDevice = "wasm",
  opts: InitOptions = {},
): Promise<JaxDevice> {
  if (current !== device) {
    const found: Device[] = await init(device);
    if (!found.includes(device)) {
      throw new Error(`@jax-js/jax has no ${device} backend here (found: ${found.join(", ")})`);
    }
    defaultDevice(device);
    current = device;
  }
  syncReads = device === "wasm" && !(opts.wasmWorkers ?? false);
  const bytes = opts.programBytes ?? DEFAULT_PROGRAM_BYTES;
  if (!(bytes > 0)) throw new RangeError(`programBytes = ${bytes}; expected > 0`);
  programBytes = bytes;
  return device;
}

/**
 * Reads a float32 jax array into a new Float32Array and consumes the array. Synchronous on wasm
 * unless `wasmWorkers` was chosen (see {@linkcode InitOptions}); mixing both ways of reading in
 * one process makes jax-js throw.
 *
 * @param a the array (consumed; pass `a.ref` to keep it)
 * @returns its values, row-major
 */
export async function readF32(a: JaxArray): Promise<Float32Array> {
  const d = syncReads ? a.dataSync() : await a.data();
  if (!(d instanceof Float32Array)) throw new TypeError(`expected float32 data, got ${a.dtype}`);
  return d;
}

/**
 * Runs the work queued for every array of `x` now (jax-js dispatches lazily, and a queued
 * program holds its buffers until it runs). Does not consume `x`. Reads the same way as
 * {@linkcode readF32} (synchronously on wasm), since jax-js throws on a mix of both.
 */
async function settle<T extends JaxArray | JaxArray[]>(x: T): Promise<T> {
  if (!syncReads) return await blockUntilReady(x);
  for (const a of ([] as JaxArray[]).concat(x)) a.ref.dataSync();
  return x;
}

function requireInit(): JaxDevice {
  if (current === null) throw new Error("jax_model: call `await initJax()` first");
  return current;
}

function embeddingOf(opts: JaxModelOptions): EmbeddingLookup {
  return opts.embedding ?? (requireInit() === "webgpu" ? "onehot" : "take");
}

// ---------------------------------------------------------------------------------------------
// conversion

// jax-js wants typed arrays over a plain ArrayBuffer; those over a SharedArrayBuffer are copied.
function plainF32(a: Float32Array): Float32Array<ArrayBuffer> {
  return (a.buffer instanceof ArrayBuffer ? a : a.slice()) as Float32Array<ArrayBuffer>;
}

function plainI32(a: Int32Array): Int32Array<ArrayBuffer> {
  return (a.buffer instanceof ArrayBuffer ? a : a.slice()) as Int32Array<ArrayBuffer>;
}

/** A float32 host array as a new jax array of `shape` on the default device. */
export function upload(a: Float32Array, shape: number[]): JaxArray {
  return np.array(plainF32(a), { shape, dtype: np.float32 });
}

/**
 * One layer's weights on the jax device as float32 (F16/BF16 matrices widened first; float32
 * ones uploaded as they are): what the whole-model parameters and the blockwise profile
 * (influence.ts) put on the device per layer.
 */
export function uploadLayer(c: ModelConfig, l: LayerWeights<Weight>): LayerParams {
  const C = c.hiddenSize, F = c.intermediateSize;
  const QD = c.numHeads * c.headDim, KD = c.numKvHeads * c.headDim;
  const up = (m: Weight, shape: number[]) => upload(widen(m), shape);
  const p: LayerParams = {
    inputNorm: upload(l.inputNorm, [C]),
    wq: up(l.wq, [QD, C]),
    wk: up(l.wk, [KD, C]),
    wv: up(l.wv, [KD, C]),
    wo: up(l.wo, [C, QD]),
    postNorm: upload(l.postNorm, [C]),
    wGate: up(l.wGate, [F, C]),
    wUp: up(l.wUp, [F, C]),
    wDown: up(l.wDown, [C, F]),
  };
  if (l.bq) p.bq = upload(l.bq, [QD]);
  if (l.bk) p.bk = upload(l.bk, [KD]);
  if (l.bv) p.bv = upload(l.bv, [KD]);
  return p;
}

/**
 * Copies a model's float32 weights into a jax pytree (on the device chosen by `initJax`).
 *
 * @param model configuration and weights
 * @returns new arrays, owned by the caller (free with {@linkcode disposeParams})
 */
export function paramsFromModel(model: Model): Params {
  requireInit();
  const c = model.config, w = model.weights;
  const C = c.hiddenSize, V = c.vocabSize;
  const layers = w.layers.map((l) => uploadLayer(c, l));
  const params: Params = {
    embed: upload(w.embed, [V, C]),
    layers,
    finalNorm: upload(w.finalNorm, [C]),
  };
  if (!c.tieWordEmbeddings) params.lmHead = upload(w.lmHead, [V, C]);
  return params;
}

function download(a: JaxArray): Promise<Float32Array> {
  return readF32(a.ref);
}

/**
 * Copies a parameter tree back into float32 weights, e.g. to save a trained model with
 * `saveModel` or to run it with the CPU runtime. Does not consume `params`.
 *
 * @param config the architecture the parameters belong to
 * @param params parameters (for example after training)
 * @returns a model whose weights are new Float32Arrays
 */
export async function modelFromParams(config: ModelConfig, params: Params): Promise<Model> {
  if (params.layers.length !== config.numLayers) {
    throw new RangeError(
      `params have ${params.layers.length} layers, the config ${config.numLayers}`,
    );
  }
  if (config.tieWordEmbeddings !== (params.lmHead === undefined)) {
    throw new RangeError(
      `params ${params.lmHead ? "have" : "lack"} lmHead but tieWordEmbeddings is ` +
        config.tieWordEmbeddings,
    );
  }
  // every read started at once: on webgpu each is a host sync, and they overlap
  const opt = (a: JaxArray | undefined) => a ? download(a) : Promise.resolve(null);
  const layersRead = Promise.all(params.layers.map(async (p): Promise<LayerWeights> => {
    const [inputNorm, wq, wk, wv, bq, bk, bv, wo, postNorm, wGate, wUp, wDown] = await Promise
      .all([
        download(p.inputNorm),
        download(p.wq),
        download(p.wk),
        download(p.wv),
        opt(p.bq),
        opt(p.bk),
        opt(p.bv),
        download(p.wo),
        download(p.postNorm),
        download(p.wGate),
        download(p.wUp),
        download(p.wDown),
      ]);
    return {
      inputNorm: inputNorm!,
      wq: wq!,
      wk: wk!,
      wv: wv!,
      bq,
      bk,
      bv,
      wo: wo!,
      postNorm: postNorm!,
      wGate: wGate!,
      wUp: wUp!,
      wDown: wDown!,
    };
  }));
  const [layers, embed, lmHead, finalNorm] = await Promise.all([
    layersRead,
    download(params.embed),
    opt(params.lmHead),
    download(params.finalNorm),
  ]);
  return { config, weights: { embed, layers, finalNorm, lmHead: lmHead ?? embed } };
}

/**
 * Frees every array of a parameter (or gradient) tree.
 *
 * @param params the tree; its arrays must not be used afterwards
 */
export function disposeParams(params: Params): void {
  tree.dispose(params);
}

// ---------------------------------------------------------------------------------------------
// the forward pass (traced by jit; every array argument is consumed exactly once)

/** (N, C) → (N, C): x / sqrt(mean(x²) + eps) · w. */
export function rmsnorm(x: JaxArray, w: JaxArray, eps: number): JaxArray {
  const ms = np.mean(np.square(x.ref), -1, { keepdims: true });
  return x.mul(np.reciprocal(np.sqrt(ms.add(eps)))).mul(w);
}

/** (N, in) · W(out, in)ᵀ (+ b) → (N, out). */
export function linear(x: JaxArray, w: JaxArray, b?: JaxArray): JaxArray {
  const y = np.matmul(x, w.transpose());
  return b ? y.add(b) : y;
}

/**
 * x (B, H, T, HS) rotated by RoPE: x·cos + rotate_half(x)·sin, cos/sin (T, HS) shared by the
 * rows, or (B, 1, T, HS) per row.
 */
export function rope(x: JaxArray, cos: JaxArray, sin: JaxArray): JaxArray {
  const HS = x.shape[3]!, half = HS / 2;
  const rot = np.concatenate([
    x.ref.slice([], [], [], [half, HS]).neg(),
    x.ref.slice([], [], [], [0, half]),
  ], -1);
  return x.mul(cos).add(rot.mul(sin));
}

/** (G*T, T) bool: row r = g·T + i (query i of group member g) may attend to key j ≤ i. */
function causalMask(G: number, T: number): JaxArray {
  const i = np.arange(G * T, undefined, undefined, { dtype: np.int32 }).mod(T).reshape([G * T, 1]);
  return np.arange(T, undefined, undefined, { dtype: np.int32 }).reshape([1, T]).lessEqual(i);
}

/** softmax(q·kᵀ/√HS) over causal keys: q (X, G*T, HS), k (X, T, HS) → (X, G*T, T). */
function attentionProbs(q: JaxArray, k: JaxArray, causal: JaxArray): JaxArray {
  const HS = q.shape[2]!;
  const scores = np.matmul(q, k.transpose([0, 2, 1])).mul(1 / Math.sqrt(HS));
  return nn.softmax(np.where(causal, scores, -1e30), -1);
}

/**
 * DuoAttention's mix of one layer's attention (DESIGN.md §4.6): per kv head, gate·full +
 * (1 − gate)·streaming probabilities, the streaming ones over the sink and a recent window.
 */
interface DuoMix {
  /** (B*NKV, 1, 1) gates of this layer */
  gates: JaxArray;
  /** (G*T, T) bool: the keys a streaming head sees (causal, j < sink or i − j < recent) */
  stream: JaxArray;
}

/** {@link attentionProbs} under both masks, mixed per kv head by the gates (consumes all). */
function duoProbs(q: JaxArray, k: JaxArray, causal: JaxArray, mix: DuoMix): JaxArray {
  const HS = q.shape[2]!;
  const scores = np.matmul(q, k.transpose([0, 2, 1])).mul(1 / Math.sqrt(HS));
  const full = nn.softmax(np.where(causal, scores.ref, -1e30), -1);
  const streaming = nn.softmax(np.where(mix.stream, scores, -1e30), -1);
  return full.sub(streaming.ref).mul(mix.gates).add(streaming);
}

/** (G*T, T) bool: causal keys j < sink or within `recent` of the query (see {@link DuoMix}). */
function streamingMask(G: number, T: number, sink: number, recent: number): JaxArray {
  const i = np.arange(G * T, undefined, undefined, { dtype: np.int32 }).mod(T).reshape([G * T, 1]);
  const j = np.arange(T, undefined, undefined, { dtype: np.int32 }).reshape([1, T]);
  const near = np.logicalOr(j.ref.less(sink), j.ref.add(recent).greater(i.ref));
  return np.logicalAnd(j.lessEqual(i), near);
}

/** Saved for attention statistics: probabilities (B*NKV, G*T, T) and values (B*NKV, T, HS). */
type LayerSaved = [JaxArray, JaxArray];

/** Position tables and mask shared by the blocks; borrowed (never consumed) by `block`. */
interface Shared {
  /** (T, HS), or (B, 1, T, HS) for per-row positions */
  cos: JaxArray;
  /** (T, HS), or (B, 1, T, HS) */
  sin: JaxArray;
  /** (G*T, T), see `causalMask` */
  causal: JaxArray;
}

/** tokens (B, T) int32 → embeddings (B*T, C). */
function embed(table: JaxArray, tokens: JaxArray, embedding: EmbeddingLookup): JaxArray {
  const ids = tokens.reshape([tokens.size]);
  return embedding === "take"
    ? np.take(table, ids, 0)
    : np.matmul(oneHot(ids, table.shape[0]!).astype(np.float32), table);
}

/** The weights of a block before its attention: the input norm and the q/k/v projections. */
export type PreParams = Pick<LayerParams, "inputNorm" | "wq" | "wk" | "wv" | "bq" | "bk" | "bv">;

/** The weights of a block after its attention: the output projection and the MLP. */
export type PostParams = Pick<LayerParams, "wo" | "postNorm" | "wGate" | "wUp" | "wDown">;

/** A layer's weights cut at its attention (the arrays are shared, not copied). */
function splitLayer(w: LayerParams): [PreParams, PostParams] {
  const { wo, postNorm, wGate, wUp, wDown, ...pre } = w;
  return [pre, { wo, postNorm, wGate, wUp, wDown }];
}

/**
 * A block's attention inputs from x (B*T, C): RoPE'd queries (B*NKV, G, T, HS) with the G query
 * heads of a kv head on the second axis, RoPE'd keys and values (B*NKV, T, HS). Consumes cos, sin.
 */
export function project(
  config: ModelConfig,
  w: PreParams,
  x: JaxArray,
  B: number,
  cos: JaxArray,
  sin: JaxArray,
): [JaxArray, JaxArray, JaxArray] {
  const { numHeads: NH, numKvHeads: NKV, headDim: HS } = config;
  const T = x.shape[0]! / B;
  const h = rmsnorm(x, w.inputNorm, config.rmsNormEps);
  const q = linear(h.ref, w.wq, w.bq).reshape([B, T, NH, HS]).transpose([0, 2, 1, 3]);
  const k = linear(h.ref, w.wk, w.bk).reshape([B, T, NKV, HS]).transpose([0, 2, 1, 3]);
  const v = linear(h, w.wv, w.bv).reshape([B, T, NKV, HS]).transpose([0, 2, 1, 3]);
  return [
    rope(q, cos.ref, sin.ref).reshape([B * NKV, NH / NKV, T, HS]),
    rope(k, cos, sin).reshape([B * NKV, T, HS]),
    v.reshape([B * NKV, T, HS]),
  ];
}

/**
 * The rest of a block: x (B*T, C) plus the output projection of the attention output o
 * (B*NKV, G, T, HS), then the SwiGLU MLP with its residual.
 */
export function finish(
  config: ModelConfig,
  w: PostParams,
  x: JaxArray,
  o: JaxArray,
  B: number,
): JaxArray {
  const { numHeads: NH, headDim: HS } = config;
  const N = x.shape[0]!, T = N / B;
  const att = o.reshape([B, NH, T, HS]).transpose([0, 2, 1, 3]).reshape([N, NH * HS]);
  x = x.add(linear(att, w.wo));
  const h2 = rmsnorm(x.ref, w.postNorm, config.rmsNormEps);
  const gate = linear(h2.ref, w.wGate);
  const up = linear(h2, w.wUp);
  return x.add(linear(nn.silu(gate).mul(up), w.wDown));
}

/**
 * One transformer block on x (B*T, C) → (B*T, C). `pert` (B*NKV, G*T, HS), when given, is added
 * to the attention output (in the layout of q) before the output projection; `saved` receives
 * the attention probabilities and the values (extra references).
 */
function block(
  config: ModelConfig,
  w: LayerParams,
  x: JaxArray,
  B: number,
  sh: Shared,
  pert?: JaxArray,
  saved?: LayerSaved[],
  mix?: DuoMix,
): JaxArray {
  const { numHeads: NH, numKvHeads: NKV, headDim: HS } = config;
  const G = NH / NKV, T = x.shape[0]! / B;
  const [pre, post] = splitLayer(w);
  const [q, kr, vr] = project(config, pre, x.ref, B, sh.cos.ref, sh.sin.ref);
  // the query heads of one kv group stacked along rows: (B*NKV, G*T, HS); keys (B*NKV, T, HS)
  const qr = q.reshape([B * NKV, G * T, HS]);
  const a = mix ? duoProbs(qr, kr, sh.causal.ref, mix) : attentionProbs(qr, kr, sh.causal.ref);
  if (saved) saved.push([a.ref, vr.ref]);
  let att = np.matmul(a, vr); // (B*NKV, G*T, HS)
  if (pert) att = att.add(pert);
  return finish(config, post, x, att.reshape([B * NKV, G, T, HS]), B);
}

/** Builds the shared tables for T positions; the caller disposes them. */
function shared(config: ModelConfig, cos: JaxArray, sin: JaxArray): Shared {
  const T = cos.shape[cos.shape.length - 2]!; // (T, HS) or (B, 1, T, HS)
  return { cos, sin, causal: causalMask(config.numHeads / config.numKvHeads, T) };
}

function disposeShared(sh: Shared): void {
  sh.cos.dispose();
  sh.sin.dispose();
  sh.causal.dispose();
}

/**
 * tokens (B, T) → the final hidden state (B*T, C) after the final norm. With `duo` (B = 1),
 * every layer mixes full and streaming attention by its gates (L, NKV); it is consumed.
 */
function trunk(
  config: ModelConfig,
  p: Params,
  tokens: JaxArray,
  cos: JaxArray,
  sin: JaxArray,
  embedding: EmbeddingLookup,
  duo?: { gates: JaxArray; stream: JaxArray },
): JaxArray {
  const B = tokens.shape[0]!, NKV = config.numKvHeads;
  let x = embed(p.lmHead ? p.embed : p.embed.ref, tokens, embedding); // tied: used again by the head
  const sh = shared(config, cos, sin);
  p.layers.forEach((w, l) => {
    const mix = duo && {
      gates: duo.gates.ref.slice([l, l + 1], []).reshape([NKV, 1, 1]),
      stream: duo.stream.ref,
    };
    x = block(config, w, x, B, sh, undefined, undefined, mix);
  });
  disposeShared(sh);
  if (duo) tree.dispose(duo);
  return rmsnorm(x, p.finalNorm, config.rmsNormEps);
}

/** (N, C) final hidden state → (N, V) logits. */
function head(p: Params, h: JaxArray): JaxArray {
  return linear(h, p.lmHead ?? p.embed);
}

/**
 * (N, V) bool, true at [n, ids[n]]. Built from a comparison with an iota, which jit fuses into
 * its consumer (`nn.oneHot` gathers rows of a V×V identity constant: 4·V² bytes).
 */
function oneHot(ids: JaxArray, V: number): JaxArray {
  const N = ids.size;
  return ids.reshape([N, 1]).equal(
    np.arange(V, undefined, undefined, { dtype: np.int32 }).reshape([1, V]),
  );
}

/** Σ_n w[n] · (logsumexp(logits[n]) − logits[n, targets[n]]). logits (N, V), targets, w (N). */
function weightedNll(logits: JaxArray, targets: JaxArray, w: JaxArray): JaxArray {
  const V = logits.shape[1]!;
  const lse = nn.logsumexp(logits.ref, -1); // (N)
  const picked = np.where(oneHot(targets, V), logits, 0).sum(-1); // (N)
  return lse.sub(picked).mul(w).sum();
}

// ---------------------------------------------------------------------------------------------
// compiled functions, cached per config (jit itself caches one program per input shape)

type LossFn = (
  p: Params,
  tokens: JaxArray,
  targets: JaxArray,
  w: JaxArray,
  cos: JaxArray,
  sin: JaxArray,
) => JaxArray;

// deno-lint-ignore no-explicit-any
type Compiled = (...args: any[]) => any;

interface Cache {
  fns: Map<string, Compiled>;
  rope: Map<number, { cos: JaxArray; sin: JaxArray }>;
}

const caches = new WeakMap<ModelConfig, Cache>();

function cacheOf(config: ModelConfig): Cache {
  let c = caches.get(config);
  if (!c) {
    c = { fns: new Map(), rope: new Map() };
    caches.set(config, c);
  }
  return c;
}

function compiled(config: ModelConfig, key: string, make: () => Compiled): Compiled {
  const c = cacheOf(config);
  let f = c.fns.get(key);
  if (!f) {
    f = make();
    c.fns.set(key, f);
  }
  return f;
}

/** cos/sin tables (T, HS) for positions 0..T−1, computed in float64 then rounded. */
export function ropeTables(config: ModelConfig, T: number): { cos: JaxArray; sin: JaxArray } {
  const c = cacheOf(config);
  let r = c.rope.get(T);
  if (!r) {
    const HS = config.headDim, half = HS / 2;
    const inv = ropeInvFreq(config);
    const cos = new Float32Array(T * HS), sin = new Float32Array(T * HS);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < HS; i++) {
        const a = t * inv[i % half]!;
        cos[t * HS + i] = Math.cos(a);
        sin[t * HS + i] = Math.sin(a);
      }
    }
    r = { cos: upload(cos, [T, HS]), sin: upload(sin, [T, HS]) };
    c.rope.set(T, r);
  }
  return { cos: r.cos.ref, sin: r.sin.ref };
}

/** cos/sin tables (B, 1, T, HS) for per-row position ids (B*T), in float64 then rounded. */
function ropeTablesAt(
  config: ModelConfig,
  positions: Int32Array,
  B: number,
  T: number,
): { cos: JaxArray; sin: JaxArray } {
  if (positions.length !== B * T) {
    throw new RangeError(`positions has length ${positions.length}, expected ${B * T}`);
  }
  const HS = config.headDim, half = HS / 2;
  const inv = ropeInvFreq(config);
  const cos = new Float32Array(B * T * HS), sin = new Float32Array(B * T * HS);
  for (let n = 0; n < B * T; n++) {
    const t = positions[n]!;
    if (!Number.isInteger(t) || t < 0 || t >= config.maxPositionEmbeddings) {
      throw new RangeError(
        `positions[${n}] = ${t} is outside [0, ${config.maxPositionEmbeddings})`,
      );
    }
    for (let i = 0; i < HS; i++) {
      const a = t * inv[i % half]!;
      cos[n * HS + i] = Math.cos(a);
      sin[n * HS + i] = Math.sin(a);
    }
  }
  return { cos: upload(cos, [B, 1, T, HS]), sin: upload(sin, [B, 1, T, HS]) };
}

/** @throws RangeError when `a` is not n long or holds an id outside the vocabulary */
export function checkTokens(config: ModelConfig, name: string, a: Int32Array, n: number): void {
  if (a.length !== n) throw new RangeError(`${name} has length ${a.length}, expected ${n}`);
  const V = config.vocabSize;
  for (let i = 0; i < n; i++) {
    const t = a[i]!;
    if (t < 0 || t >= V) {
      throw new RangeError(`${name}[${i}] = ${t} is outside the vocabulary [0, ${V})`);
    }
  }
}

function checkShape(B: number, T: number): void {
  for (const [name, x] of [["B", B], ["T", T]] as const) {
    if (!Number.isInteger(x) || x < 1) {
      throw new RangeError(`${name} = ${x}; expected an integer ≥ 1`);
    }
  }
}

function tokenArray(a: Int32Array, B: number, T: number): JaxArray {
  return np.array(plainI32(a), { shape: [B, T], dtype: np.int32 });
}

/**
 * Checks a batch of B sequences of T tokens and returns its loss weights (see lossWeights).
 * @throws RangeError on a bad shape or length, an out-of-vocabulary token or an all-zero mask
 */
function checkedWeights(config: ModelConfig, batch: Batch, B: number, T: number): JaxArray {
  checkShape(B, T);
  checkTokens(config, "tokens", batch.tokens, B * T);
  checkTokens(config, "targets", batch.targets, B * T);
  return lossWeights(batch.mask, B * T);
}

/** mask / Σ mask as float32 (N); throws when no position carries weight. */
function lossWeights(mask: Float32Array, n: number): JaxArray {
  if (mask.length !== n) throw new RangeError(`mask has length ${mask.length}, expected ${n}`);
  let s = 0;
  for (let i = 0; i < n; i++) {
    const m = mask[i]!;
    if (!(m >= 0) || !Number.isFinite(m)) {
      throw new RangeError(`mask[${i}] = ${m}; expected a finite weight ≥ 0`);
    }
    s += m;
  }
  if (s <= 0) throw new RangeError("mask selects no position (its sum is 0)");
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = mask[i]! / s;
  return upload(w, [n]);
}

// ---------------------------------------------------------------------------------------------
// public entry points

/** Options of {@linkcode lossAndGrad}. */
export interface LossAndGradOptions extends JaxModelOptions {
  /**
   * Take the gradient layer by layer with recomputation, and each layer's attention in blocks
   * of query rows ({@linkcode lossAndGradByLayer}), instead of one program that holds every
   * layer's T×T attention. `"auto"` does so when the one program would need more than about
   * 3 GiB (11·L·B·NH·T² floats: T > 2,048 for moa-tiny at B = 1), which wasm cannot hold.
   * @default "auto"
   */
  layerwise?: boolean | "auto";
  /**
   * Layer by layer, the most attention scores one block of query rows may hold, B·NH·rows·T
   * (see {@linkcode queryBlocks}); smaller blocks need less memory and take more kernel launches.
   * @default 2²⁴
   */
  blockScores?: number;
}

/**
 * Whether `"auto"` takes {@linkcode lossAndGradByLayer} for this shape (see its memory note):
 * when the one program would hold more than `bytes` (by default {@linkcode InitOptions}'
 * `programBytes` of the last {@linkcode initJax}, 3 GiB unless set).
 */
export function needsLayerwise(
  config: ModelConfig,
  B: number,
  T: number,
  bytes: number = programBytes,
): boolean {
  return 11 * config.numLayers * B * config.numHeads * T * T * 4 > bytes;
}

/** The result of {@linkcode lossAndGrad}. */
export interface LossAndGrad {
  /** Mean cross-entropy over the masked positions (natural log). */
  loss: number;
  /** ∂loss/∂params, same tree and shapes as the params; owned by the caller. */
  grads: Params;
}

/**
 * The masked mean cross-entropy of a batch, Σ mask·nll / Σ mask, and its gradient with respect
 * to every parameter. Runs one jitted value-and-grad program, compiled on first use of each
 * (B, T) shape and cached. Does not consume `params`.
 *
 * @param config the architecture
 * @param params the weights
 * @param batch tokens, targets and mask, each (B*T)
 * @param B sequences in the batch
 * @param T tokens per sequence
 * @param opts embedding lookup; whether to go layer by layer (long sequences)
 * @returns the loss and the gradient tree
 * @throws RangeError on a wrong length, an out-of-vocabulary token or an all-zero mask
 *
 * @example The loss and gradients of a random model (training: data/train/train.ts)
 * ```ts
 * import { disposeParams, initJax, lossAndGrad, paramsFromModel } from "./jax_model.ts";
 * import { randomModel, tinyConfig } from "../random_model.ts";
 * await initJax("wasm");
 * const config = tinyConfig({ numLayers: 1 });
 * const params = paramsFromModel(randomModel(config, 1));
 * const tokens = Int32Array.from([1, 5, 9, 7]), targets = Int32Array.from([5, 9, 7, 2]);
 * const mask = Float32Array.from([0, 0, 1, 1]); // loss on the last two positions only
 * const { loss, grads } = await lossAndGrad(config, params, { tokens, targets, mask }, 1, 4);
 * console.log(loss.toFixed(2));
 * disposeParams(grads);
 * disposeParams(params);
 * ```
 */
export async function lossAndGrad(
  config: ModelConfig,
  params: Params,
  batch: Batch,
  B: number,
  T: number,
  opts: LossAndGradOptions = {},
): Promise<LossAndGrad> {
  const layerwise = opts.layerwise ?? "auto";
  if (layerwise === true || (layerwise === "auto" && needsLayerwise(config, B, T))) {
    return lossAndGradByLayer(config, params, batch, B, T, opts);
  }
  const embedding = embeddingOf(opts);
  const w = checkedWeights(config, batch, B, T);
  const fn = compiled(config, `loss:${embedding}`, () => {
    const f: LossFn = (p, tokens, targets, wt, cos, sin) => {
      const h = trunk(config, p, tokens, cos, sin, embedding);
      return weightedNll(head(p, h), targets.reshape([targets.size]), wt);
    };
    return jit(valueAndGrad(f));
  });
  const { cos, sin } = batch.positions
    ? ropeTablesAt(config, batch.positions, B, T)
    : ropeTables(config, T);
  const [loss, grads] = fn(
    tree.ref(params),
    tokenArray(batch.tokens, B, T),
    tokenArray(batch.targets, B, T),
    w,
    cos,
    sin,
  ) as [JaxArray, Params];
  return { loss: (await readF32(loss))[0]!, grads };
}

/**
 * [first, end) query rows of each attention block of {@linkcode lossAndGradByLayer} for B
 * sequences of T tokens: as few equal blocks as keep B·NH·rows·T ≤ maxScores.
 */
export function queryBlocks(
  config: ModelConfig,
  B: number,
  T: number,
  maxScores = 2 ** 24,
): [number, number][] {
  if (!(maxScores >= 1)) throw new RangeError(`blockScores = ${maxScores}; expected ≥ 1`);
  const n = Math.min(T, Math.max(1, Math.ceil((B * config.numHeads * T * T) / maxScores)));
  const rows = Math.ceil(T / n), out: [number, number][] = [];
  for (let i = 0; i < T; i += rows) out.push([i, Math.min(T, i + rows)]);
  return out;
}

/**
 * Causal attention of the query rows first … first + R − 1: q (X, G, R, HS) against all keys
 * k, v (X, T, HS) (those after each row masked) → (X, G, R, HS).
 */
function attendRows(q: JaxArray, k: JaxArray, v: JaxArray, first: number): JaxArray {
  const [X, G, R, HS] = q.shape as [number, number, number, number];
  const S = k.shape[1]!;
  const i = np.arange(G * R, undefined, undefined, { dtype: np.int32 }).mod(R).add(first);
  const causal = np.arange(S, undefined, undefined, { dtype: np.int32 }).reshape([1, S])
    .lessEqual(i.reshape([G * R, 1]));
  const scores = np.matmul(q.reshape([X, G * R, HS]), k.transpose([0, 2, 1])).mul(
    1 / Math.sqrt(HS),
  );
  const a = nn.softmax(np.where(causal, scores, -1e30), -1);
  return np.matmul(a, v).reshape([X, G, R, HS]);
}

/** The compiled head: [loss, [∂/∂x, ∂/∂finalNorm, ∂/∂head]] of final norm → head → loss. */
function headLossFn(config: ModelConfig): Compiled {
  return compiled(config, "headloss", () =>
    jit(valueAndGrad(
      (x: JaxArray, finalNorm: JaxArray, out: JaxArray, targets: JaxArray, wt: JaxArray) => {
        const logits = linear(rmsnorm(x, finalNorm, config.rmsNormEps), out);
        return weightedNll(logits, targets.reshape([targets.size]), wt);
      },
      { argnums: [0, 1, 2] },
    )));
}

/** The compiled embedding lookup (table, tokens) → (B*T, C). */
function embedFnOf(config: ModelConfig, embedding: EmbeddingLookup): Compiled {
  return compiled(
    config,
    `embed:${embedding}`,
    () => jit((table: JaxArray, tok: JaxArray) => embed(table, tok, embedding)),
  );
}

/**
 * {@linkcode lossAndGrad} computed layer by layer, for sequences whose attention does not fit in
 * memory all at once. Same result up to float32 summation order.
 *
 * Method (gradient checkpointing, with the attention blocked like a flash-attention backward):
 * a forward sweep keeps each layer's input x and attention output O, both (B·T, C); the loss
 * head gives ∂L/∂x at the top; then, from the top, each layer's output projection and MLP are
 * differentiated from the kept x and O, its q, k, v recomputed, and its attention differentiated
 * block by block of query rows ({@linkcode queryBlocks}), the blocks' ∂k and ∂v summed; finally
 * the projections give ∂x and the weight gradients. One block's scores against all T keys are
 * the largest arrays alive: B·NH·rows·T ≤ 2²⁴ floats, about 1.2 GB with the softmax backward's
 * temporaries, whatever T is. Every block has the same shape (the last may be shorter) because
 * jax-js's wasm allocator reuses freed memory only for an array of the same size class (64 KiB
 * pages above 64 KiB): blocks that skipped the keys past their last row, each a new size, were
 * measured to exhaust the 4 GiB at T = 4,096 whatever the block size.
 *
 * Cost: the attention runs forward twice (the sweep, and again inside the backward); the
 * one-program backward runs it once but was measured slower (see `lossAndGrad`'s note).
 *
 * @param config the architecture
 * @param params the weights (not consumed)
 * @param batch tokens, targets, mask (and positions), each (B*T)
 * @param B sequences in the batch
 * @param T tokens per sequence
 * @param opts embedding lookup, attention block size
 * @returns the loss and the gradient tree (owned by the caller)
 * @throws RangeError on a wrong length, an out-of-vocabulary token or an all-zero mask
 */
export async function lossAndGradByLayer(
  config: ModelConfig,
  params: Params,
  batch: Batch,
  B: number,
  T: number,
  opts: LossAndGradOptions = {},
): Promise<LossAndGrad> {
  const embedding = embeddingOf(opts);
  const w = checkedWeights(config, batch, B, T), L = config.numLayers;
  const blocks = queryBlocks(config, B, T, opts.blockScores);

  const projectFn = compiled(
    config,
    `project:${B}`,
    () =>
      jit((pre: PreParams, x: JaxArray, cos: JaxArray, sin: JaxArray) =>
        project(config, pre, x, B, cos, sin)
      ),
  );
  const attendFn = (first: number) =>
    compiled(
      config,
      `attend:${first}`,
      () => jit((q: JaxArray, k: JaxArray, v: JaxArray) => attendRows(q, k, v, first)),
    );
  const finishFn = compiled(
    config,
    `finish:${B}`,
    () => jit((post: PostParams, x: JaxArray, o: JaxArray) => finish(config, post, x, o, B)),
  );
  // vector–Jacobian products as gradients of Σ ct ⊙ f; weights are differentiated too, which
  // jax-js runs faster than cotangents with a single consumer (see attentionGradsByLayer)
  const finishBack = compiled(config, `finishback:${B}`, () =>
    jit(valueAndGrad(
      (x: JaxArray, o: JaxArray, post: PostParams, ct: JaxArray) =>
        finish(config, post, x, o, B).mul(ct).sum(),
      { argnums: [0, 1, 2] },
    )));
  const attendBack = (first: number) =>
    compiled(config, `attendback:${first}`, () =>
      jit(valueAndGrad(
        (q: JaxArray, k: JaxArray, v: JaxArray, ct: JaxArray) =>
          attendRows(q, k, v, first).mul(ct).sum(),
        { argnums: [0, 1, 2] },
      )));
  const projectBack = compiled(config, `projectback:${B}`, () =>
    jit(valueAndGrad(
      (
        x: JaxArray,
        pre: PreParams,
        dq: JaxArray,
        dk: JaxArray,
        dv: JaxArray,
        cos: JaxArray,
        sin: JaxArray,
      ) => {
        const [q, k, v] = project(config, pre, x, B, cos, sin);
        return q.mul(dq).sum().add(k.mul(dk).sum()).add(v.mul(dv).sum());
      },
      { argnums: [0, 1] },
    )));
  const embedBack = compiled(config, `embedback:${embedding}`, () =>
    jit(valueAndGrad(
      (table: JaxArray, tok: JaxArray, ct: JaxArray) => embed(table, tok, embedding).mul(ct).sum(),
    )));

  const tables = batch.positions
    ? ropeTablesAt(config, batch.positions, B, T)
    : ropeTables(config, T);
  const rope2 = () => [tables.cos.ref, tables.sin.ref] as const;
  const tokens = tokenArray(batch.tokens, B, T);
  // attention of every block of query rows, concatenated back to (B*NKV, G, T, HS)
  // (each block is run before the next is queued: pending programs hold their buffers, so
  // queued blocks and layers were measured to add up past the 4 GiB)
  const attend = async (q: JaxArray, k: JaxArray, v: JaxArray): Promise<JaxArray> => {
    const parts: JaxArray[] = [];
    for (const [a, b] of blocks) {
      const part = attendFn(a)(q.ref.slice([], [], [a, b]), k.ref, v.ref) as JaxArray;
      parts.push(await settle(part));
    }
    tree.dispose([q, k, v]);
    return parts.length === 1 ? parts[0]! : np.concatenate(parts, 2);
  };

  // forward sweep: keep each layer's input and attention output
  const xs: JaxArray[] = [embedFnOf(config, embedding)(params.embed.ref, tokens.ref) as JaxArray];
  const os: JaxArray[] = [];
  for (let l = 0; l < L; l++) {
    const [pre, post] = splitLayer(params.layers[l]!);
    const [q, k, v] = projectFn(tree.ref(pre), xs[l]!.ref, ...rope2()) as JaxArray[];
    const o = await attend(q!, k!, v!);
    os.push(o.ref);
    xs.push(await settle(finishFn(tree.ref(post), xs[l]!.ref, o) as JaxArray));
  }
  const [lossArr, [dTop, dNorm, dHead]] = headLossFn(config)(
    xs[L]!,
    params.finalNorm.ref,
    (params.lmHead ?? params.embed).ref,
    tokenArray(batch.targets, B, T),
    w,
  ) as [JaxArray, JaxArray[]];
  const loss = (await readF32(lossArr))[0]!;

  // backward, from the top layer down
  let ct = dTop!;
  const layers: LayerParams[] = new Array(L);
  for (let l = L - 1; l >= 0; l--) {
    const [pre, post] = splitLayer(params.layers[l]!);
    const [vC, [dxC, dO, dPost]] = finishBack(xs[l]!.ref, os[l]!, tree.ref(post), ct) as [
      JaxArray,
      [JaxArray, JaxArray, PostParams],
    ];
    vC.dispose();
    const [q, k, v] = projectFn(tree.ref(pre), xs[l]!.ref, ...rope2()) as JaxArray[];
    const dqs: JaxArray[] = [];
    let dk: JaxArray | null = null, dv: JaxArray | null = null;
    for (const [a, b] of blocks) {
      const [vA, [dqb, dkb, dvb]] = attendBack(a)(
        q!.ref.slice([], [], [a, b]),
        k!.ref,
        v!.ref,
        dO.ref.slice([], [], [a, b]),
      ) as [JaxArray, JaxArray[]];
      vA.dispose();
      dqs.push(dqb!);
      dk = dk ? dk.add(dkb!) : dkb!;
      dv = dv ? dv.add(dvb!) : dvb!;
      await settle([dqb!, dk, dv]);
    }
    tree.dispose([q!, k!, v!, dO]);
    const dq = dqs.length === 1 ? dqs[0]! : np.concatenate(dqs, 2);
    const [vP, [dxA, dPre]] = projectBack(
      xs[l]!,
      tree.ref(pre),
      dq,
      dk!,
      dv!,
      ...rope2(),
    ) as [JaxArray, [JaxArray, PreParams]];
    vP.dispose();
    ct = await settle(dxA.add(dxC));
    layers[l] = { ...dPre, ...dPost };
  }
  tree.dispose(tables);
  const [vE, dEmbed] = embedBack(params.embed.ref, tokens, ct) as [JaxArray, JaxArray];
  vE.dispose();
  const grads: Params = params.lmHead
    ? { embed: dEmbed, layers, finalNorm: dNorm!, lmHead: dHead! }
    : { embed: dEmbed.add(dHead!), layers, finalNorm: dNorm! };
  return { loss, grads };
}

/**
 * The logits of every position of one sequence under jax-js (for checking the differentiable
 * model against the CPU runtime's `forwardLogits`).
 *
 * @param config the architecture
 * @param params the weights (not consumed)
 * @param tokens T token ids
 * @param T sequence length
 * @param opts embedding lookup
 * @returns (T, V) logits
 */
export async function jaxLogits(
  config: ModelConfig,
  params: Params,
  tokens: Int32Array,
  T: number,
  opts: JaxModelOptions = {},
): Promise<Float32Array> {
  const embedding = embeddingOf(opts);
  checkShape(1, T);
  checkTokens(config, "tokens", tokens, T);
  const fn = compiled(
    config,
    `logits:${embedding}`,
    () =>
      jit((p: Params, tok: JaxArray, cos: JaxArray, sin: JaxArray) =>
        head(p, trunk(config, p, tok, cos, sin, embedding))
      ),
  );
  const { cos, sin } = ropeTables(config, T);
  const out = fn(tree.ref(params), tokenArray(tokens, 1, T), cos, sin) as JaxArray;
  return await readF32(out);
}

/** The streaming half of a DuoAttention head ({@linkcode duoDistillGrad}). */
export interface DuoStreaming {
  /** Leading tokens a streaming head sees. */
  sink: number;
  /** Most recent tokens a streaming head sees, the query's own included. */
  recent: number;
}

/** The result of {@linkcode duoDistillGrad}. */
export interface DuoDistill {
  /**
   * Σ_t w_t · mean_c (h_t − h*_t)² with w = mask / Σ mask: the gated model's final hidden states
   * (after the final norm) against the full model's.
   */
  loss: number;
  /** ∂loss/∂gates, (L·NKV) in layer-major order. */
  grad: Float32Array;
}

/**
 * DuoAttention's distillation loss of one sequence and its gradient with respect to the gates
 * only (DESIGN.md §4.6): every attention head mixes gate·(full attention) + (1 − gate)·(streaming
 * attention over the sink and a recent window), per kv head, and the final hidden states are
 * compared with the full model's at the masked positions. The L1 penalty on the gates is left to
 * the caller (solver/duo.ts). Runs two jitted programs (the full model's hidden states; the gated
 * model's loss and gradient), compiled per length and cached. Does not consume `params`.
 *
 * @param config the architecture
 * @param params the weights (not consumed)
 * @param gates (L·NKV) gate values, layer-major
 * @param tokens T token ids
 * @param mask (T) weight of each position's hidden-state error (the answer tokens)
 * @param streaming what a streaming head sees
 * @param opts embedding lookup
 * @returns the loss and its gradient with respect to the gates
 * @throws RangeError on a wrong length, an out-of-vocabulary token or an all-zero mask
 */
export async function duoDistillGrad(
  config: ModelConfig,
  params: Params,
  gates: Float32Array,
  tokens: Int32Array,
  mask: Float32Array,
  streaming: DuoStreaming,
  opts: JaxModelOptions = {},
): Promise<DuoDistill> {
  const embedding = embeddingOf(opts);
  const { numLayers: L, numKvHeads: NKV, numHeads: NH } = config;
  const T = tokens.length, { sink, recent } = streaming;
  checkShape(1, T);
  checkTokens(config, "tokens", tokens, T);
  if (gates.length !== L * NKV) {
    throw new RangeError(`gates has length ${gates.length}, expected ${L * NKV}`);
  }
  const w = lossWeights(mask, T);
  const hidden = compiled(
    config,
    `hidden:${embedding}`,
    () =>
      jit((p: Params, tok: JaxArray, cos: JaxArray, sin: JaxArray) =>
        trunk(config, p, tok, cos, sin, embedding)
      ),
  );
  const distill = compiled(config, `duo:${embedding}:${sink}:${recent}`, () =>
    jit(valueAndGrad(
      (g: JaxArray, p: Params, tok: JaxArray, target: JaxArray, wt: JaxArray, cos, sin) => {
        const Tn = tok.shape[1]!;
        const stream = streamingMask(NH / NKV, Tn, sink, recent);
        const h = trunk(config, p, tok, cos, sin, embedding, { gates: g, stream });
        return np.mean(np.square(h.sub(target)), -1).mul(wt).sum();
      },
    )));
  let { cos, sin } = ropeTables(config, T);
  const target = hidden(tree.ref(params), tokenArray(tokens, 1, T), cos, sin) as JaxArray;
  ({ cos, sin } = ropeTables(config, T));
  const [loss, grad] = distill(
    upload(gates, [L, NKV]),
    tree.ref(params),
    tokenArray(tokens, 1, T),
    target,
    w,
    cos,
    sin,
  ) as [JaxArray, JaxArray];
  return { loss: (await readF32(loss))[0]!, grad: await readF32(grad) };
}

/** The result of {@linkcode attentionGrads}. */
export interface AttentionGrads {
  /** Mean cross-entropy over the masked positions. */
  loss: number;
  /** Per layer, (NH, T, T) softmax attention probabilities A (zero above the diagonal). */
  probs: Float32Array[];
  /** Per layer, (NH, T, T) ∂loss/∂A (zero above the diagonal). */
  grads: Float32Array[];
}

/** Receives one layer's statistics; see {@linkcode attentionGradsByLayer}. */
export type LayerStats = (
  layer: number,
  probs: Float32Array,
  grads: Float32Array,
) => void | Promise<void>;

/**
 * Attention probabilities A of every layer and head for one sequence and ∂L/∂A, where L is the
 * masked mean cross-entropy of {@linkcode lossAndGrad}, handed to `onLayer` one layer at a time,
 * from the last layer down to the first.
 *
 * Method: each layer's forward takes a zero perturbation D added to its attention output
 * O = A·V before the output projection, so ∂L/∂D = ∂L/∂O; since O_i = Σ_j A_ij V_j,
 * ∂L/∂A_ij = (∂L/∂O_i) · V_j per head. This equals differentiating with respect to an additive
 * perturbation of A itself. The backward pass runs layer by layer with recomputation
 * (checkpointing): a forward sweep keeps only each layer's input (T, C); then, from the top,
 * one jitted program per layer recomputes that layer, back-propagates the incoming gradient
 * through it and returns its A, V and ∂L/∂O, from which ∂L/∂A = ∂L/∂O·Vᵀ is formed.
 *
 * Memory: jax holds (L+1)·T·C floats of layer inputs plus one layer's backward at a time;
 * measured peak wasm memory (C=128, NH=4, 4 layers): 97 MB at T=512, 321 MB at T=1024,
 * 1.16 GB at T=2048, i.e. about 18·NH·T² floats, so on wasm's 4 GiB T stays below about 3.5k for
 * NH=4 (a training step of `lossAndGrad` needs about 11·L·NH·T²). The (NH, T, T) arrays handed to
 * `onLayer` are JavaScript memory, 2·NH·T² floats per layer: reduce them in the callback rather
 * than keep them. Time: measured about 2× a training step of the same length, including the
 * copies of A and ∂L/∂A to JavaScript.
 *
 * @param config the architecture
 * @param params the weights (not consumed)
 * @param batch one sequence (B = 1): tokens, targets, mask, each (T)
 * @param T sequence length
 * @param onLayer called once per layer, last layer first, with (NH, T, T) A and ∂L/∂A
 * @param opts embedding lookup
 * @returns the loss
 * @throws RangeError on a wrong length, an out-of-vocabulary token or an all-zero mask
 */
export async function attentionGradsByLayer(
  config: ModelConfig,
  params: Params,
  batch: Batch,
  T: number,
  onLayer: LayerStats,
  opts: JaxModelOptions = {},
): Promise<number> {
  const embedding = embeddingOf(opts);
  const { numHeads: NH, numKvHeads: NKV, headDim: HS, numLayers: L } = config;
  const G = NH / NKV;
  const w = checkedWeights(config, batch, 1, T);

  const embedFn = embedFnOf(config, embedding);
  const forwardFn = compiled(
    config,
    "block",
    () =>
      jit((lw: LayerParams, x: JaxArray, cos: JaxArray, sin: JaxArray) => {
        const sh = shared(config, cos, sin);
        const y = block(config, lw, x, 1, sh);
        disposeShared(sh);
        return y;
      }),
  );
  // The backward programs below also differentiate with respect to the weights, and the caller
  // drops those gradients: with a single consumer, jax-js 0.1.25 fuses an elementwise
  // cotangent (softmax, RoPE, SwiGLU backward) into the following matmul and recomputes it for
  // every term of the reduction, which was measured 5–15× slower than the extra weight products.
  const headFn = headLossFn(config);
  // one block's vector–Jacobian product with cotangent ct, as the gradient of Σ ct ⊙ block(x, D)
  // at D = 0 with respect to x, D (and the weights, see above); q, k, v ride along as aux
  const backFn = compiled(config, "blockback", () =>
    jit(valueAndGrad(
      (
        x: JaxArray,
        pert: JaxArray,
        lw: LayerParams,
        ct: JaxArray,
        cos: JaxArray,
        sin: JaxArray,
      ): [JaxArray, LayerSaved] => {
        const sh = shared(config, cos, sin);
        const saved: LayerSaved[] = [];
        const y = block(config, lw, x, 1, sh, pert, saved);
        disposeShared(sh);
        return [y.mul(ct).sum(), saved[0]!];
      },
      { argnums: [0, 1, 2], hasAux: true },
    )));
  const stats = compiled(
    config,
    "attstats",
    () =>
      jit((a: JaxArray, v: JaxArray, dOut: JaxArray): [JaxArray, JaxArray] => {
        // a (NKV, G*T, T), v (NKV, T, HS), dOut (NKV, G*T, HS)
        const Tq = v.shape[1]!;
        const g = np.matmul(dOut, v.transpose([0, 2, 1])); // (NKV, G*T, T)
        return [
          a.reshape([NH, Tq, Tq]),
          np.where(causalMask(G, Tq), g, 0).reshape([NH, Tq, Tq]),
        ];
      }),
  );

  const tables = () => ropeTables(config, T);
  // forward sweep, keeping each layer's input
  const xs: JaxArray[] = [embedFn(params.embed.ref, tokenArray(batch.tokens, 1, T)) as JaxArray];
  for (let l = 0; l < L; l++) {
    const { cos, sin } = tables();
    xs.push(forwardFn(tree.ref(params.layers[l]!), xs[l]!.ref, cos, sin) as JaxArray);
  }
  const [lossArr, [dxTop, dNorm, dHead]] = headFn(
    xs[L]!,
    params.finalNorm.ref,
    (params.lmHead ?? params.embed).ref,
    tokenArray(batch.targets, 1, T),
    w,
  ) as [JaxArray, JaxArray[]];
  dNorm!.dispose();
  dHead!.dispose();
  const loss = (await readF32(lossArr))[0]!;
  let ct = dxTop!;
  for (let l = L - 1; l >= 0; l--) {
    const { cos, sin } = tables();
    const pert = np.zeros([NKV, G * T, HS], { dtype: np.float32 });
    const [[value, [a, v]], [dx, dOut, dW]] = backFn(
      xs[l]!,
      pert,
      tree.ref(params.layers[l]!),
      ct,
      cos,
      sin,
    ) as [[JaxArray, LayerSaved], [JaxArray, JaxArray, LayerParams]];
    value.dispose();
    tree.dispose(dW);
    ct = dx;
    const [probs, g] = stats(a, v, dOut) as [JaxArray, JaxArray];
    await onLayer(l, await readF32(probs), await readF32(g));
  }
  ct.dispose();
  return loss;
}

/**
 * Attention probabilities A of every layer and head for one sequence, and ∂L/∂A, collected for
 * all layers; see {@linkcode attentionGradsByLayer} for the method and the memory it needs
 * (here the results add 2·L·NH·T² floats of JavaScript memory).
 *
 * @param config the architecture
 * @param params the weights (not consumed)
 * @param batch one sequence (B = 1): tokens, targets, mask, each (T)
 * @param T sequence length
 * @param opts embedding lookup
 * @returns the loss, and A and ∂L/∂A per layer, each (NH, T, T)
 */
export async function attentionGrads(
  config: ModelConfig,
  params: Params,
  batch: Batch,
  T: number,
  opts: JaxModelOptions = {},
): Promise<AttentionGrads> {
  const probs: Float32Array[] = [], grads: Float32Array[] = [];
  const loss = await attentionGradsByLayer(config, params, batch, T, (l, a, g) => {
    probs[l] = a;
    grads[l] = g;
  }, opts);
  return { loss, probs, grads };
}
