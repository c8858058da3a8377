/**
 * Host side of the matrix products: `gemv.wgsl` for decode (bandwidth-bound, 8 rows per weight read) and
 * `matmul.wgsl` for prefill (4 × 4 register tiles, barrier-free).
 *
 * @module
 */
import type { Gpu } from "../device.ts";
import { type KernelConfig, makeOp, type Op, rowGrid } from "./_op.ts";
import gemvSrc from "./gemv.wgsl" with { type: "text" };
import matmulSrc from "./matmul.wgsl" with { type: "text" };

/** Rows up to which the bandwidth-bound kernel (gemv.wgsl, 8 rows per weight read) is used. */
export const GEMV_MAX_ROWS = 64;

/** Options of {@link matmulOp}. */
export interface MatmulOptions {
  /** add the product to y instead of overwriting it (residual connections) */
  accumulate?: boolean;
  /** (N) bias added to every row */
  bias?: GPUBuffer | null;
}

/**
 * y (+)= x · wᵀ (+ bias): gemv.wgsl when M ≤ 64 (decode batches), matmul.wgsl otherwise.
 * @param gpu the device
 * @param k kernel config
 * @param y (M, N) f32
 * @param x (M, K) f32
 * @param w (N, K) weights
 * @param M rows
 * @param N outputs
 * @param K inputs (a multiple of 4)
 * @param opts accumulate, bias
 * @returns the dispatch
 */
export function matmulOp(
  gpu: Gpu,
  k: KernelConfig,
  y: GPUBuffer,
  x: GPUBuffer,
  w: GPUBuffer,
  M: number,
  N: number,
  K: number,
  opts: MatmulOptions = {},
): Promise<Op> {
  if (K % 4 !== 0) throw new RangeError(`matmulOp(): K is ${K}; expected a multiple of 4`);
  const flags = (opts.accumulate ? 1 : 0) | (opts.bias ? 2 : 0);
  const buffers = [x, w, opts.bias ?? w, y];
  if (M <= GEMV_MAX_ROWS) {
    const grid = rowGrid(Math.ceil(N / 4));
    grid[2] = Math.ceil(M / 8);
    return makeOp(gpu, "gemv.wgsl", gemvSrc, k, [M, N, K, flags], buffers, grid);
  }
  const grid: [number, number, number] = [Math.ceil(N / 32), Math.ceil(M / 32), 1];
  return makeOp(gpu, "matmul.wgsl", matmulSrc, k, [M, N, K, flags], buffers, grid);
}
