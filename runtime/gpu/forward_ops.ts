/**
 * The forward pass as lists of GPU dispatches (the WebGPU twin of runtime/cpu/forward.ts): one
 * decode step for the whole batch, a chunk of one sequence's prompt, and the greedy token after a
 * prefill. Each block is RMSNorm → fused q/k/v → RoPE → KV store and attention over the head's
 * segment → output projection → RMSNorm → SwiGLU MLP, with residual adds.
 *
 * @module
 */
import type { Op } from "./kernels/_op.ts";
import { embedOp, rmsnormOp, ropeOp, swigluOp } from "./kernels/elementwise.ts";
import { matmulOp } from "./kernels/matmul.ts";
import {
  argmaxOp,
  attnDecodeOps,
  attnPrefillOp,
  type CacheBuffers,
  type CacheLayout,
  kvStoreOp,
  type SampleState,
} from "./kernels/attention.ts";
import type { GpuModel } from "./model.ts";
import type { Activations } from "./session_buffers.ts";

/** What the op lists read and write: the weights and one session's buffers. */
export interface ForwardBuffers {
  /** the weights */
  model: GpuModel;
  /** activations */
  a: Activations;
  /** sampling state */
  st: SampleState;
  /** one per layer */
  caches: CacheBuffers[];
  /** the caches' per-head layout */
  layout: CacheLayout;
  /** longest sequence (outputs recorded per sequence) */
  maxLength: number;
}

/**
 * The start of block `l` on `rows` rows: RMSNorm, the fused q/k/v projection, RoPE at `pos`.
 */
async function blockHeadOps(f: ForwardBuffers, l: number, rows: number, pos: GPUBuffer) {
  const m = f.model, c = m.config, k = m.kernels, a = f.a, gpu = m.gpu, w = m.layers[l]!;
  return [
    await rmsnormOp(gpu, k, a.xn, a.x, w.inputNorm, rows, c.hiddenSize, c.rmsNormEps),
    await matmulOp(gpu, k, a.qkv, a.xn, w.wqkv, rows, a.width, c.hiddenSize, { bias: w.bqkv }),
    await ropeOp(gpu, k, a.qkv, pos, a.rope, rows, c.numHeads + c.numKvHeads, a.width),
  ];
}

/**
 * The rest of block `l` after attention, on `rows` rows: x += att·Woᵀ, then
 * x += SwiGLU(RMSNorm(x)·Wguᵀ)·Wdownᵀ.
 */
async function blockTailOps(f: ForwardBuffers, l: number, rows: number): Promise<Op[]> {
  const m = f.model, c = m.config, k = m.kernels, a = f.a, gpu = m.gpu;
  const w = m.layers[l]!, C = c.hiddenSize, F = c.intermediateSize;
  return [
    await matmulOp(gpu, k, a.x, a.att, w.wo, rows, C, c.numHeads * c.headDim, {
      accumulate: true,
    }),
    await rmsnormOp(gpu, k, a.xn, a.x, w.postNorm, rows, C, c.rmsNormEps),
    await matmulOp(gpu, k, a.gu, a.xn, w.wgu, rows, 2 * F, C),
    await swigluOp(gpu, k, a.act, a.gu, rows, F),
    await matmulOp(gpu, k, a.x, a.act, w.wDown, rows, C, F, { accumulate: true }),
  ];
}

/**
 * One decode step of every sequence of the batch, sampling included: it reads each sequence's
 * next token and position from the sampling state and advances them.
 * @param f weights and buffers
 * @param batch sequences
 * @param split keys one decode-attention workgroup reads, and the splits per head
 * @returns the ops, and where each layer's attention ops are (first index, count)
 */
export async function decodeStepOps(
  f: ForwardBuffers,
  batch: number,
  split: { keysPerSplit: number; splits: number },
): Promise<{ ops: Op[]; attnAt: [number, number][] }> {
  const m = f.model, c = m.config, k = m.kernels, a = f.a, gpu = m.gpu, st = f.st;
  const shared = { layer: 0, sink: f.layout.sink, slotsPerSeq: f.layout.maxSlots, width: a.width };
  const ops: Op[] = [await embedOp(gpu, k, a.x, st.tokens, m.embed, batch, c.hiddenSize)];
  const attnAt: [number, number][] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const layer = { ...shared, layer: l };
    ops.push(...await blockHeadOps(f, l, batch, st.pos));
    ops.push(
      await kvStoreOp(gpu, k, f.caches[l]!, a.qkv, st.pos, {
        ...layer,
        rows: batch,
        decode: true,
        seq: 0,
        end: 0,
      }),
    );
    attnAt.push([ops.length, 2]);
    ops.push(
      ...await attnDecodeOps(gpu, k, a.att, a.qkv, st.pos, f.caches[l]!, a.scratch, {
        ...layer,
        B: batch,
        ...split,
      }),
    );
    ops.push(...await blockTailOps(f, l, batch));
  }
  ops.push(...await logitsOps(f, a.x, batch, { decode: true, seq: 0 }));
  return { ops, attnAt };
}

/**
 * `T` prompt tokens of sequence `seq` from position `P0`, whose ids and positions are in the
 * activations' chunk buffers: attention over the cache and the chunk, then the KV store.
 */
export async function prefillChunkOps(
  f: ForwardBuffers,
  seq: number,
  T: number,
  P0: number,
): Promise<Op[]> {
  const m = f.model, c = m.config, k = m.kernels, a = f.a, gpu = m.gpu;
  const ops: Op[] = [await embedOp(gpu, k, a.x, a.chunkTokens, m.embed, T, c.hiddenSize)];
  for (let l = 0; l < c.numLayers; l++) {
    const cache = f.caches[l]!;
    const shared = {
      layer: l,
      sink: f.layout.sink,
      slotsPerSeq: f.layout.maxSlots,
      width: a.width,
      seq,
    };
    ops.push(...await blockHeadOps(f, l, T, a.rowPos));
    ops.push(
      await attnPrefillOp(gpu, k, a.att, a.qkv, cache, { ...shared, T, P0, band: f.layout.band }),
    );
    ops.push(
      await kvStoreOp(gpu, k, cache, a.qkv, a.rowPos, {
        ...shared,
        rows: T,
        decode: false,
        end: P0 + T,
      }),
    );
    ops.push(...await blockTailOps(f, l, T));
  }
  return ops;
}

/**
 * The final norm, logits and greedy token of `rows` rows of `x`, the token written to the
 * sampling state (`decode`: one row per sequence; otherwise row 0 is sequence `seq`).
 */
export async function logitsOps(
  f: ForwardBuffers,
  x: GPUBuffer,
  rows: number,
  s: { decode: boolean; seq: number },
): Promise<Op[]> {
  const m = f.model, c = m.config, k = m.kernels, a = f.a, gpu = m.gpu, V = c.vocabSize;
  return [
    await rmsnormOp(gpu, k, a.xn, x, m.finalNorm, rows, c.hiddenSize, c.rmsNormEps),
    await matmulOp(gpu, k, a.logits, a.xn, m.lmHead, rows, V, c.hiddenSize),
    await argmaxOp(gpu, k, a.logits, f.st, { rows, V, cap: f.maxLength, ...s }),
  ];
}
