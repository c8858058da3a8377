/**
 * Host side of the row-wise kernels: embedding lookup (`embed.wgsl`), RMSNorm (`rmsnorm.wgsl`),
 * random fill (`fill.wgsl`, for benchmark weights),
 * RoPE (`rope.wgsl`) and SwiGLU (`swiglu.wgsl`).
 *
 * @module
 */
import type { Gpu } from "../device.ts";
import { flatGrid, type KernelConfig, makeOp, type Op, rowGrid } from "./_op.ts";
import embedSrc from "./embed.wgsl" with { type: "text" };
import rmsnormSrc from "./rmsnorm.wgsl" with { type: "text" };
import ropeSrc from "./rope.wgsl" with { type: "text" };
import swigluSrc from "./swiglu.wgsl" with { type: "text" };
import fillSrc from "./fill.wgsl" with { type: "text" };

/**
 * x[r, :] = table[tokens[r], :].
 * @param gpu the device
 * @param k kernel config
 * @param x (rows, C) f32 output
 * @param tokens (rows) u32
 * @param table (V, C) weights
 * @param rows rows
 * @param C width
 * @returns the dispatch
 */
export function embedOp(
  gpu: Gpu,
  k: KernelConfig,
  x: GPUBuffer,
  tokens: GPUBuffer,
  table: GPUBuffer,
  rows: number,
  C: number,
): Promise<Op> {
  return makeOp(gpu, "embed.wgsl", embedSrc, k, [rows, C], [tokens, table, x], flatGrid(rows * C));
}

/**
 * out = RMSNorm(x) · w, row by row.
 * @param gpu the device
 * @param k kernel config
 * @param out (rows, C) f32
 * @param x (rows, C) f32
 * @param w (C) weights
 * @param rows rows
 * @param C width
 * @param eps ε
 * @returns the dispatch
 */
export function rmsnormOp(
  gpu: Gpu,
  k: KernelConfig,
  out: GPUBuffer,
  x: GPUBuffer,
  w: GPUBuffer,
  rows: number,
  C: number,
  eps: number,
): Promise<Op> {
  return makeOp(
    gpu,
    "rmsnorm.wgsl",
    rmsnormSrc,
    k,
    [rows, C, { f: eps }],
    [x, w, out],
    rowGrid(rows),
  );
}

/**
 * Rotates the first `heads` heads of each row of qkv in place by RoPE at pos[r].
 * @param gpu the device
 * @param k kernel config
 * @param qkv (rows, width) f32
 * @param pos (rows) u32 positions
 * @param table (maxPos, HS/2, 2) cos, sin
 * @param rows rows
 * @param heads heads rotated (NH + NKV)
 * @param width row stride of qkv
 * @returns the dispatch
 */
export function ropeOp(
  gpu: Gpu,
  k: KernelConfig,
  qkv: GPUBuffer,
  pos: GPUBuffer,
  table: GPUBuffer,
  rows: number,
  heads: number,
  width: number,
): Promise<Op> {
  return makeOp(
    gpu,
    "rope.wgsl",
    ropeSrc,
    k,
    [rows, heads, width],
    [pos, table, qkv],
    flatGrid((rows * heads * k.HS) / 2),
  );
}

/**
 * act = silu(gate) · up with gu = [gate | up] per row.
 * @param gpu the device
 * @param k kernel config
 * @param act (rows, F) f32
 * @param gu (rows, 2F) f32
 * @param rows rows
 * @param F intermediate size
 * @returns the dispatch
 */
export function swigluOp(
  gpu: Gpu,
  k: KernelConfig,
  act: GPUBuffer,
  gu: GPUBuffer,
  rows: number,
  F: number,
): Promise<Op> {
  return makeOp(gpu, "swiglu.wgsl", swigluSrc, k, [rows, F], [gu, act], flatGrid(rows * F));
}

/**
 * The RoPE table for positions [0, maxPos): (maxPos, HS/2, 2) cos and sin, computed in float64.
 * @param invFreq inverse frequencies (HS/2)
 * @param maxPos positions
 * @returns the table
 */
export function ropeTable(invFreq: Float64Array, maxPos: number): Float32Array {
  const half = invFreq.length;
  const out = new Float32Array(maxPos * half * 2);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * invFreq[i]!;
      out[(p * half + i) * 2] = Math.cos(a);
      out[(p * half + i) * 2 + 1] = Math.sin(a);
    }
  }
  return out;
}

/**
 * Fills `n` weights of `out` with uniform pseudo-random values in [center − scale, center + scale).
 * @param gpu the device
 * @param k kernel config (its weight type is the buffer's)
 * @param out (n) weights
 * @param n values
 * @param seed stream
 * @param scale half-width
 * @param center mean
 * @returns the dispatch
 */
export function fillOp(
  gpu: Gpu,
  k: KernelConfig,
  out: GPUBuffer,
  n: number,
  seed: number,
  scale: number,
  center = 0,
): Promise<Op> {
  return makeOp(
    gpu,
    "fill.wgsl",
    fillSrc,
    k,
    [n, seed >>> 0, { f: scale }, { f: center }],
    [out],
    flatGrid(n),
  );
}
