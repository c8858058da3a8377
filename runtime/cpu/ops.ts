/**
 * The elementwise and row-wise operations of a LLaMA-family forward pass on the CPU, one
 * function per op with a fixed argument order: outputs first, then inputs/weights, then sizes.
 *
 * @module
 */
import { type ModelConfig, type Weight, widenInto } from "../model.ts";

/**
 * out (T, C) = table[tokens[t]] where table is (V, C), float32 or half precision (rows widened).
 * Throws on an out-of-range token.
 */
export function embedTokens(
  out: Float32Array,
  table: Weight,
  tokens: ArrayLike<number>,
  C: number,
  V: number,
): void {
  for (let t = 0; t < tokens.length; t++) {
    const id = tokens[t]!;
    if (!Number.isInteger(id) || id < 0 || id >= V) {
      throw new RangeError(`token id ${id} at position ${t} is outside the vocabulary [0, ${V})`);
    }
    widenInto(out.subarray(t * C, t * C + C), table, id * C, C);
  }
}

/** out (T, C) = x / sqrt(mean(x²) + eps) · w, per row; out may alias x. */
export function rmsnorm(
  out: Float32Array,
  x: Float32Array,
  w: Float32Array,
  T: number,
  C: number,
  eps: number,
): void {
  for (let t = 0; t < T; t++) {
    const o = t * C;
    let ss = 0;
    for (let c = 0; c < C; c++) ss += x[o + c]! * x[o + c]!;
    const r = 1 / Math.sqrt(ss / C + eps);
    for (let c = 0; c < C; c++) out[o + c] = x[o + c]! * r * w[c]!;
  }
}

/** x (T, N) += b (N) per row. */
export function addBias(x: Float32Array, b: Float32Array, T: number, N: number): void {
  for (let t = 0; t < T; t++) for (let n = 0; n < N; n++) x[t * N + n]! += b[n]!;
}

/** x (n) += y (n). */
export function addInPlace(x: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) x[i]! += y[i]!;
}

/** out (n) = silu(gate) ⊙ up, with silu(g) = g·σ(g); out may alias gate. */
export function siluMul(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    out[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}

/**
 * The RoPE inverse frequencies (HS/2) for a config, including `linear` and `llama3` scaling.
 * Computed in float64.
 */
export function ropeInvFreq(config: ModelConfig): Float64Array {
  const half = config.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = Math.pow(config.ropeTheta, (-2 * i) / config.headDim);
  const s = config.ropeScaling;
  if (s?.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] = inv[i]! / s.factor;
  } else if (s?.type === "llama3") {
    const lowWave = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWave = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i]!;
      const wave = (2 * Math.PI) / f;
      if (wave < highWave) continue;
      if (wave > lowWave) {
        inv[i] = f / s.factor;
      } else {
        const smooth = (s.originalMaxPositionEmbeddings / wave - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = (1 - smooth) * (f / s.factor) + smooth * f;
      }
    }
  }
  return inv;
}

/**
 * Rotates x (T, nHeads, HS) in place by RoPE at the given positions, in the Hugging Face
 * "rotate half" layout: element i pairs with element i + HS/2.
 */
export function applyRope(
  x: Float32Array,
  positions: ArrayLike<number>,
  invFreq: Float64Array,
  T: number,
  nHeads: number,
  HS: number,
): void {
  const half = HS / 2;
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  for (let t = 0; t < T; t++) {
    const p = positions[t]!;
    for (let i = 0; i < half; i++) {
      const a = p * invFreq[i]!;
      cos[i] = Math.cos(a);
      sin[i] = Math.sin(a);
    }
    for (let h = 0; h < nHeads; h++) {
      const o = (t * nHeads + h) * HS;
      for (let i = 0; i < half; i++) {
        const x0 = x[o + i]!;
        const x1 = x[o + i + half]!;
        x[o + i] = x0 * cos[i]! - x1 * sin[i]!;
        x[o + i + half] = x1 * cos[i]! + x0 * sin[i]!;
      }
    }
  }
}

/** Softmax of row[0..n) in place; entries from n on are left alone. */
export function softmaxRow(row: Float32Array, offset: number, n: number): void {
  let max = -Infinity;
  for (let j = 0; j < n; j++) max = Math.max(max, row[offset + j]!);
  let sum = 0;
  for (let j = 0; j < n; j++) {
    const e = Math.exp(row[offset + j]! - max);
    row[offset + j] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let j = 0; j < n; j++) row[offset + j]! *= inv;
}

/** log-softmax of logits (V) evaluated at one index, in float64. */
export function logSoftmaxAt(
  logits: Float32Array,
  offset: number,
  V: number,
  index: number,
): number {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[offset + v]!);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[offset + v]! - max);
  return logits[offset + index]! - max - Math.log(sum);
}

/** The index of the largest entry of logits[offset .. offset+V) (the first one on ties). */
export function argmax(logits: Float32Array, offset: number, V: number): number {
  let best = 0;
  let bestV = -Infinity;
  for (let v = 0; v < V; v++) {
    const x = logits[offset + v]!;
    if (x > bestV) {
      bestV = x;
      best = v;
    }
  }
  return best;
}
