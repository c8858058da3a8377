/**
 * Caches and activations for up to B sequences of up to `maxLength` tokens under one plan, on the
 * weights of a {@link GpuModel}: prefill, decode and greedy generation. Decoding encodes many
 * steps per submission: the argmax kernel writes each sampled token where the next step's
 * embedding reads it and advances the sequence's position on the GPU, so the host syncs once per
 * chunk of steps (each sync costs ~11 ms under Deno), checks stop tokens after the chunk, and
 * drops the overshoot.
 *
 * @module
 */
import { slotsUsed, type SparsePlan } from "../spans.ts";
import { bytesOf, checkAlive, decodeFrom, readBuffer, storage, writeBuffer } from "./device.ts";
import { encodeOps, type Op } from "./kernels/_op.ts";
import {
  type CacheBuffers,
  type CacheLayout,
  cacheLayout,
  headTable,
  type SampleState,
  windowStartQ15,
} from "./kernels/attention.ts";
import { decodeStepOps, type ForwardBuffers, logitsOps, prefillChunkOps } from "./forward_ops.ts";
import type { GpuModel } from "./model.ts";
import {
  type Activations,
  allocateActivations,
  allocateSampleState,
  destroyBuffers,
} from "./session_buffers.ts";

/** Options of {@link GpuSession.create}. */
export interface SessionOptions {
  /** most sequences decoded together */
  batch: number;
  /** longest sequence (prompt + generated) */
  maxLength: number;
  /** per-head rules; null for a dense cache */
  plan: SparsePlan | null;
  /** prompt tokens per prefill dispatch @default 512 */
  prefillChunk?: number;
  /** keys one decode-attention workgroup reads @default 256 */
  keysPerSplit?: number;
}

/** Options of {@link GpuSession.generate}. */
export interface GpuGenerateOptions {
  /** most tokens to generate per prompt */
  maxNewTokens: number;
  /** a sequence ends after one of these (kept in its output) */
  stopTokens?: readonly number[];
  /** decode steps encoded per submission (one host sync each) @default 32 */
  stepsPerSync?: number;
}

/** Caches and activations for a batch of sequences under one plan. */
export class GpuSession {
  #decode: Op[] = [];
  /** (first op index, op count) of each layer's attention in the decode step */
  #attnAt: [number, number][] = [];

  private constructor(
    readonly model: GpuModel,
    readonly batch: number,
    readonly maxLength: number,
    readonly layout: CacheLayout,
    readonly caches: CacheBuffers[],
    readonly prefillChunk: number,
    readonly splits: number,
    readonly keysPerSplit: number,
    private readonly a: Activations,
    private readonly st: SampleState,
  ) {}

