/**
 * One transformer layer forward and backward on the CPU engine, for MoA's attention influence
 * (runtime/autodiff/influence.ts drives it layer by layer): the backward pass written out by
 * hand — SwiGLU, RMSNorm, RoPE (a rotation, undone by rotating back) and attention a block of
 * queries at a time — with every product on the engine (`matmulTWeight`/`matmulWeight`, so
 * F16/BF16 weights are widened a few rows at a time) and the elementwise work in TypeScript.
 * Only what the influence needs is computed: gradients with respect to activations, never to
 * weights.
 *
 * Attention backward per kv head g and query block [qs, qe), with the block's G query heads as
 * rows and only the keys it can see (j < qe):
 *
 *   A = softmax(Q·Kᵀ/√HS) (causal), Γ = ∂L/∂A = dO·Vᵀ, D = A ⊙ (Γ − rowsum(Γ ⊙ A)) / √HS,
 *   dQ = D·K,  dK += Dᵀ·Q,  dV += Aᵀ·dO,
 *
 * and the influence E = −A / (1 − A) · (Γ − rowsum(Γ ⊙ A)) summed into block × block tiles.
 *
 * @module
 */
import type { Engine } from "./engine.ts";
import { applyRope, ropeInvFreq } from "./ops.ts";
import { matmulTWeight, matmulWeight } from "./weight_matmul.ts";
import type { LayerWeights, Model, Weight } from "../model.ts";

/** Keeps 1 − A away from 0 where a row puts all its mass on one key (as solver/profile.ts). */
const MIN_REST = 1e-6;

/**
 * y = x·r·g per row with r = 1/√(mean(x²) + ε) (RMSNorm), returning r for the backward pass.
 * @param x (rows, C)
 * @param g (C) the norm's weight
 * @returns y (rows, C) and r (rows)
 */
export function rmsnormSaving(
  x: Float32Array,
  g: Float32Array,
  rows: number,
  C: number,
  eps: number,
): { y: Float32Array; r: Float64Array } {
  const y = new Float32Array(rows * C), r = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[i * C + c]! ** 2;
    const ri = r[i] = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) y[i * C + c] = x[i * C + c]! * ri * g[c]!;
  }
  return { y, r };
}

/**
 * RMSNorm's backward: dx = r·(g ⊙ dy) − x · r³/C · Σ_c g_c·dy_c·x_c per row, added to `out`.
 * @param out (rows, C) receives dx (added)
 * @param x (rows, C) the norm's input
 * @param r (rows) from {@linkcode rmsnormSaving}
 * @param dy (rows, C) the gradient of its output
 */
export function rmsnormBackward(
  out: Float32Array,
  x: Float32Array,
  g: Float32Array,
  r: Float64Array,
  dy: Float32Array,
  rows: number,
  C: number,
): void {
  for (let i = 0; i < rows; i++) {
    const o = i * C, ri = r[i]!;
    let dot = 0;
    for (let c = 0; c < C; c++) dot += g[c]! * dy[o + c]! * x[o + c]!;
    const k = ri ** 3 * dot / C;
    for (let c = 0; c < C; c++) out[o + c]! += ri * g[c]! * dy[o + c]! - x[o + c]! * k;
  }
}

/** (T, n·HS) token-major → (n, T, HS) head-major. */
function headMajor(a: Float32Array, T: number, n: number, HS: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < n; h++) {
      out.set(a.subarray((t * n + h) * HS, (t * n + h + 1) * HS), (h * T + t) * HS);
    }
  }
  return out;
}

/** out (cols, rows) = aᵀ for a (rows, cols). */
function transpose(out: Float32Array, a: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c]!;
  }
}

/** Sizes of a {@linkcode EngineLayers} run. */
export interface LayerRunDims {
  /** Real tokens. */
  T: number;
  /** Tokens after padding (a multiple of `queryBlock`); padded rows come last. */
  Tp: number;
  /** Query rows per attention block. */
  queryBlock: number;
  /** Tile size of the influence. */
  block: number;
  /** Sum E instead of |E|. */
  signed: boolean;
}

