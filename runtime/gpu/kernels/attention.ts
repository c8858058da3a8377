/**
 * Host side of the KV cache and attention kernels: `kv_store.wgsl` (writes new keys and values
 * into per-head segments), `attn_prefill.wgsl` (block-sparse prefill), `attn_decode.wgsl` +
 * `attn_combine.wgsl` (split-K decode over per-head segments) and `argmax.wgsl` (greedy
 * sampling on the GPU). `span.wgsl` holds the rule arithmetic they share.
 *
 * Cache layout: per layer one K and one V buffer of (B, slotsPerSeq, HS); a sequence's share
 * holds its kv heads' segments back to back, segment g being `sink + window_g` slots (sink slots,
 * then a ring). A dense cache is the case sink = 0, window_g = maxLength, α = maxLength.
 *
 * @module
 */
import type { Gpu } from "../device.ts";
import { checkSparsePlan, ringCapacity, type SparsePlan } from "../../spans.ts";
import { flatGrid, type KernelConfig, makeOp, type Op } from "./_op.ts";
import spanSrc from "./span.wgsl" with { type: "text" };
import kvStoreSrc from "./kv_store.wgsl" with { type: "text" };
import decodeSrc from "./attn_decode.wgsl" with { type: "text" };
import combineSrc from "./attn_combine.wgsl" with { type: "text" };
import prefillSrc from "./attn_prefill.wgsl" with { type: "text" };
import argmaxSrc from "./argmax.wgsl" with { type: "text" };

/** Fixed-point scale of α and β on the GPU (Q15). */
export const Q = 32768;
/** Longest length the Q15 arithmetic is exact for (β·n must fit 32 bits). */
export const MAX_GPU_LENGTH = 131072;
/** Largest |α| in tokens the Q15 arithmetic holds (α·2¹⁵ must fit a signed 32-bit word). */
export const MAX_GPU_ALPHA = 65535;

/** The per-head layout of a cache: what {@link headTable} uploads. */
export interface CacheLayout {
  /** leading tokens every head keeps */
  sink: number;
  /** ring capacity per (layer, kv head), flat L × NKV */
  window: Int32Array;
  /** first slot of each segment within a sequence's share of its layer buffer, flat L × NKV */
  start: Int32Array;
  /** α in Q15 per (layer, kv head) */
  alphaQ: Int32Array;
  /** β in Q15 per (layer, kv head) */
  betaQ: Uint32Array;
  /** slots per sequence, per layer */
  slotsPerSeq: number[];
  /** the largest slotsPerSeq (every layer buffer is allocated this wide) */
  maxSlots: number;
  /**
   * Block size of prefill windows: 0 under the `per-query` span semantics, the plan's block
   * under `reference` (prefill queries then see whole key blocks; see `runtime/spans.ts`).
   */
  band: number;
}

/**
 * The cache layout of a plan at a maximum length (null = dense). The plan is checked as every
 * plan is (`checkSparsePlan` in runtime/spans.ts), and the ring capacities are the CPU
 * `MoaKvCache`'s (`ringCapacity`): window_g = min(⌈S_g(maxLength)⌉, maxLength − sink), and |α|
 * must fit the Q15 arithmetic ({@link MAX_GPU_ALPHA}). α and β are rounded to Q15;
 * plans whose α and β are multiples of 2⁻¹⁵ (every rule of the solver's grid, and
 * StreamingLLM at densities k/2^j) see exactly the CPU cache's keys.
 *
 * Under the `reference` span semantics the ring holds the reference window W_g (computed in
 * float64 exactly as the CPU cache does) and the head's rule becomes (α, β) = (0, 1), so decode
 * sees the last min(n, W_g) keys; `band` makes prefill see whole key blocks.
 *
 * @param plan sink, α, β per (layer, kv head); null for dense
 * @param L layers
 * @param NKV kv heads
 * @param maxLength longest sequence
 * @returns the layout
 */