  /**
   * Caches and activations for up to `batch` sequences of up to `maxLength` tokens.
   * @param model the weights
   * @param opts batch, maximum length, plan (null = dense) and tuning knobs
   * @returns the session, its decode step encoded
   * @throws {RangeError} for a bad batch or plan, or a layer's cache past the device's binding
   *   limit
   */
  static async create(model: GpuModel, opts: SessionOptions): Promise<GpuSession> {
    const gpu = model.gpu, c = model.config;
    const B = opts.batch, maxLength = opts.maxLength;
    if (!Number.isInteger(B) || B < 1) {
      throw new RangeError(`GpuSession: batch is ${B}; expected an integer ≥ 1`);
    }
    const prefillChunk = opts.prefillChunk ?? 512;
    const layout = cacheLayout(opts.plan, c.numLayers, c.numKvHeads, maxLength);
    const kvb = bytesOf(model.kernels.kv);
    const layerBytes = B * layout.maxSlots * c.headDim * kvb;
    const limit = gpu.device.limits.maxStorageBufferBindingSize;
    if (layerBytes > limit) {
      throw new RangeError(
        `GpuSession: one layer's K buffer needs ${layerBytes} bytes (batch ${B} × ` +
          `${layout.maxSlots} slots × ${c.headDim} × ${kvb}); the device binds at most ${limit}`,
      );
    }
    const heads = storage(gpu, "heads", headTable(layout));
    const caches = layout.slotsPerSeq.map((_, l): CacheBuffers => ({
      K: storage(gpu, `K ${l}`, layerBytes),
      V: storage(gpu, `V ${l}`, layerBytes),
      heads,
    }));
    let widest = 1;
    for (let i = 0; i < layout.window.length; i++) {
      widest = Math.max(widest, Math.min(layout.sink, maxLength) + layout.window[i]!);
    }
    const keysPerSplit = opts.keysPerSplit ?? 256;
    const splits = Math.ceil(widest / keysPerSplit);
    const a = allocateActivations(gpu, c, { batch: B, prefillChunk, maxLength, splits });
    const st = allocateSampleState(gpu, B, maxLength);
    const s = new GpuSession(
      model,
      B,
      maxLength,
      layout,
      caches,
      prefillChunk,
      splits,
      keysPerSplit,
      a,
      st,
    );
    const step = await decodeStepOps(s.#buffers, B, { keysPerSplit, splits });
    s.#decode = step.ops;
    s.#attnAt = step.attnAt;
    return s;
  }

  /** What the op lists read and write. */
  get #buffers(): ForwardBuffers {
    const { model, a, st, caches, layout, maxLength } = this;
    return { model, a, st, caches, layout, maxLength };
  }

  /** Bytes of K and V allocated: Σ layers B · slotsPerSeq · HS · 2 · bytes per value. */
  kvBytesAllocated(): number {
    const c = this.model.config, kvb = bytesOf(this.model.kernels.kv);
    return this.layout.slotsPerSeq.reduce(
      (s, slots) => s + this.batch * slots * c.headDim * 2 * kvb,
      0,
    );
  }

  /**
   * Bytes of K and V a sequence of length n keeps (the CPU caches' formula): Σ over layers and
   * kv heads of min(n, sink) + min(n − sink, window) slots × HS × 2 × bytes per value.
   * @param n sequence length
   * @returns bytes
   */
  kvBytesAt(n: number): number {
    const c = this.model.config, kvb = bytesOf(this.model.kernels.kv), L = this.layout;
    let slots = 0;
    for (let i = 0; i < L.window.length; i++) slots += slotsUsed(n, L.sink, L.window[i]!);
    return slots * c.headDim * 2 * kvb;
  }

  /**
   * Bytes of K and V one decode step reads for a sequence whose current token is at `pos`.
   * @param pos position of the token being decoded
   * @returns bytes
   */
  kvBytesReadAt(pos: number): number {
    const c = this.model.config, kvb = bytesOf(this.model.kernels.kv), L = this.layout;
    let keys = 0;
    for (let i = 0; i < L.window.length; i++) {
      keys += Math.min(L.sink, pos + 1) + Math.max(0, pos + 1 - windowStartQ15(L, i, pos));
    }
    return keys * c.headDim * 2 * kvb;
  }

