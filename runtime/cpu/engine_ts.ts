/**
 * The plain TypeScript engine: no start-up or per-call cost, best for decoding's tiny products.
 *
 * @module
 */
import {
  attentionByProducts,
  type Engine,
  preparedOnce,
  productKernels,
  rangeAttentionByProducts,
} from "./engine.ts";

type F32 = Float32Array;

/** Plain TypeScript kernels: dot products over contiguous rows, four outputs at a time. */
export class TsEngine implements Engine {
  readonly name = "ts";

  /** out = x · wᵀ ({@link matmulTSync}). */
  readonly matmulT: Engine["matmulT"] = (out, x, w, M, K, N) => {
    matmulTSync(out, x, w, M, K, N);
    return Promise.resolve();
  };

  /** out = a · b, row by row; zero entries of a (masked attention) are skipped. */
  readonly matmul: Engine["matmul"] = (out, a, b, M, K, N) => {
    out.fill(0, 0, M * N);
    for (let m = 0; m < M; m++) {
      const oo = m * N;
      for (let k = 0; k < K; k++) {
        const av = a[m * K + k]!;
        if (av === 0) continue;
        const bo = k * N;
        for (let n = 0; n < N; n++) out[oo + n]! += av * b[bo + n]!;
      }
    }
    return Promise.resolve();
  };

  /** Attention from this engine's two products ({@link attentionByProducts}). */
  readonly attention: Engine["attention"] = (out, q, k, v, d) =>
    attentionByProducts(this, out, q, k, v, d);

  /** The layers from this engine's products, reading the model's own weight arrays. */
  /** Range attention from this engine's products ({@link rangeAttentionByProducts}). */
  readonly rangeAttention: Engine["rangeAttention"] = (out, q, k, v, ranges, acc, d) =>
    rangeAttentionByProducts(this, out, q, k, v, ranges, acc, d);

  readonly prepare: Engine["prepare"] = preparedOnce((m) => productKernels(this, m, false));
}

/** out (M, N) = x (M, K) · wᵀ in plain TypeScript, four dot products at a time. */
export function matmulTSync(out: F32, x: F32, w: F32, M: number, K: number, N: number): void {
  for (let m = 0; m < M; m++) {
    const xo = m * K;
    const oo = m * N;
    let n = 0;
    for (; n + 4 <= N; n += 4) {
      const w0 = n * K, w1 = w0 + K, w2 = w1 + K, w3 = w2 + K;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < K; k++) {
        const xv = x[xo + k]!;
        s0 += xv * w[w0 + k]!;
        s1 += xv * w[w1 + k]!;
        s2 += xv * w[w2 + k]!;
        s3 += xv * w[w3 + k]!;
      }
      out[oo + n] = s0;
      out[oo + n + 1] = s1;
      out[oo + n + 2] = s2;
      out[oo + n + 3] = s3;
    }
    for (; n < N; n++) {
      const wo = n * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += x[xo + k]! * w[wo + k]!;
      out[oo + n] = s;
    }
  }
}

/** The plain TypeScript engine (shared; it holds no state). */
export const tsEngine: Engine = new TsEngine();
