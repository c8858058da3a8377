/**
 * MoA's attention influence (DESIGN.md §3.4) computed a layer and a query block at a time, so
 * that its memory does not grow with T² per layer or with the model's size:
 *
 * - weights: one layer at a time is widened to float32 and put on the jax device (the model
 *   itself stays where it is, compact or not);
 * - activations: a forward sweep keeps each layer's input (T, C) on the host; the backward sweep
 *   recomputes one layer, back-propagates through it and moves down;
 * - attention: queries are cut into blocks of Bq rows; per block the probabilities
 *   A = softmax(q·kᵀ/√HS) (NH, Bq, T) are recomputed, ∂L/∂A = ∂L/∂O · Vᵀ is formed, reduced to
 *   block × block tiles of E (solver/profile.ts) on the device, and the block's share of
 *   ∂L/∂q, ∂L/∂k, ∂L/∂v is taken (the backward pass of attention written out, as flash
 *   attention's is), so no (NH, T, T) array ever exists;
 * - the output head: logits are formed on the host only for the positions the loss covers, with
 *   the CPU engine and the head widened a few rows at a time (`runtime/cpu/weight_matmul.ts`).
 *
 * The whole-model, whole-attention path (`attentionGradsByLayer`, jax_model.ts) gives the same
 * tiles on small shapes and is the reference of this module's tests.
 *
 * Device memory: one layer's float32 weights, a few (T, C) and (T, F) activations, and about six
 * (NH, Bq, T) float32 arrays for a query block; Bq is chosen so one of them takes at most
 * `blockBytes` (default 64 MiB). Host memory: (L + 1)·T·C floats of layer inputs.
 *
 * @module
 */
import { type Array as JaxArray, jit, nn, numpy as np, tree, valueAndGrad } from "@jax-js/jax";
import {
  checkTokens,
  finish,
  type LayerParams,
  project,
  readF32,
  ropeTables,
  upload,
  uploadLayer,
} from "./jax_model.ts";
import { type Model, type ModelConfig, type Weight, widenInto } from "../model.ts";
import type { Engine } from "../cpu/engine.ts";
import { tsEngine } from "../cpu/engine_ts.ts";
import { matmulTWeight, matmulWeight } from "../cpu/weight_matmul.ts";
import {
  EngineLayers,
  type LayerRunDims,
  rmsnormBackward,
  rmsnormSaving,
} from "../cpu/layer_backward.ts";

/** One sequence to profile: tokens, next-token targets and loss weights, each (T). */
export interface InfluenceSample {
  tokens: Int32Array;
  targets: Int32Array;
  mask: Float32Array;
}

/** Options of {@linkcode layerInfluence}. */
export interface InfluenceOptions {
  /** Tile size in tokens. */
  block: number;
  /** Sum E itself instead of |E|. @default false */
  signed?: boolean;
  /**
   * Query rows per block, a multiple of `block`. @default the most whose (NH, Bq, T) float32
   * array fits `blockBytes`, at least `block`
   */
  queryBlock?: number;
  /** Budget of one (NH, Bq, T) array in bytes. @default 64 MiB */
  blockBytes?: number;
  /** Where the layers run. @default "wasm" */
  device?: InfluenceDevice;
  /** The CPU engine of the output head's products, and of the layers on "cpu". @default plain TypeScript */
  engine?: Engine;
}

/** Receives one layer's tiles, last layer first: per kv head a row-major (nb, nb) Float64Array. */
export type LayerTiles = (layer: number, tiles: Float64Array[]) => void | Promise<void>;

/** Keeps 1 − A away from 0 where a row puts all its mass on one key (as solver/profile.ts). */
const MIN_REST = 1e-6;

/** One layer's weights on the jax device, float32. */
type LayerArrays = LayerParams;

/**
 * Causal probabilities of a query block: q (NKV, G, Bq, HS) at positions qs.. against keys
 * (NKV, T, HS) → (NKV, G·Bq, T); q flattened (NKV, G·Bq, HS) rides along.
 */