/** A layer's projections: the normalised input, q/k/v after RoPE, token-major. */
interface Projected {
  r: Float64Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
}

/**
 * The layers of a model on a CPU engine: forward, and backward with the attention influence, for
 * the layer-by-layer profile (runtime/autodiff/influence.ts).
 */
export class EngineLayers {
  readonly #positions: Int32Array;
  readonly #back: Int32Array;
  readonly #invFreq: Float64Array;

  /**
   * @param model the weights, float32 or compact
   * @param engine the products' engine
   * @param dims sequence, padding, blocks, tiles
   */
  constructor(readonly model: Model<Weight>, readonly engine: Engine, readonly dims: LayerRunDims) {
    this.#positions = Int32Array.from({ length: dims.Tp }, (_, i) => i);
    this.#back = this.#positions.map((p) => -p);
    this.#invFreq = ropeInvFreq(model.config);
  }

  async #project(w: LayerWeights<Weight>, x: Float32Array): Promise<Projected> {
    const c = this.model.config, Tp = this.dims.Tp, C = c.hiddenSize, HS = c.headDim;
    const QD = c.numHeads * HS, KD = c.numKvHeads * HS;
    const { y: h, r } = rmsnormSaving(x, w.inputNorm, Tp, C, c.rmsNormEps);
    const q = new Float32Array(Tp * QD),
      k = new Float32Array(Tp * KD),
      v = new Float32Array(Tp * KD);
    await matmulTWeight(this.engine, q, h, w.wq, Tp, C, QD);
    await matmulTWeight(this.engine, k, h, w.wk, Tp, C, KD);
    await matmulTWeight(this.engine, v, h, w.wv, Tp, C, KD);
    for (const [a, b] of [[q, w.bq], [k, w.bk], [v, w.bv]] as const) {
      if (!b) continue;
      for (let t = 0; t < Tp; t++) for (let i = 0; i < b.length; i++) a[t * b.length + i]! += b[i]!;
    }
    applyRope(q, this.#positions, this.#invFreq, Tp, c.numHeads, HS);
    applyRope(k, this.#positions, this.#invFreq, Tp, c.numKvHeads, HS);
    return { r, q, k, v };
  }

  /** Causal attention output (Tp, NH·HS) on the engine. */
  async #attend(p: Projected): Promise<Float32Array> {
    const c = this.model.config, Tp = this.dims.Tp, HS = c.headDim, NKV = c.numKvHeads;
    const out = new Float32Array(Tp * c.numHeads * HS);
    await this.engine.attention(
      out,
      p.q,
      headMajor(p.k, Tp, NKV, HS),
      headMajor(p.v, Tp, NKV, HS),
      {
        T: Tp,
        S: Tp,
        NH: c.numHeads,
        NKV,
        HS,
        first: 0,
      },
    );
    return out;
  }

