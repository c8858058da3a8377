/**
 * The device buffers of a `GpuSession` (session.ts) besides its KV caches: the activations of up
 * to R = max(batch, prefill chunk) rows and the decode-attention splits' scratch
 * ({@link Activations}), and the per-sequence sampling state the argmax kernel advances
 * (`SampleState`, kernels/attention.ts).
 *
 * @module
 */
import type { ModelConfig } from "../model.ts";
import { ropeInvFreq } from "../cpu/ops.ts";
import { type Gpu, storage } from "./device.ts";
import type { SampleState } from "./kernels/attention.ts";
import { ropeTable } from "./kernels/elementwise.ts";

/** Activation buffers of one session. */
export interface Activations {
  /** (R, C) residual stream */
  x: GPUBuffer;
  /** (R, C) normed */
  xn: GPUBuffer;
  /** (R, width) q, k, v */
  qkv: GPUBuffer;
  /** (R, NH·HS) attention output */
  att: GPUBuffer;
  /** (R, 2F) gate and up */
  gu: GPUBuffer;
  /** (R, F) SwiGLU output */
  act: GPUBuffer;
  /** (B, V) */
  logits: GPUBuffer;
  /** (R) prefill token ids */
  chunkTokens: GPUBuffer;
  /** (R) prefill positions */
  rowPos: GPUBuffer;
  /** (maxLength, HS/2, 2) */
  rope: GPUBuffer;
  /** Partial softmax maxima, sums and outputs of the decode-attention splits. */
  scratch: { pm: GPUBuffer; pl: GPUBuffer; pacc: GPUBuffer };
  /** row stride of qkv */
  width: number;
}

/** The sizes {@link allocateActivations} needs. */
export interface ActivationShape {
  /** sequences decoded together */
  batch: number;
  /** prompt tokens per prefill dispatch */
  prefillChunk: number;
  /** longest sequence (the RoPE table's length) */
  maxLength: number;
  /** decode-attention splits per head */
  splits: number;
}

/**
 * Allocates a session's activations.
 * @param gpu the device
 * @param c the model's shape
 * @param s batch, prefill chunk, longest sequence, decode splits
 * @returns the buffers
 */
export function allocateActivations(gpu: Gpu, c: ModelConfig, s: ActivationShape): Activations {
  const B = s.batch, R = Math.max(B, s.prefillChunk), C = c.hiddenSize, F = c.intermediateSize;
  const width = (c.numHeads + 2 * c.numKvHeads) * c.headDim;
  const f4 = 4, heads = B * c.numHeads * s.splits;
  return {
    x: storage(gpu, "x", R * C * f4),
    xn: storage(gpu, "xn", R * C * f4),
    qkv: storage(gpu, "qkv", R * width * f4),
    att: storage(gpu, "att", R * c.numHeads * c.headDim * f4),
    gu: storage(gpu, "gu", R * 2 * F * f4),
    act: storage(gpu, "act", R * F * f4),
    logits: storage(gpu, "logits", B * c.vocabSize * f4),
    chunkTokens: storage(gpu, "chunk tokens", R * 4),
    rowPos: storage(gpu, "row positions", R * 4),
    rope: storage(gpu, "rope table", ropeTable(ropeInvFreq(c), s.maxLength)),
    scratch: {
      pm: storage(gpu, "pm", heads * f4),
      pl: storage(gpu, "pl", heads * f4),
      pacc: storage(gpu, "pacc", heads * c.headDim * f4),
    },
    width,
  };
}

/**
 * Allocates the sampling state of `batch` sequences of up to `maxLength` tokens.
 * @param gpu the device
 * @param batch sequences
 * @param maxLength longest sequence (outputs recorded per sequence)
 * @returns the buffers
 */
export function allocateSampleState(gpu: Gpu, batch: number, maxLength: number): SampleState {
  return {
    tokens: storage(gpu, "tokens", batch * 4),
    pos: storage(gpu, "pos", batch * 4),
    base: storage(gpu, "base", batch * 4),
    out: storage(gpu, "out", batch * maxLength * 4),
  };
}

/** Frees the buffers of {@link allocateActivations} and {@link allocateSampleState}. */
export function destroyBuffers(a: Activations, st: SampleState): void {
  for (
    const b of [a.x, a.xn, a.qkv, a.att, a.gu, a.act, a.logits, a.chunkTokens, a.rowPos, a.rope]
  ) {
    b.destroy();
  }
  for (const b of Object.values(a.scratch)) b.destroy();
  for (const b of Object.values(st)) (b as GPUBuffer).destroy();
}