function blockProbs(q: JaxArray, k: JaxArray, qs: JaxArray): [JaxArray, JaxArray] {
  const [NKV, G, Bq, HS] = q.shape as [number, number, number, number];
  const T = k.shape[1]!;
  const q2 = q.reshape([NKV, G * Bq, HS]);
  const scores = np.matmul(q2.ref, k.transpose([0, 2, 1])).mul(1 / Math.sqrt(HS));
  const row = np.arange(G * Bq, undefined, undefined, { dtype: np.int32 }).mod(Bq).add(qs)
    .reshape([G * Bq, 1]);
  const causal = np.arange(T, undefined, undefined, { dtype: np.int32 }).reshape([1, T])
    .lessEqual(row);
  return [nn.softmax(np.where(causal, scores, -1e30), -1), q2];
}

/** The compiled programs of one config and tile setting. */
interface Programs {
  project: (w: LayerArrays, x: JaxArray, cos: JaxArray, sin: JaxArray) => JaxArray[];
  forwardBlock: (q: JaxArray, k: JaxArray, v: JaxArray, qs: JaxArray) => JaxArray;
  finish: (w: LayerArrays, x: JaxArray, o: JaxArray) => JaxArray;
  /** [value, [∂/∂x, ∂/∂O, ∂/∂weights]] of Σ ct ⊙ finish(x, O) (jax_model.ts) */
  finishBack: (x: JaxArray, o: JaxArray, w: LayerArrays, ct: JaxArray) => [
    JaxArray,
    [JaxArray, JaxArray, LayerArrays],
  ];
  /** [tiles, ∂/∂q block, ∂/∂k so far, ∂/∂v so far] */
  backBlock: (
    q: JaxArray,
    k: JaxArray,
    v: JaxArray,
    dO: JaxArray,
    qs: JaxArray,
    dK: JaxArray,
    dV: JaxArray,
  ) => JaxArray[];
  /** [value, [∂/∂x, ∂/∂weights]] of Σ dQ⊙q + dK⊙k + dV⊙v over the projections */
  projectBack: (
    x: JaxArray,
    w: LayerArrays,
    cos: JaxArray,
    sin: JaxArray,
    dQ: JaxArray,
    dK: JaxArray,
    dV: JaxArray,
  ) => [JaxArray, [JaxArray, LayerArrays]];
}

const programs = new WeakMap<ModelConfig, Map<string, Programs>>();

function programsFor(c: ModelConfig, block: number, signed: boolean): Programs {
  let byKey = programs.get(c);
  if (!byKey) programs.set(c, byKey = new Map());
  const key = `${block}:${signed}`;
  let p = byKey.get(key);
  if (p) return p;
  // As in jax_model.ts's backward programs, the weights are differentiated too and their
  // gradients dropped: with the weights left out, jax-js 0.1.25 fuses elementwise cotangents
  // into the following matmul and recomputes them for every term of its reduction.
  p = {
    project: jit((w: LayerArrays, x: JaxArray, cos: JaxArray, sin: JaxArray) =>
      project(c, w, x, 1, cos, sin)
    ),
    forwardBlock: jit((q: JaxArray, k: JaxArray, v: JaxArray, qs: JaxArray) => {
      const shape = q.shape;
      const [a] = blockProbs(q, k, qs);
      return np.matmul(a, v).reshape(shape);
    }),
    finish: jit((w: LayerArrays, x: JaxArray, o: JaxArray) => finish(c, w, x, o, 1)),
    finishBack: jit(valueAndGrad(
      (x: JaxArray, o: JaxArray, w: LayerArrays, ct: JaxArray) =>
        finish(c, w, x, o, 1).mul(ct).sum(),
      { argnums: [0, 1, 2] },
    )),
    backBlock: jit((
      q: JaxArray,
      k: JaxArray,
      v: JaxArray,
      dO: JaxArray,
      qs: JaxArray,
      dK: JaxArray,
      dV: JaxArray,
    ): JaxArray[] => {
      const [NKV, G, Bq, HS] = q.shape as [number, number, number, number];
      const T = k.shape[1]!;
      const [a, q2] = blockProbs(q, k.ref, qs);
      const dO2 = dO.reshape([NKV, G * Bq, HS]);
      const g = np.matmul(dO2.ref, v.transpose([0, 2, 1])); // ∂L/∂A (NKV, G·Bq, T)
      const diff = g.sub(g.ref.mul(a.ref).sum(-1, { keepdims: true }));
      // E_ij = −A_ij / (1 − A_ij) · (G_ij − Σ_n G_in A_in); zero where A is (masked keys)
      const e = a.ref.div(np.maximum(np.subtract(1, a.ref), MIN_REST)).mul(diff.ref).neg();
      const tiles = (signed ? e : np.abs(e))
        .reshape([NKV, G, Bq / block, block, T / block, block]).sum([1, 3, 5]);
      const dS = a.ref.mul(diff).mul(1 / Math.sqrt(HS)); // softmax backward, times the scale
      const dQ = np.matmul(dS.ref, k.ref).reshape([NKV, G, Bq, HS]);
      return [
        tiles,
        dQ,
        dK.add(np.matmul(dS.transpose([0, 2, 1]), q2)),
        dV.add(np.matmul(a.transpose([0, 2, 1]), dO2)),
      ];
    }),
    projectBack: jit(valueAndGrad(
      (
        x: JaxArray,
        w: LayerArrays,
        cos: JaxArray,
        sin: JaxArray,
        dQ: JaxArray,
        dK: JaxArray,
        dV: JaxArray,
      ) => {
        const [q, k, v] = project(c, w, x, 1, cos, sin);
        return q.mul(dQ).sum().add(k.mul(dK).sum()).add(v.mul(dV).sum());
      },
      { argnums: [0, 1] },
    )),
  } as Programs;
  byKey.set(key, p);
  return p;
}

