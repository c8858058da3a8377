/**
 * Matrix products with a weight in any storage (`Weight`, runtime/model.ts): float32 weights go
 * to the engine as they are; half-precision ones are widened a block of rows at a time into a
 * scratch buffer of {@linkcode WIDEN_ELEMENTS} floats, and each block is one engine call. The
 * model thus stays in its checkpoint's bytes, and only a few megabytes are ever float32 copies.
 *
 * Cost of widening: one pass over the weight's 16-bit patterns per product, which prefill
 * (M rows) spreads over M output rows and decode (M = 1) pays in full; `deno task bench scale`
 * measures both beside float32 weights.
 *
 * @module
 */
import { isHalf, type Weight, weightLength, widenInto } from "../model.ts";
import { giveKernel, KERNEL_ELEMENTS, KERNEL_MAX_K, takeKernel } from "./half_kernel.ts";

/** An engine's two matrix products, all these functions call (`Engine`, engine.ts, extends it). */
export interface Products {
  /** out (M, N) = x (M, K) · wᵀ; `constant` marks w as a weight. */
  matmulT(
    out: Float32Array,
    x: Float32Array,
    w: Float32Array,
    M: number,
    K: number,
    N: number,
    constant?: boolean,
  ): Promise<void>;
  /** out (M, N) = a (M, K) · b (K, N). */
  matmul(
    out: Float32Array,
    a: Float32Array,
    b: Float32Array,
    M: number,
    K: number,
    N: number,
  ): Promise<void>;
}

/** Floats per scratch block (4 MiB): a weight is widened this many elements at a time. */
export const WIDEN_ELEMENTS = KERNEL_ELEMENTS;

/**
 * Rows of x up to which a half weight's product runs on the SIMD matrix–vector kernel (reading
 * the weight once per row, widened in registers) instead of widening it for the engine.
 */
export const GEMV_MAX_ROWS = 2;

/** Scratch buffers not in use; calls may overlap (engines are async), so each takes its own. */
const pool: Float32Array[] = [];

function take(n: number): Float32Array {
  const i = pool.findIndex((b) => b.length >= n);
  return i < 0 ? new Float32Array(Math.max(n, WIDEN_ELEMENTS)) : pool.splice(i, 1)[0]!;
}

function give(b: Float32Array): void {
  if (pool.length < 8) pool.push(b);
}

function checkLength(w: Weight, n: number, what: string): void {
  if (weightLength(w) !== n) {
    throw new RangeError(`${what}: the weight has ${weightLength(w)} elements, expected ${n}`);
  }
}

/**
 * out (M, N) = x (M, K) · wᵀ, w (N, K) in any storage: a linear layer with Hugging Face weights.
 * A half-precision w is widened ⌊{@linkcode WIDEN_ELEMENTS} / K⌋ rows at a time.
 *
 * @example
 * ```ts
 * import { matmulTWeight } from "./weight_matmul.ts";
 * import { toHalf } from "../model.ts";
 * // any engine has these two products (engine_ts.ts's tsEngine, for one); naive ones here
 * const naive = (t: boolean) => (o: Float32Array, a: Float32Array, b: Float32Array, M: number, K: number, N: number) => {
 *   for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
 *     let s = 0;
 *     for (let k = 0; k < K; k++) s += a[m * K + k]! * b[t ? n * K + k : k * N + n]!;
 *     o[m * N + n] = s;
 *   }
 *   return Promise.resolve();
 * };
 * const tsEngine = { matmulT: naive(true), matmul: naive(false) };
 * const out = new Float32Array(2);
 * const w = toHalf(Float32Array.from([1, 2, 3, 4]), "BF16"); // (2, 2)
 * await matmulTWeight(tsEngine, out, Float32Array.from([1, 1]), w, 1, 2, 2);
 * console.log(out); // Float32Array(2) [ 3, 7 ]
 * ```
 */