  /**
   * x + O·Woᵀ, its RMSNorm and the MLP's gate and up products: what the rest of the layer and its
   * backward need.
   */
  async #middle(w: LayerWeights<Weight>, x: Float32Array, o: Float32Array) {
    const c = this.model.config, Tp = this.dims.Tp, C = c.hiddenSize, F = c.intermediateSize;
    const x1 = new Float32Array(Tp * C);
    await matmulTWeight(this.engine, x1, o, w.wo, Tp, c.numHeads * c.headDim, C);
    for (let i = 0; i < x1.length; i++) x1[i]! += x[i]!;
    const { y: h2, r } = rmsnormSaving(x1, w.postNorm, Tp, C, c.rmsNormEps);
    const gate = new Float32Array(Tp * F), up = new Float32Array(Tp * F);
    await matmulTWeight(this.engine, gate, h2, w.wGate, Tp, C, F);
    await matmulTWeight(this.engine, up, h2, w.wUp, Tp, C, F);
    return { x1, r, gate, up };
  }

  /**
   * Layer l on x (Tp, C).
   * @returns the layer's output (Tp, C)
   */
  async forward(l: number, x: Float32Array): Promise<Float32Array> {
    const c = this.model.config, w = this.model.weights.layers[l]!, Tp = this.dims.Tp;
    const C = c.hiddenSize, F = c.intermediateSize;
    const m = await this.#middle(w, x, await this.#attend(await this.#project(w, x)));
    const a = m.gate;
    for (let i = 0; i < a.length; i++) a[i] = a[i]! / (1 + Math.exp(-a[i]!)) * m.up[i]!;
    const y = new Float32Array(Tp * C);
    await matmulTWeight(this.engine, y, a, w.wDown, Tp, F, C);
    for (let i = 0; i < y.length; i++) y[i]! += m.x1[i]!;
    return y;
  }

  /**
   * The gradient through layer l, and its attention influence.
   * @param x (Tp, C) the layer's input
   * @param ct (Tp, C) ∂L/∂(the layer's output)
   * @param tiles per kv head a row-major (nb, nb) array, nb = ⌈T / block⌉: the layer's tiles are
   *   added to it
   * @returns ∂L/∂x (Tp, C)
   */
  async backward(
    l: number,
    x: Float32Array,
    ct: Float32Array,
    tiles: Float64Array[],
  ): Promise<Float32Array> {
    const c = this.model.config, w = this.model.weights.layers[l]!, e = this.engine;
    const { Tp } = this.dims, C = c.hiddenSize, F = c.intermediateSize, HS = c.headDim;
    const QD = c.numHeads * HS, KD = c.numKvHeads * HS;
    const p = await this.#project(w, x);
    const m = await this.#middle(w, x, await this.#attend(p));
    // MLP: a = silu(gate) ⊙ up; y = x1 + a·W_downᵀ
    const da = new Float32Array(Tp * F);
    await matmulWeight(e, da, ct, w.wDown, Tp, C, F);
    for (let i = 0; i < da.length; i++) {
      const g = m.gate[i]!, s = 1 / (1 + Math.exp(-g));
      const d = da[i]!;
      m.gate[i] = d * m.up[i]! * s * (1 + g * (1 - s)); // ∂/∂gate
      m.up[i] = d * g * s; // ∂/∂up
    }
    const dh2 = new Float32Array(Tp * C), part = new Float32Array(Tp * C);
    await matmulWeight(e, dh2, m.gate, w.wGate, Tp, F, C);
    await matmulWeight(e, part, m.up, w.wUp, Tp, F, C);
    for (let i = 0; i < dh2.length; i++) dh2[i]! += part[i]!;
    const dx1 = ct.slice();
    rmsnormBackward(dx1, m.x1, w.postNorm, m.r, dh2, Tp, C);
    // attention: O·Woᵀ
    const dO = new Float32Array(Tp * QD);
    await matmulWeight(e, dO, dx1, w.wo, Tp, C, QD);
    const { dQ, dK, dV } = await this.#attentionBackward(p, dO, tiles);
    applyRope(dQ, this.#back, this.#invFreq, Tp, c.numHeads, HS);
    applyRope(dK, this.#back, this.#invFreq, Tp, c.numKvHeads, HS);
    const dh = new Float32Array(Tp * C);
    await matmulWeight(e, dh, dQ, w.wq, Tp, QD, C);
    await matmulWeight(e, part, dK, w.wk, Tp, KD, C);
    for (let i = 0; i < dh.length; i++) dh[i]! += part[i]!;
    await matmulWeight(e, part, dV, w.wv, Tp, KD, C);
    for (let i = 0; i < dh.length; i++) dh[i]! += part[i]!;
    rmsnormBackward(dx1, x, w.inputNorm, p.r, dh, Tp, C);
    return dx1;
  }

  async #attentionBackward(p: Projected, dO: Float32Array, tiles: Float64Array[]) {
    const c = this.model.config, e = this.engine;
    const { T, Tp, queryBlock: Bq, block, signed } = this.dims;
    const NH = c.numHeads, NKV = c.numKvHeads, HS = c.headDim, G = NH / NKV;
    const scale = 1 / Math.sqrt(HS), nb = Math.ceil(T / block), R = G * Bq;
    const kh = headMajor(p.k, Tp, NKV, HS), vh = headMajor(p.v, Tp, NKV, HS);
    const dQ = new Float32Array(Tp * NH * HS);
    const dK = new Float32Array(Tp * NKV * HS), dV = new Float32Array(Tp * NKV * HS);
    const qb = new Float32Array(R * HS),
      ob = new Float32Array(R * HS),
      dqb = new Float32Array(R * HS);
    const a = new Float32Array(R * Tp), d = new Float32Array(R * Tp), t1 = new Float32Array(R * Tp);
    const acc = new Float32Array(Tp * HS);
    for (let g = 0; g < NKV; g++) {
      const K = kh.subarray(g * Tp * HS, (g + 1) * Tp * HS);
      const V = vh.subarray(g * Tp * HS, (g + 1) * Tp * HS);
      const dKg = new Float32Array(Tp * HS), dVg = new Float32Array(Tp * HS);
      const out = tiles[g]!;
      for (let qs = 0; qs < Tp; qs += Bq) {
        const n = Math.min(qs + Bq, Tp); // keys the block sees: j < n
        // rows i·Bq + t: query head g·G + i at token qs + t
        for (let i = 0; i < G; i++) {
          for (let t = 0; t < Bq; t++) {
            const src = ((qs + t) * NH + g * G + i) * HS, dst = (i * Bq + t) * HS;
            qb.set(p.q.subarray(src, src + HS), dst);
            ob.set(dO.subarray(src, src + HS), dst);
          }
        }
        await e.matmulT(a, qb, K, R, HS, n);
        await e.matmulT(d, ob, V, R, HS, n); // Γ = ∂L/∂A
        for (let row = 0; row < R; row++) {
          const t = row % Bq, tok = qs + t, seen = tok + 1, o = row * n;
          // softmax over the visible keys, every sum over the stored float32 values (so a row
          // with one visible key holds exactly 1, as the reference's does)
          let mx = -Infinity;
          for (let j = 0; j < seen; j++) {
            a[o + j]! *= scale;
            mx = Math.max(mx, a[o + j]!);
          }
          let z = 0;
          for (let j = 0; j < seen; j++) {
            a[o + j] = Math.exp(a[o + j]! - mx);
            z += a[o + j]!;
          }
          let dot = 0;
          for (let j = 0; j < seen; j++) {
            a[o + j]! /= z;
            dot += d[o + j]! * a[o + j]!;
          }
          a.fill(0, o + seen, o + n);
          d.fill(0, o + seen, o + n);
          const tileRow = tok < T ? Math.floor(tok / block) * nb : -1;
          for (let j = 0; j < seen; j++) {
            const aj = a[o + j]!, diff = d[o + j]! - dot;
            if (tileRow >= 0 && aj !== 0 && j < T) {
              const ej = -(aj / Math.max(MIN_REST, 1 - aj)) * diff;
              out[tileRow + Math.floor(j / block)]! += signed ? ej : Math.abs(ej);
            }
            d[o + j] = aj * diff * scale; // D
          }
        }
        await e.matmul(dqb, d, K, R, n, HS);
        for (let i = 0; i < G; i++) {
          for (let t = 0; t < Bq; t++) {
            const dst = ((qs + t) * NH + g * G + i) * HS;
            dQ.set(dqb.subarray((i * Bq + t) * HS, (i * Bq + t + 1) * HS), dst);
          }
        }
        transpose(t1, d, R, n);
        await e.matmul(acc, t1, qb, n, R, HS);
        for (let i = 0; i < n * HS; i++) dKg[i]! += acc[i]!;
        transpose(t1, a, R, n);
        await e.matmul(acc, t1, ob, n, R, HS);
        for (let i = 0; i < n * HS; i++) dVg[i]! += acc[i]!;
      }
      for (let t = 0; t < Tp; t++) {
        dK.set(dKg.subarray(t * HS, (t + 1) * HS), (t * NKV + g) * HS);
        dV.set(dVg.subarray(t * HS, (t + 1) * HS), (t * NKV + g) * HS);
      }
    }
    return { dQ, dK, dV };
  }
}