/** Query rows per block: the most (a multiple of `block`) whose (NH, Bq, T) array fits `bytes`. */
export function queryBlockFor(NH: number, T: number, block: number, bytes = 64 * 2 ** 20): number {
  const fit = Math.floor(bytes / (4 * NH * Math.ceil(T / block) * block) / block) * block;
  return Math.max(block, Math.min(fit, Math.ceil(T / block) * block));
}

/** Rows of the head's loss processed at a time (their logits: rows × V floats). */
const HEAD_ROWS = 64;

/**
 * The masked mean cross-entropy of the final hidden state x (T, C) and its gradient with
 * respect to x, on the host: only rows with loss weight are read.
 */
async function headLossAndGrad(
  model: Model<Weight>,
  x: Float32Array,
  s: InfluenceSample,
  T: number,
  engine: Engine,
): Promise<{ loss: number; dx: Float32Array }> {
  const c = model.config, C = c.hiddenSize, V = c.vocabSize;
  const head = model.weights.lmHead, g = model.weights.finalNorm;
  let total = 0;
  for (let t = 0; t < T; t++) total += s.mask[t]!;
  const rows: number[] = [];
  for (let t = 0; t < T; t++) if (s.mask[t]! > 0) rows.push(t);
  const dx = new Float32Array(x.length);
  let loss = 0;
  for (let r0 = 0; r0 < rows.length; r0 += HEAD_ROWS) {
    const part = rows.slice(r0, r0 + HEAD_ROWS), R = part.length;
    const xr = new Float32Array(R * C);
    part.forEach((t, i) => xr.set(x.subarray(t * C, (t + 1) * C), i * C));
    const { y, r } = rmsnormSaving(xr, g, R, C, c.rmsNormEps);
    const logits = new Float32Array(R * V);
    await matmulTWeight(engine, logits, y, head, R, C, V);
    // d logits = w · (softmax − onehot), w = mask / Σ mask
    for (let i = 0; i < R; i++) {
      const row = logits.subarray(i * V, (i + 1) * V), w = s.mask[part[i]!]! / total;
      let mx = -Infinity;
      for (let v = 0; v < V; v++) mx = Math.max(mx, row[v]!);
      let z = 0;
      for (let v = 0; v < V; v++) z += Math.exp(row[v]! - mx);
      const target = s.targets[part[i]!]!;
      loss += w * (Math.log(z) + mx - row[target]!);
      for (let v = 0; v < V; v++) row[v] = (w * Math.exp(row[v]! - mx)) / z;
      row[target]! -= w;
    }
    const dy = new Float32Array(R * C);
    await matmulWeight(engine, dy, logits, head, R, V, C);
    const dxr = new Float32Array(R * C);
    rmsnormBackward(dxr, xr, g, r, dy, R, C);
    part.forEach((t, i) => dx.set(dxr.subarray(i * C, (i + 1) * C), t * C));
  }
  return { loss, dx };
}