export function cacheLayout(
  plan: SparsePlan | null,
  L: number,
  NKV: number,
  maxLength: number,
): CacheLayout {
  if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > MAX_GPU_LENGTH) {
    throw new RangeError(
      `cacheLayout(): maxLength is ${maxLength}; expected an integer in [1, ${MAX_GPU_LENGTH}]`,
    );
  }
  if (plan) checkSparsePlan(plan, "cacheLayout(): plan", { layers: L, kvHeads: NKV });
  const sink = plan?.sink ?? 0;
  const spans = plan?.spans ?? "per-query";
  const reference = spans === "reference";
  const n = L * NKV;
  const window = new Int32Array(n), start = new Int32Array(n);
  const alphaQ = new Int32Array(n), betaQ = new Uint32Array(n);
  const slotsPerSeq: number[] = [];
  for (let l = 0; l < L; l++) {
    let slots = 0;
    for (let g = 0; g < NKV; g++) {
      const i = l * NKV + g;
      const alpha = plan ? plan.alphas[l]![g]! : maxLength;
      const beta = plan ? plan.betas[l]![g]! : 0;
      if (Math.abs(alpha) > MAX_GPU_ALPHA) {
        throw new RangeError(
          `cacheLayout(): rule of layer ${l} kv head ${g} has α=${alpha}; the GPU's Q15 ` +
            `arithmetic holds |α| ≤ ${MAX_GPU_ALPHA}`,
        );
      }
      if (reference) {
        // the ring is the reference window; (0, 1) makes decode see all of it
        window[i] = ringCapacity(alpha, beta, maxLength, sink, spans, plan!.block);
        alphaQ[i] = 0;
        betaQ[i] = Q;
      } else {
        alphaQ[i] = Math.round(alpha * Q);
        betaQ[i] = Math.round(beta * Q);
        window[i] = ringCapacity(alphaQ[i]! / Q, betaQ[i]! / Q, maxLength, sink, spans);
      }
      start[i] = slots;
      slots += sink + window[i]!;
    }
    slotsPerSeq.push(slots);
  }
  return {
    sink,
    window,
    start,
    alphaQ,
    betaQ,
    slotsPerSeq,
    maxSlots: Math.max(1, ...slotsPerSeq),
    band: reference ? plan!.block! : 0,
  };
}

/**
 * The heads table the kernels read: (start, window, α bits, β) per (layer, kv head).
 * @param layout the cache layout
 * @returns u32 words
 */
export function headTable(layout: CacheLayout): Uint32Array {
  const n = layout.window.length;
  const out = new Uint32Array(n * 4);
  for (let i = 0; i < n; i++) {
    out[4 * i] = layout.start[i]!;
    out[4 * i + 1] = layout.window[i]!;
    out[4 * i + 2] = layout.alphaQ[i]! >>> 0;
    out[4 * i + 3] = layout.betaQ[i]!;
  }
  return out;
}

/**
 * The first window position the query at `pos` sees, as span.wgsl computes it (integer Q15).
 * @param layout the cache layout
 * @param i flat (layer, kv head) index
 * @param pos query position
 * @returns max(sink, n − min(window, ⌈clamp(α + β·n, 0, n)⌉)), n = pos + 1
 */
export function windowStartQ15(layout: CacheLayout, i: number, pos: number): number {
  const n = pos + 1;
  const bn = layout.betaQ[i]! * n;
  const a = layout.alphaQ[i]!;
  const whole = Math.floor(bn / Q) + Math.floor(a / Q);
  const frac = (bn % Q) + (((a % Q) + Q) % Q);
  const span = Math.min(Math.max(whole + Math.floor((frac + Q - 1) / Q), 0), n);
  return Math.max(layout.sink, n - Math.min(span, layout.window[i]!));
}

/** Buffers of one layer's cache and the tables the kernels read. */
export interface CacheBuffers {
  K: GPUBuffer;
  V: GPUBuffer;
  /** the {@link headTable} */
  heads: GPUBuffer;
}

/**
 * Writes the keys and values of `rows` new tokens into one layer's cache.
 * @param gpu the device
 * @param k kernel config
 * @param cache the layer's buffers
 * @param qkv (rows, width) f32, RoPE applied
 * @param pos (rows) u32 positions
 * @param s layer, sink, slots per sequence, width; `decode`: row r is sequence r; otherwise
 *   every row is sequence `seq` and the chunk ends at position `end`
 * @returns the dispatch
 */
export function kvStoreOp(
  gpu: Gpu,
  k: KernelConfig,
  cache: CacheBuffers,
  qkv: GPUBuffer,
  pos: GPUBuffer,
  s: {
    rows: number;
    layer: number;
    sink: number;
    slotsPerSeq: number;
    width: number;
    decode: boolean;
    seq: number;
    end: number;
  },
): Promise<Op> {
  return makeOp(
    gpu,
    "kv_store.wgsl",
    kvStoreSrc,
    k,
    [s.rows, s.layer, s.sink, s.slotsPerSeq, s.width, s.decode ? 1 : 0, s.seq, s.end],
    [pos, cache.heads, qkv, cache.K, cache.V],
    flatGrid(s.rows * k.NKV * k.HS),
    spanSrc,
  );
}

