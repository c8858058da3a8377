/**
 * Matrix products for the CPU backend, behind one small interface so that the engine can be
 * chosen by measurement (`deno task bench cpu` prints both side by side).
 *
 * - `TsGemm`: plain TypeScript; no start-up cost, best for the tiny products of decoding.
 * - `JaxGemm`: `@jax-js/jax` on its WebAssembly backend (SIMD kernels, measured here at
 *   30–40 GFLOP/s on 1024³ against 1.4–1.9 for plain TypeScript); about 1 ms per call.
 * - `AutoGemm`: sends each product to the engine that is faster for its size.
 *
 * @module
 */
import { init as jaxInit, numpy as np } from "@jax-js/jax";
import type { Array as JaxArray } from "@jax-js/jax";

/** One matrix-product engine. All arrays are row-major float32. */
export interface Gemm {
  /** Engine name, as reported in benchmark output and CSV. */
  readonly name: string;
  /**
   * out (M, N) = x (M, K) · wᵀ, where w is (N, K): a linear layer with Hugging Face weights.
   * `constant` marks w as unchanging (a weight), so an engine may keep its own copy of it.
   */
  matmulT(
    out: Float32Array,
    x: Float32Array,
    w: Float32Array,
    M: number,
    K: number,
    N: number,
    constant?: boolean,
  ): void;
  /** out (M, N) = a (M, K) · b (K, N). */
  matmul(
    out: Float32Array,
    a: Float32Array,
    b: Float32Array,
    M: number,
    K: number,
    N: number,
  ): void;
}

/** Plain TypeScript kernels: dot products over contiguous rows, four outputs at a time. */
export class TsGemm implements Gemm {
  readonly name = "ts";

  matmulT(out: Float32Array, x: Float32Array, w: Float32Array, M: number, K: number, N: number) {
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

  matmul(out: Float32Array, a: Float32Array, b: Float32Array, M: number, K: number, N: number) {
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
  }
}

/**
 * `@jax-js/jax` on WebAssembly. Weights marked constant are transposed and uploaded once and
 * kept for the lifetime of the Float32Array that holds them.
 */
export class JaxGemm implements Gemm {
  readonly name = "jax-wasm";
  #weights = new WeakMap<Float32Array, JaxArray>();

  private constructor() {}

  /** Initialises the WebAssembly backend; throws when it is unavailable. */
  static async create(): Promise<JaxGemm> {
    const devices = await jaxInit("wasm");
    if (!devices.includes("wasm")) {
      throw new Error(`@jax-js/jax has no wasm backend here (found: ${devices.join(", ")})`);
    }
    return new JaxGemm();
  }

  matmulT(
    out: Float32Array,
    x: Float32Array,
    w: Float32Array,
    M: number,
    K: number,
    N: number,
    constant = false,
  ) {
    let wt: JaxArray;
    if (constant) {
      let cached = this.#weights.get(w);
      if (cached === undefined) {
        cached = np.array(transpose(w, N, K) as Float32Array<ArrayBuffer>, {
          shape: [K, N],
          device: "wasm",
        });
        this.#weights.set(w, cached);
      }
      wt = cached.ref;
    } else {
      wt = np.array(owned(w, N * K), { shape: [N, K], device: "wasm" }).transpose();
    }
    const xa = np.array(owned(x, M * K), { shape: [M, K], device: "wasm" });
    out.set(np.matmul(xa, wt).dataSync() as Float32Array);
  }

  matmul(out: Float32Array, a: Float32Array, b: Float32Array, M: number, K: number, N: number) {
    const aa = np.array(owned(a, M * K), { shape: [M, K], device: "wasm" });
    const bb = np.array(owned(b, K * N), { shape: [K, N], device: "wasm" });
    out.set(np.matmul(aa, bb).dataSync() as Float32Array);
  }
}

/** The first n elements as a Float32Array over a plain ArrayBuffer (what jax-js accepts). */
function owned(a: Float32Array, n: number): Float32Array<ArrayBuffer> {
  return a.subarray(0, n) as Float32Array<ArrayBuffer>;
}

/** (R, C) → (C, R) */
function transpose(a: Float32Array, R: number, C: number): Float32Array {
  const t = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) t[c * R + r] = a[r * C + c]!;
  return t;
}

/**
 * Sends products of at least `threshold` multiply-adds to the fast engine and the rest to plain
 * TypeScript. The default threshold (2^20) is where the two cost the same on the 2-core
 * development machines: jax-js pays about 1 ms per call, TypeScript runs about 1.5 GFLOP/s.
 */
export class AutoGemm implements Gemm {
  readonly name: string;
  constructor(
    readonly small: Gemm,
    readonly large: Gemm,
    readonly threshold = 1 << 20,
  ) {
    this.name = `${large.name}+${small.name}`;
  }

  matmulT(
    out: Float32Array,
    x: Float32Array,
    w: Float32Array,
    M: number,
    K: number,
    N: number,
    constant = false,
  ) {
    const e = M * K * N >= this.threshold ? this.large : this.small;
    e.matmulT(out, x, w, M, K, N, constant);
  }

  matmul(out: Float32Array, a: Float32Array, b: Float32Array, M: number, K: number, N: number) {
    const e = M * K * N >= this.threshold ? this.large : this.small;
    e.matmul(out, a, b, M, K, N);
  }
}

/** The plain TypeScript engine (shared; it holds no state). */
export const tsGemm: Gemm = new TsGemm();

let fastest: Promise<Gemm> | null = null;

/**
 * The fastest engine available here: jax-js wasm for large products with TypeScript for small
 * ones, or TypeScript alone when jax-js cannot start.
 */
export function fastGemm(): Promise<Gemm> {
  fastest ??= JaxGemm.create().then(
    (j) => new AutoGemm(tsGemm, j) as Gemm,
    () => tsGemm,
  );
  return fastest;
}