/**
 * One layer forward and backward on some device, between host arrays of (Tp, C) (the layer
 * inputs the driver keeps, and the gradients it passes down).
 */
export interface LayerBackend {
  /** Layer l's output from its input. */
  forward(l: number, x: Float32Array): Promise<Float32Array>;
  /**
   * ∂L/∂(layer l's input) from its input and ∂L/∂(its output); adds the layer's tiles (per kv
   * head, row-major (nb, nb), nb = ⌈T / block⌉) to `tiles`.
   */
  backward(
    l: number,
    x: Float32Array,
    ct: Float32Array,
    tiles: Float64Array[],
  ): Promise<Float32Array>;
}

/** Where the profile's layers run: jax-js on WebAssembly or WebGPU, or the CPU engine. */
export type InfluenceDevice = "wasm" | "webgpu" | "cpu";

/** The layers on the jax device chosen by `initJax`, a layer's weights uploaded per call. */
class JaxLayers implements LayerBackend {
  readonly #p: Programs;

  constructor(readonly model: Model<Weight>, readonly dims: LayerRunDims) {
    this.#p = programsFor(model.config, dims.block, dims.signed);
  }

  #attend(q: JaxArray, k: JaxArray, v: JaxArray): JaxArray {
    const { Tp, queryBlock: Bq } = this.dims;
    const parts: JaxArray[] = [];
    for (let qs = 0; qs < Tp; qs += Bq) {
      const qb = q.ref.slice([], [], [qs, qs + Bq], []);
      parts.push(this.#p.forwardBlock(qb, k.ref, v.ref, np.array([qs], { dtype: np.int32 })));
    }
    q.dispose(), k.dispose(), v.dispose();
    return parts.length === 1 ? parts[0]! : np.concatenate(parts, 2);
  }