/** Scratch for split-K decode partials. */
export interface DecodeScratch {
  /** (B, NH, splits) */
  pm: GPUBuffer;
  /** (B, NH, splits) */
  pl: GPUBuffer;
  /** (B, NH, splits, HS) */
  pacc: GPUBuffer;
}

/**
 * Decode attention for B sequences (one query row each) over one layer's cache: split-K
 * partials, then the merge. Every workgroup reads `keysPerSplit` keys at most; splits past a
 * head's key count write empty partials.
 * @param gpu the device
 * @param k kernel config
 * @param out (B, NH · HS) f32
 * @param qkv (B, width) f32, RoPE applied
 * @param pos (B) u32 positions
 * @param cache the layer's buffers (keys of the current token stored)
 * @param scratch partials, sized for `splits`
 * @param s sizes
 * @returns the two dispatches
 */
export async function attnDecodeOps(
  gpu: Gpu,
  k: KernelConfig,
  out: GPUBuffer,
  qkv: GPUBuffer,
  pos: GPUBuffer,
  cache: CacheBuffers,
  scratch: DecodeScratch,
  s: {
    B: number;
    layer: number;
    sink: number;
    slotsPerSeq: number;
    width: number;
    keysPerSplit: number;
    splits: number;
  },
): Promise<Op[]> {
  const scale = 1 / Math.sqrt(k.HS);
  const decode = await makeOp(
    gpu,
    "attn_decode.wgsl",
    decodeSrc,
    k,
    [s.layer, s.sink, s.slotsPerSeq, s.width, s.keysPerSplit, s.splits, { f: scale }],
    [pos, cache.heads, qkv, cache.K, cache.V, scratch.pm, scratch.pl, scratch.pacc],
    [s.splits, k.NKV, s.B],
    spanSrc,
  );
  const combine = await makeOp(
    gpu,
    "attn_combine.wgsl",
    combineSrc,
    k,
    [s.B, s.splits],
    [scratch.pm, scratch.pl, scratch.pacc, out],
    flatGrid(s.B * k.NH * k.HS),
  );
  return [decode, combine];
}

/**
 * Prefill attention for T rows of one sequence at positions P0 … P0 + T − 1.
 * @param gpu the device
 * @param k kernel config
 * @param out (T, NH · HS) f32
 * @param qkv (T, width) f32, RoPE applied
 * @param cache the layer's buffers (positions < P0 stored)
 * @param s sizes; `band`: the layout's prefill block size (0 or absent: per-query windows)
 * @returns the dispatch
 */
export function attnPrefillOp(
  gpu: Gpu,
  k: KernelConfig,
  out: GPUBuffer,
  qkv: GPUBuffer,
  cache: CacheBuffers,
  s: {
    T: number;
    P0: number;
    layer: number;
    sink: number;
    slotsPerSeq: number;
    width: number;
    seq: number;
    band?: number;
  },
): Promise<Op> {
  return makeOp(
    gpu,
    "attn_prefill.wgsl",
    prefillSrc,
    k,
    [
      s.T,
      s.P0,
      s.layer,
      s.sink,
      s.slotsPerSeq,
      s.width,
      s.seq,
      { f: 1 / Math.sqrt(k.HS) },
      s.band ?? 0,
    ],
    [cache.heads, qkv, cache.K, cache.V, out],
    flatGrid(s.T * k.NH),
    spanSrc,
  );
}

/** Buffers of the on-GPU sampling state. */
export interface SampleState {
  /** (B) u32: the next input token of each sequence */
  tokens: GPUBuffer;
  /** (B) u32: the position of that token */
  pos: GPUBuffer;
  /** (B) u32: the position whose output is recorded at index 0 */
  base: GPUBuffer;
  /** (B, cap) u32: generated tokens */
  out: GPUBuffer;
}

/**
 * Greedy sampling: argmax of each logits row becomes the next token.
 * @param gpu the device
 * @param k kernel config
 * @param logits (rows, V) f32
 * @param st sampling state
 * @param s rows, vocabulary, record capacity; `decode` or the prefill's sequence
 * @returns the dispatch
 */
export function argmaxOp(
  gpu: Gpu,
  k: KernelConfig,
  logits: GPUBuffer,
  st: SampleState,
  s: { rows: number; V: number; cap: number; decode: boolean; seq: number },
): Promise<Op> {
  return makeOp(
    gpu,
    "argmax.wgsl",
    argmaxSrc,
    k,
    [s.rows, s.V, s.cap, s.decode ? 1 : 0, s.seq],
    [logits, st.tokens, st.pos, st.base, st.out],
    [s.rows, 1, 1],
  );
}