  /**
   * Runs the prompt of sequence `seq` (appending to its cache from position `start`), leaving
   * its greedy next token on the GPU as that sequence's next input. Submits work; no host sync.
   * @param seq sequence slot in [0, batch)
   * @param tokens prompt tokens
   * @param start position of the first token (0 for a fresh sequence)
   */
  async prefill(seq: number, tokens: ArrayLike<number>, start = 0): Promise<void> {
    const c = this.model.config, a = this.a, gpu = this.model.gpu;
    if (!(seq >= 0 && seq < this.batch)) {
      throw new RangeError(`prefill(): seq is ${seq}; expected an integer in [0, ${this.batch})`);
    }
    if (tokens.length === 0 || start + tokens.length > this.maxLength) {
      throw new RangeError(
        `prefill(): ${tokens.length} tokens from position ${start}; expected 1 … ` +
          `${this.maxLength - start} (maxLength ${this.maxLength})`,
      );
    }
    checkAlive(gpu);
    const C = c.hiddenSize;
    for (let at = 0; at < tokens.length; at += this.prefillChunk) {
      const T = Math.min(this.prefillChunk, tokens.length - at), P0 = start + at;
      const ids = new Uint32Array(T), pos = new Uint32Array(T);
      for (let t = 0; t < T; t++) {
        const id = tokens[at + t]!;
        if (!(Number.isInteger(id) && id >= 0 && id < c.vocabSize)) {
          throw new RangeError(
            `prefill(): token ${at + t} is ${id}; expected an id in [0, ${c.vocabSize})`,
          );
        }
        ids[t] = id;
        pos[t] = P0 + t;
      }
      writeBuffer(gpu, a.chunkTokens, 0, ids);
      writeBuffer(gpu, a.rowPos, 0, pos);
      const ops = await prefillChunkOps(this.#buffers, seq, T, P0);
      const enc = gpu.device.createCommandEncoder();
      let pass = enc.beginComputePass();
      encodeOps(pass, ops);
      pass.end();
      if (at + T === tokens.length) {
        // the last row's logits and greedy token, from row 0 of gu (free after the MLP)
        enc.copyBufferToBuffer(a.x, (T - 1) * C * 4, a.gu, 0, C * 4);
        pass = enc.beginComputePass();
        encodeOps(pass, await logitsOps(this.#buffers, a.gu, 1, { decode: false, seq }));
        pass.end();
      }
      gpu.device.queue.submit([enc.finish()]);
    }
  }

  /**
   * The logits after the last prefill (row 0 of the logits buffer; one host sync). For tests.
   * @returns (V) f32
   */
  async lastLogits(): Promise<Float32Array> {
    const V = this.model.config.vocabSize;
    return decodeFrom(await readBuffer(this.model.gpu, this.a.logits, V * 4), V, "f32");
  }

  /**
   * Sets where decoding continues: sequence b's next input is at position `next[b]` (its prompt
   * length after a fresh prefill); outputs are recorded from index 1 on.
   * @param next positions per sequence
   */
  startDecode(next: readonly number[]): void {
    const gpu = this.model.gpu;
    const pos = new Uint32Array(this.batch), base = new Uint32Array(this.batch);
    next.forEach((p, b) => {
      pos[b] = p;
      base[b] = p - 1;
    });
    writeBuffer(gpu, this.st.pos, 0, pos);
    writeBuffer(gpu, this.st.base, 0, base);
  }

  /**
   * Encodes `steps` decode steps for every sequence of the batch in one submission (no sync).
   * @param steps decode steps
   */
  submitDecode(steps: number): void {
    const enc = this.model.gpu.device.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (let i = 0; i < steps; i++) encodeOps(pass, this.#decode);
    pass.end();
    this.model.gpu.device.queue.submit([enc.finish()]);
  }

  /**
   * Waits for submitted work (one host sync).
   */
  async sync(): Promise<void> {
    await this.model.gpu.device.queue.onSubmittedWorkDone();
    checkAlive(this.model.gpu);
  }

  /**
   * The tokens recorded for each sequence so far (index 0 from the prefill), `n` per sequence.
   * @param n tokens per sequence to read
   * @returns (batch) arrays
   */
  async outputs(n: number): Promise<Uint32Array[]> {
    const bytes = await readBuffer(this.model.gpu, this.st.out, this.batch * this.maxLength * 4);
    const all = new Uint32Array(bytes);
    return Array.from(
      { length: this.batch },
      (_, b) => all.slice(b * this.maxLength, b * this.maxLength + n),
    );
  }

  /**
   * Greedy generation for up to `batch` prompts of any lengths: prefill each, then decode all
   * together, `stepsPerSync` steps per submission, until every sequence has stopped or reached
   * `maxNewTokens`.
   * @param prompts token ids per prompt
   * @param opts limits and stop tokens
   * @returns generated ids per prompt (prompt excluded; a stop token ends and is kept)
   */
  async generate(prompts: number[][], opts: GpuGenerateOptions): Promise<number[][]> {
    if (prompts.length === 0 || prompts.length > this.batch) {
      throw new RangeError(`generate(): ${prompts.length} prompts; expected 1 … ${this.batch}`);
    }
    const longest = Math.max(...prompts.map((p) => p.length));
    if (longest + opts.maxNewTokens > this.maxLength) {
      throw new RangeError(
        `generate(): a ${longest}-token prompt + ${opts.maxNewTokens} new tokens exceeds the ` +
          `session's maxLength ${this.maxLength}`,
      );
    }
    const stop = new Set(opts.stopTokens ?? []);
    for (let b = 0; b < prompts.length; b++) await this.prefill(b, prompts[b]!);
    const next = Array.from({ length: this.batch }, (_, b) => prompts[b]?.length ?? 1);
    this.startDecode(next);
    const per = opts.stepsPerSync ?? 32;
    const done = (outs: Uint32Array[], n: number) =>
      prompts.every((_, b) => {
        for (let i = 0; i < n; i++) if (stop.has(outs[b]![i]!)) return true;
        return false;
      });
    let have = 1;
    let outs = await this.outputs(have);
    while (have < opts.maxNewTokens && !done(outs, have)) {
      const steps = Math.min(per, opts.maxNewTokens - have);
      this.submitDecode(steps);
      have += steps;
      outs = await this.outputs(have);
    }
    return prompts.map((_, b) => {
      const r: number[] = [];
      for (let i = 0; i < Math.min(have, opts.maxNewTokens); i++) {
        r.push(outs[b]![i]!);
        if (stop.has(outs[b]![i]!)) break;
      }
      return r;
    });
  }

  /**
   * GPU time of each layer's decode attention (split-K + merge) in one decode step, by timestamp
   * queries; the step runs for real (positions advance).
   * @returns nanoseconds summed over layers, or null without `timestamp-query`
   */
  async timeDecodeAttention(): Promise<number | null> {
    const gpu = this.model.gpu;
    if (!gpu.timestamps) return null;
    const L = this.#attnAt.length;
    const qs = gpu.device.createQuerySet({ type: "timestamp", count: 2 * L });
    const resolve = gpu.device.createBuffer({ size: 16 * L, usage: 0x200 | 0x04 }); // QUERY_RESOLVE|COPY_SRC
    const enc = gpu.device.createCommandEncoder();
    let i = 0;
    for (let l = 0; l < L; l++) {
      const [at, n] = this.#attnAt[l]!;
      let pass = enc.beginComputePass();
      encodeOps(pass, this.#decode.slice(i, at));
      pass.end();
      pass = enc.beginComputePass({
        timestampWrites: {
          querySet: qs,
          beginningOfPassWriteIndex: 2 * l,
          endOfPassWriteIndex: 2 * l + 1,
        },
      });
      encodeOps(pass, this.#decode.slice(at, at + n));
      pass.end();
      i = at + n;
    }
    const pass = enc.beginComputePass();
    encodeOps(pass, this.#decode.slice(i));
    pass.end();
    enc.resolveQuerySet(qs, 0, 2 * L, resolve, 0);
    gpu.device.queue.submit([enc.finish()]);
    const t = new BigUint64Array(await readBuffer(gpu, resolve, 16 * L));
    let ns = 0;
    for (let l = 0; l < L; l++) ns += Number(t[2 * l + 1]! - t[2 * l]!);
    qs.destroy();
    resolve.destroy();
    return ns;
  }

  /** Frees the caches and activations. */
  destroy(): void {
    for (const c of this.caches) {
      c.K.destroy();
      c.V.destroy();
    }
    this.caches[0]?.heads.destroy();
    destroyBuffers(this.a, this.st);
  }
}