  async forward(l: number, xh: Float32Array): Promise<Float32Array> {
    const c = this.model.config, Tp = this.dims.Tp, p = this.#p;
    const lw = uploadLayer(c, this.model.weights.layers[l]!);
    const x = upload(xh, [Tp, c.hiddenSize]);
    const { cos, sin } = ropeTables(c, Tp);
    const [q, k, v] = p.project(tree.ref(lw), x.ref, cos, sin) as [JaxArray, JaxArray, JaxArray];
    return await readF32(p.finish(lw, x, this.#attend(q, k, v)));
  }

  async backward(
    l: number,
    xh: Float32Array,
    cth: Float32Array,
    tiles: Float64Array[],
  ): Promise<Float32Array> {
    const c = this.model.config, p = this.#p;
    const { numKvHeads: NKV, headDim: HS, hiddenSize: C } = c;
    const { T, Tp, queryBlock: Bq, block } = this.dims;
    const nb = Math.ceil(T / block), nbp = Tp / block;
    const lw = uploadLayer(c, this.model.weights.layers[l]!);
    const x = upload(xh, [Tp, C]);
    const { cos, sin } = ropeTables(c, Tp);
    const [q, k, v] = p.project(tree.ref(lw), x.ref, cos.ref, sin.ref) as [
      JaxArray,
      JaxArray,
      JaxArray,
    ];
    const o = this.#attend(q.ref, k.ref, v.ref);
    const [value, [dxOut, dO, dW]] = p.finishBack(x.ref, o, tree.ref(lw), upload(cth, [Tp, C]));
    value.dispose();
    tree.dispose(dW);
    let dK = np.zeros([NKV, Tp, HS], { dtype: np.float32 });
    let dV = np.zeros([NKV, Tp, HS], { dtype: np.float32 });
    const dQs: JaxArray[] = [];
    const rowsPerBlock = Bq / block;
    for (let qs = 0; qs < Tp; qs += Bq) {
      const [t, dQ, nextK, nextV] = p.backBlock(
        q.ref.slice([], [], [qs, qs + Bq], []),
        k.ref,
        v.ref,
        dO.ref.slice([], [], [qs, qs + Bq], []),
        np.array([qs], { dtype: np.int32 }),
        dK,
        dV,
      ) as [JaxArray, JaxArray, JaxArray, JaxArray];
      dK = nextK!, dV = nextV!;
      dQs.push(dQ!);
      const got = await readF32(t!); // (NKV, Bq/block, nbp)
      const qb0 = qs / block;
      for (let g = 0; g < NKV; g++) {
        for (let i = 0; i < rowsPerBlock && qb0 + i < nb; i++) {
          const src = (g * rowsPerBlock + i) * nbp, dst = (qb0 + i) * nb;
          for (let j = 0; j < nb; j++) tiles[g]![dst + j]! += got[src + j]!;
        }
      }
    }
    q.dispose(), k.dispose(), v.dispose(), dO.dispose();
    const dQ = dQs.length === 1 ? dQs[0]! : np.concatenate(dQs, 2);
    const [value2, [dxIn, dW2]] = p.projectBack(x, lw, cos, sin, dQ, dK, dV);
    value2.dispose();
    tree.dispose(dW2);
    return await readF32(dxOut.add(dxIn));
  }
}

/**
 * The attention influence tiles of one sequence, layer by layer (last first) and query block by
 * query block, with their loss: the masked mean cross-entropy. With `device` "wasm" or "webgpu"
 * the layers run in jax-js on the device `initJax` (jax_model.ts) chose, which must match; with
 * "cpu" they run on the CPU engine (runtime/cpu/layer_backward.ts).
 *
 * @param model the weights, float32 or compact; never copied whole
 * @param sample tokens, targets and loss weights (T each)
 * @param onLayer receives each layer's tiles per kv head: Σ|E| (or ΣE) over (query block, key
 *   block), summed over the kv head's query heads, nb = ⌈T / block⌉ a side
 * @param opts tile size, sign, device, query block, memory budget, engine
 * @returns the loss
 * @throws RangeError on a wrong length, an out-of-vocabulary token, an all-zero mask, or a query
 *   block that is not a multiple of the tile size
 */
export async function layerInfluence(
  model: Model<Weight>,
  sample: InfluenceSample,
  onLayer: LayerTiles,
  opts: InfluenceOptions,
): Promise<number> {
  const c = model.config, w = model.weights;
  const { hiddenSize: C, numHeads: NH, numKvHeads: NKV, numLayers: L } = c;
  const block = opts.block, T = sample.tokens.length;
  checkTokens(c, "tokens", sample.tokens, T);
  checkTokens(c, "targets", sample.targets, T);
  if (sample.mask.length !== T) {
    throw new RangeError(`mask has length ${sample.mask.length}, expected ${T}`);
  }
  if (!sample.mask.some((m) => m > 0)) {
    throw new RangeError("mask selects no position (its sum is 0)");
  }
  const Bq = opts.queryBlock ?? queryBlockFor(NH, T, block, opts.blockBytes);
  if (!Number.isInteger(Bq) || Bq < block || Bq % block !== 0) {
    throw new RangeError(`queryBlock ${Bq} is not a positive multiple of the tile size ${block}`);
  }
  // pad to whole query blocks: padded positions come last, carry no loss and are seen by no
  // real query, so every gradient and tile they touch is zero
  const Tp = Math.ceil(T / Bq) * Bq, nb = Math.ceil(T / block);
  const engine = opts.engine ?? tsEngine;
  const dims: LayerRunDims = { T, Tp, queryBlock: Bq, block, signed: opts.signed ?? false };
  const layers: LayerBackend = (opts.device ?? "wasm") === "cpu"
    ? new EngineLayers(model, engine, dims)
    : new JaxLayers(model, dims);

  // forward sweep: the input of every layer, on the host
  const xs: Float32Array[] = [new Float32Array(Tp * C)];
  for (let t = 0; t < T; t++) {
    widenInto(xs[0]!.subarray(t * C, (t + 1) * C), w.embed, sample.tokens[t]! * C, C);
  }
  for (let t = T; t < Tp; t++) xs[0]!.set(xs[0]!.subarray(0, C), t * C);
  for (let l = 0; l < L; l++) xs.push(await layers.forward(l, xs[l]!));

  let { loss, dx: ct } = await headLossAndGrad(model, xs[L]!, sample, T, engine);
  for (let l = L - 1; l >= 0; l--) {
    const tiles = Array.from({ length: NKV }, () => new Float64Array(nb * nb));
    ct = await layers.backward(l, xs[l]!, ct, tiles);
    xs.length = l + 1; // the inputs above are no longer needed
    await onLayer(l, tiles);
  }
  return loss;
}