export async function matmulTWeight(
  engine: Products,
  out: Float32Array,
  x: Float32Array,
  w: Weight,
  M: number,
  K: number,
  N: number,
): Promise<void> {
  checkLength(w, N * K, "matmulTWeight");
  if (!isHalf(w)) return engine.matmulT(out, x, w, M, K, N, true);
  const rows = Math.max(1, Math.min(N, Math.floor(WIDEN_ELEMENTS / K)));
  const kernel = takeKernel();
  if (kernel !== null && M <= GEMV_MAX_ROWS && K % 8 === 0 && K <= KERNEL_MAX_K) {
    // decode: the SIMD product widens in registers, and the weight is read once per row of x
    try {
      for (let n0 = 0; n0 < N; n0 += rows) {
        kernel.gemv(out, x, w, M, K, N, n0, Math.min(rows, N - n0));
      }
    } finally {
      giveKernel(kernel);
    }
    return;
  }
  const scratch = kernel === null ? take(rows * K) : null;
  const part = M === 1 ? null : take(M * rows);
  try {
    for (let n0 = 0; n0 < N; n0 += rows) {
      const nc = Math.min(rows, N - n0);
      let wide: Float32Array;
      if (kernel !== null) wide = kernel.widen(w, n0 * K, nc * K);
      else widenInto(wide = scratch!, w, n0 * K, nc * K);
      if (part === null) {
        await engine.matmulT(out.subarray(n0, n0 + nc), x, wide, 1, K, nc);
        continue;
      }
      await engine.matmulT(part, x, wide, M, K, nc);
      for (let m = 0; m < M; m++) out.set(part.subarray(m * nc, (m + 1) * nc), m * N + n0);
    }
  } finally {
    if (kernel !== null) giveKernel(kernel);
    if (scratch !== null) give(scratch);
    if (part !== null) give(part);
  }
}

/**
 * out (M, N) = a (M, K) · w, w (K, N) in any storage (for example a gradient through a linear
 * layer: dx = dy · W). A half-precision w is widened ⌊{@linkcode WIDEN_ELEMENTS} / N⌋ rows at a
 * time and the partial products are summed.
 *
 * @example
 * ```ts
 * import { matmulWeight } from "./weight_matmul.ts";
 * import { toHalf } from "../model.ts";
 * // any engine has these two products (engine_ts.ts's tsEngine, for one); naive ones here
 * const naive = (t: boolean) => (o: Float32Array, a: Float32Array, b: Float32Array, M: number, K: number, N: number) => {
 *   for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
 *     let s = 0;
 *     for (let k = 0; k < K; k++) s += a[m * K + k]! * b[t ? n * K + k : k * N + n]!;
 *     o[m * N + n] = s;
 *   }
 *   return Promise.resolve();
 * };
 * const tsEngine = { matmulT: naive(true), matmul: naive(false) };
 * const out = new Float32Array(2);
 * const w = toHalf(Float32Array.from([1, 2, 3, 4]), "F16"); // (2, 2)
 * await matmulWeight(tsEngine, out, Float32Array.from([1, 1]), w, 1, 2, 2);
 * console.log(out); // Float32Array(2) [ 4, 6 ]
 * ```
 */
export async function matmulWeight(
  engine: Products,
  out: Float32Array,
  a: Float32Array,
  w: Weight,
  M: number,
  K: number,
  N: number,
): Promise<void> {
  checkLength(w, K * N, "matmulWeight");
  if (!isHalf(w)) return engine.matmul(out, a, w, M, K, N);
  const rows = Math.max(1, Math.min(K, Math.floor(WIDEN_ELEMENTS / N)));
  const kernel = takeKernel();
  const scratch = kernel === null ? take(rows * N) : null;
  const cols = take(M * rows);
  const part = take(M * N);
  out.fill(0, 0, M * N);
  try {
    for (let k0 = 0; k0 < K; k0 += rows) {
      const kc = Math.min(rows, K - k0);
      let wide: Float32Array;
      if (kernel !== null) wide = kernel.widen(w, k0 * N, kc * N);
      else widenInto(wide = scratch!, w, k0 * N, kc * N);
      for (let m = 0; m < M; m++) cols.set(a.subarray(m * K + k0, m * K + k0 + kc), m * kc);
      await engine.matmul(part, cols, wide, M, kc, N);
      for (let i = 0; i < M * N; i++) out[i]! += part[i]!;
    }
  } finally {
    if (kernel !== null) giveKernel(kernel);
    if (scratch !== null) give(scratch);
    give(cols);
    give(part);
  }
}
