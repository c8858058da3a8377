/**
 * `@jax-js/jax` on WebAssembly as an engine (30–40 GFLOP/s on 1024³ but about 1 ms per call, and
 * its attention measured 5× slower than onnxruntime's); kept for comparison.
 *
 * @module
 */
import { init as jaxInit, numpy as np } from "@jax-js/jax";
import type { Array as JaxArray } from "@jax-js/jax";
import {
  attentionByProducts,
  type Engine,
  owned,
  preparedOnce,
  productKernels,
  rangeAttentionByProducts,
} from "./engine.ts";

/**
 * `@jax-js/jax` on WebAssembly. Weights marked constant are transposed and uploaded once and
 * kept for the lifetime of the Float32Array that holds them.
 */
export class JaxEngine implements Engine {
  readonly name = "jax-wasm";
  #weights = new WeakMap<Float32Array, JaxArray>();

  private constructor() {}

  /** Initialises the WebAssembly backend; throws when it is unavailable. */
  static async create(): Promise<JaxEngine> {
    const devices = await jaxInit("wasm");
    if (!devices.includes("wasm")) {
      throw new Error(`@jax-js/jax has no wasm backend here (found: ${devices.join(", ")})`);
    }
    return new JaxEngine();
  }

  /** out = x · wᵀ; a constant w is transposed and uploaded once. */
  readonly matmulT: Engine["matmulT"] = (out, x, w, M, K, N, constant = false) => {
    let wt: JaxArray;
    if (constant) {
      let cached = this.#weights.get(w);
      if (cached === undefined) {
        cached = np.array(transpose(w, N, K), { shape: [K, N], device: "wasm" });
        this.#weights.set(w, cached);
      }
      wt = cached.ref;
    } else {
      wt = matrix(w, N, K).transpose();
    }
    return product(out, matrix(x, M, K), wt);
  };

  /** out = a · b. */
  readonly matmul: Engine["matmul"] = (out, a, b, M, K, N) =>
    product(out, matrix(a, M, K), matrix(b, K, N));

  /** Attention from this engine's two products ({@link attentionByProducts}). */
  readonly attention: Engine["attention"] = (out, q, k, v, d) =>
    attentionByProducts(this, out, q, k, v, d);

  /** The layers from this engine's products, q/k/v and gate/up fused. */
  /** Range attention from this engine's products ({@link rangeAttentionByProducts}). */
  readonly rangeAttention: Engine["rangeAttention"] = (out, q, k, v, ranges, acc, d) =>
    rangeAttentionByProducts(this, out, q, k, v, ranges, acc, d);

  readonly prepare: Engine["prepare"] = preparedOnce((m) => productKernels(this, m, true));
}

/** The first rows × cols values of `a` as a matrix on the WebAssembly device. */
function matrix(a: Float32Array, rows: number, cols: number): JaxArray {
  return np.array(owned(a, rows * cols), { shape: [rows, cols], device: "wasm" });
}

/** out = a · b, computed by jax-js and copied back. */
function product(out: Float32Array, a: JaxArray, b: JaxArray): Promise<void> {
  out.set(np.matmul(a, b).dataSync() as Float32Array);
  return Promise.resolve();
}

/** (R, C) → (C, R) */
function transpose(a: Float32Array, R: number, C: number): Float32Array<ArrayBuffer> {
  const t = new Float32Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) t[c * R + r] = a[r * C + c]!;
  return t;
}
