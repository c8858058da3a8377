/**
 * The LLaMA-family forward pass on WebGPU, with per-head KV caches (dense, MoA, StreamingLLM)
 * and greedy decoding that stays on the GPU.
 *
 * A {@link GpuModel} holds the weights on the device (f32 or f16); a {@link GpuSession} holds the
 * caches and activations for up to B sequences of up to `maxLength` tokens under one plan.
 * Decoding encodes many steps per submission: the argmax kernel writes each sampled token where
 * the next step's embedding reads it and advances the sequence's position on the GPU, so the host
 * syncs once per chunk of steps (each sync costs ~11 ms under Deno), checks stop tokens after the
 * chunk, and drops the overshoot.
 *
 * @module
 */
import type { Model, ModelConfig } from "../model.ts";
import { slotsUsed, type SparsePlan } from "../spans.ts";
import { ropeInvFreq } from "../cpu/ops.ts";
import {
  bytesOf,
  checkAlive,
  decodeFrom,
  encodeAs,
  getGpu,
  type Gpu,
  readBuffer,
  storage,
  type StorageType,
  writeBuffer,
} from "./device.ts";
import { encodeOps, type KernelConfig, type Op, runOps } from "./kernels/_op.ts";
import { embedOp, fillOp, rmsnormOp, ropeOp, ropeTable, swigluOp } from "./kernels/elementwise.ts";
import { matmulOp } from "./kernels/matmul.ts";
import {
  argmaxOp,
  attnDecodeOps,
  attnPrefillOp,
  type CacheBuffers,
  type CacheLayout,
  cacheLayout,
  headTable,
  kvStoreOp,
  type SampleState,
  windowStartQ15,
} from "./kernels/attention.ts";

/** Options of {@link GpuModel.load}. */
export interface GpuModelOptions {
  /** storage type of the weights @default "f32" */
  weights?: StorageType;
  /** storage type of the KV cache @default "f32" */
  kv?: StorageType;
  /** the device @default the shared one ({@link getGpu}) */
  gpu?: Gpu;
}

interface LayerBuffers {
  inputNorm: GPUBuffer;
  /** (NH·HS + 2·NKV·HS, C): q, k, v projections stacked */
  wqkv: GPUBuffer;
  bqkv: GPUBuffer | null;
  wo: GPUBuffer;
  postNorm: GPUBuffer;
  /** (2F, C): gate, up stacked */
  wgu: GPUBuffer;
  wDown: GPUBuffer;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A model's weights on a WebGPU device. */
export class GpuModel {
  /** bytes of weights on the device */
  readonly weightBytes: number;

  private constructor(
    readonly gpu: Gpu,
    readonly config: ModelConfig,
    readonly kernels: KernelConfig,
    readonly embed: GPUBuffer,
    readonly lmHead: GPUBuffer,
    readonly finalNorm: GPUBuffer,
    readonly layers: LayerBuffers[],
    weightBytes: number,
  ) {
    this.weightBytes = weightBytes;
  }

  /**
   * Uploads a model's weights.
   * @param model config and f32 weights
   * @param opts storage types, device
   * @returns the model on the GPU
   * @throws {GpuUnavailableError} when there is no device
   * @throws {RangeError} when f16 is asked for and the device lacks `shader-f16`, or a shape
   *   does not suit the kernels (C, F and head size must be multiples of 4)
   */
  static async load(model: Model, opts: GpuModelOptions = {}): Promise<GpuModel> {
    const gpu = opts.gpu ?? await getGpu();
    const c = model.config;
    const weights = opts.weights ?? "f32", kv = opts.kv ?? "f32";
    if ((weights === "f16" || kv === "f16") && !gpu.f16) {
      throw new RangeError(
        `GpuModel.load(): f16 storage needs the shader-f16 feature, which "${gpu.name}" lacks; ` +
          "use f32",
      );
    }
    for (
      const [name, v] of [
        ["hidden size", c.hiddenSize],
        ["intermediate size", c.intermediateSize],
        ["head size", c.headDim],
      ] as const
    ) {
      if (v % 4 !== 0) {
        throw new RangeError(
          `GpuModel.load(): ${name} is ${v}; the GPU kernels need a multiple of 4`,
        );
      }
    }
    const k: KernelConfig = { weights, kv, HS: c.headDim, NH: c.numHeads, NKV: c.numKvHeads };
    let bytes = 0;
    const up = (label: string, data: Float32Array) => {
      const enc = encodeAs(data, weights);
      bytes += enc.byteLength;
      return storage(gpu, label, enc);
    };
    const w = model.weights;
    const embed = up("embed", w.embed);
    const lmHead = w.lmHead === w.embed ? embed : up("lm_head", w.lmHead);
    const finalNorm = up("final norm", w.finalNorm);
    const layers = w.layers.map((l, i): LayerBuffers => {
      const hasBias = l.bq !== null || l.bk !== null || l.bv !== null;
      const zeros = (n: number) => new Float32Array(n);
      const HS = c.headDim;
      return {
        inputNorm: up(`layer ${i} input norm`, l.inputNorm),
        wqkv: up(`layer ${i} wqkv`, concat([l.wq, l.wk, l.wv])),
        bqkv: hasBias
          ? up(
            `layer ${i} bqkv`,
            concat([
              l.bq ?? zeros(c.numHeads * HS),
              l.bk ?? zeros(c.numKvHeads * HS),
              l.bv ?? zeros(c.numKvHeads * HS),
            ]),
          )
          : null,
        wo: up(`layer ${i} wo`, l.wo),
        postNorm: up(`layer ${i} post norm`, l.postNorm),
        wgu: up(`layer ${i} wgu`, concat([l.wGate, l.wUp])),
        wDown: up(`layer ${i} wdown`, l.wDown),
      };
    });
    checkAlive(gpu);
    return new GpuModel(gpu, c, k, embed, lmHead, finalNorm, layers, bytes);
  }

  /**
   * A model of the given shape with pseudo-random weights generated on the device (no host
   * arrays, so a 7B-class shape loads in seconds): for speed benchmarks only.
   * @param config the shape
   * @param opts storage types, device, seed
   * @returns the model on the GPU
   */
  static async random(
    config: ModelConfig,
    opts: GpuModelOptions & { seed?: number } = {},
  ): Promise<GpuModel> {
    const gpu = opts.gpu ?? await getGpu();
    const c = config;
    const weights = opts.weights ?? "f32", kv = opts.kv ?? "f32";
    if ((weights === "f16" || kv === "f16") && !gpu.f16) {
      throw new RangeError(
        `GpuModel.random(): f16 storage needs shader-f16, which "${gpu.name}" lacks`,
      );
    }
    const k: KernelConfig = { weights, kv, HS: c.headDim, NH: c.numHeads, NKV: c.numKvHeads };
    let bytes = 0, seed = opts.seed ?? 1;
    const ops: Op[] = [];
    const make = async (label: string, n: number, fanIn: number, center = 0) => {
      const b = storage(gpu, label, n * bytesOf(weights));
      bytes += n * bytesOf(weights);
      ops.push(await fillOp(gpu, k, b, n, seed++, center ? 0.1 : Math.sqrt(3 / fanIn), center));
      return b;
    };
    const C = c.hiddenSize, F = c.intermediateSize, HS = c.headDim;
    const width = (c.numHeads + 2 * c.numKvHeads) * HS;
    const embed = await make("embed", c.vocabSize * C, C);
    const lmHead = c.tieWordEmbeddings ? embed : await make("lm_head", c.vocabSize * C, C);
    const finalNorm = await make("final norm", C, 1, 1);
    const layers: LayerBuffers[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      layers.push({
        inputNorm: await make(`layer ${i} input norm`, C, 1, 1),
        wqkv: await make(`layer ${i} wqkv`, width * C, C),
        bqkv: null,
        wo: await make(`layer ${i} wo`, C * c.numHeads * HS, c.numHeads * HS),
        postNorm: await make(`layer ${i} post norm`, C, 1, 1),
        wgu: await make(`layer ${i} wgu`, 2 * F * C, C),
        wDown: await make(`layer ${i} wdown`, C * F, F),
      });
    }
    await runOps(gpu, ops);
    checkAlive(gpu);
    return new GpuModel(gpu, c, k, embed, lmHead, finalNorm, layers, bytes);
  }

  /**
   * Caches and activations for up to `batch` sequences of up to `maxLength` tokens.
   * @param opts batch, maximum length, plan (null = dense) and tuning knobs
   * @returns the session
   */
  session(opts: SessionOptions): Promise<GpuSession> {
    return GpuSession.create(this, opts);
  }

  /** Frees the weights. */
  destroy(): void {
    for (const l of this.layers) {
      for (const b of Object.values(l)) (b as GPUBuffer | null)?.destroy();
    }
    this.embed.destroy();
    if (this.lmHead !== this.embed) this.lmHead.destroy();
    this.finalNorm.destroy();
  }
}

/** Options of {@link GpuModel.session}. */
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
  /** (layer, first op index, op count) of each layer's attention in the decode step */
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

  static async create(model: GpuModel, opts: SessionOptions): Promise<GpuSession> {
    const gpu = model.gpu, c = model.config, k = model.kernels;
    const B = opts.batch, maxLength = opts.maxLength;
    if (!Number.isInteger(B) || B < 1) {
      throw new RangeError(`GpuSession: batch is ${B}; expected an integer ≥ 1`);
    }
    const chunk = opts.prefillChunk ?? 512;
    const layout = cacheLayout(opts.plan, c.numLayers, c.numKvHeads, maxLength);
    const kvb = bytesOf(k.kv);
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
    const R = Math.max(B, chunk), C = c.hiddenSize, F = c.intermediateSize;
    const width = (c.numHeads + 2 * c.numKvHeads) * c.headDim;
    let widest = 1;
    for (let i = 0; i < layout.window.length; i++) {
      widest = Math.max(widest, Math.min(layout.sink, maxLength) + layout.window[i]!);
    }
    const keysPerSplit = opts.keysPerSplit ?? 256;
    const splits = Math.ceil(widest / keysPerSplit);
    const f4 = 4;
    const a: Activations = {
      x: storage(gpu, "x", R * C * f4),
      xn: storage(gpu, "xn", R * C * f4),
      qkv: storage(gpu, "qkv", R * width * f4),
      att: storage(gpu, "att", R * c.numHeads * c.headDim * f4),
      gu: storage(gpu, "gu", R * 2 * F * f4),
      act: storage(gpu, "act", R * F * f4),
      logits: storage(gpu, "logits", B * c.vocabSize * f4),
      chunkTokens: storage(gpu, "chunk tokens", R * 4),
      rowPos: storage(gpu, "row positions", R * 4),
      rope: storage(gpu, "rope table", ropeTable(ropeInvFreq(c), maxLength)),
      scratch: {
        pm: storage(gpu, "pm", B * c.numHeads * splits * f4),
        pl: storage(gpu, "pl", B * c.numHeads * splits * f4),
        pacc: storage(gpu, "pacc", B * c.numHeads * splits * c.headDim * f4),
      },
      width,
    };
    const st: SampleState = {
      tokens: storage(gpu, "tokens", B * 4),
      pos: storage(gpu, "pos", B * 4),
      base: storage(gpu, "base", B * 4),
      out: storage(gpu, "out", B * maxLength * 4),
    };
    const s = new GpuSession(
      model,
      B,
      maxLength,
      layout,
      caches,
      chunk,
      splits,
      keysPerSplit,
      a,
      st,
    );
    await s.#buildDecode();
    return s;
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
    for (let i = 0; i < L.window.length; i++) {
      slots += slotsUsed(n, L.sink, L.window[i]!);
    }
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
   * The rest of block `l` after attention, on `rows` rows: x += att·Woᵀ, then
   * x += SwiGLU(RMSNorm(x)·Wguᵀ)·Wdownᵀ.
   */
  async #blockTail(l: number, rows: number): Promise<Op[]> {
    const m = this.model, c = m.config, k = m.kernels, a = this.a, gpu = m.gpu;
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

  async #buildDecode(): Promise<void> {
    const m = this.model, c = m.config, k = m.kernels, a = this.a, B = this.batch;
    const gpu = m.gpu, C = c.hiddenSize, width = a.width;
    const ops: Op[] = [await embedOp(gpu, k, a.x, this.st.tokens, m.embed, B, C)];
    for (let l = 0; l < c.numLayers; l++) {
      const w = m.layers[l]!;
      ops.push(await rmsnormOp(gpu, k, a.xn, a.x, w.inputNorm, B, C, c.rmsNormEps));
      ops.push(await matmulOp(gpu, k, a.qkv, a.xn, w.wqkv, B, width, C, { bias: w.bqkv }));
      ops.push(
        await ropeOp(gpu, k, a.qkv, this.st.pos, a.rope, B, c.numHeads + c.numKvHeads, width),
      );
      ops.push(
        await kvStoreOp(gpu, k, this.caches[l]!, a.qkv, this.st.pos, {
          rows: B,
          layer: l,
          sink: this.layout.sink,
          slotsPerSeq: this.layout.maxSlots,
          width,
          decode: true,
          seq: 0,
          end: 0,
        }),
      );
      this.#attnAt.push([ops.length, 2]);
      ops.push(
        ...await attnDecodeOps(gpu, k, a.att, a.qkv, this.st.pos, this.caches[l]!, a.scratch, {
          B,
          layer: l,
          sink: this.layout.sink,
          slotsPerSeq: this.layout.maxSlots,
          width,
          keysPerSplit: this.keysPerSplit,
          splits: this.splits,
        }),
      );
      ops.push(...await this.#blockTail(l, B));
    }
    ops.push(await rmsnormOp(gpu, k, a.xn, a.x, m.finalNorm, B, C, c.rmsNormEps));
    ops.push(await matmulOp(gpu, k, a.logits, a.xn, m.lmHead, B, c.vocabSize, C));
    ops.push(
      await argmaxOp(gpu, k, a.logits, this.st, {
        rows: B,
        V: c.vocabSize,
        cap: this.maxLength,
        decode: true,
        seq: 0,
      }),
    );
    this.#decode = ops;
  }

  /**
   * Runs the prompt of sequence `seq` (appending to its cache from position `start`), leaving
   * its greedy next token on the GPU as that sequence's next input. Submits work; no host sync.
   * @param seq sequence slot in [0, batch)
   * @param tokens prompt tokens
   * @param start position of the first token (0 for a fresh sequence)
   */
  async prefill(seq: number, tokens: ArrayLike<number>, start = 0): Promise<void> {
    const m = this.model, c = m.config, k = m.kernels, a = this.a, gpu = m.gpu;
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
    const C = c.hiddenSize, width = a.width;
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
      const ops: Op[] = [await embedOp(gpu, k, a.x, a.chunkTokens, m.embed, T, C)];
      for (let l = 0; l < c.numLayers; l++) {
        const w = m.layers[l]!;
        const cache = this.caches[l]!;
        ops.push(await rmsnormOp(gpu, k, a.xn, a.x, w.inputNorm, T, C, c.rmsNormEps));
        ops.push(await matmulOp(gpu, k, a.qkv, a.xn, w.wqkv, T, width, C, { bias: w.bqkv }));
        ops.push(
          await ropeOp(gpu, k, a.qkv, a.rowPos, a.rope, T, c.numHeads + c.numKvHeads, width),
        );
        const shared = {
          layer: l,
          sink: this.layout.sink,
          slotsPerSeq: this.layout.maxSlots,
          width,
          seq,
        };
        ops.push(
          await attnPrefillOp(gpu, k, a.att, a.qkv, cache, {
            ...shared,
            T,
            P0,
            band: this.layout.band,
          }),
        );
        ops.push(
          await kvStoreOp(gpu, k, cache, a.qkv, a.rowPos, {
            ...shared,
            rows: T,
            decode: false,
            end: P0 + T,
          }),
        );
        ops.push(...await this.#blockTail(l, T));
      }
      const enc = gpu.device.createCommandEncoder();
      let pass = enc.beginComputePass();
      encodeOps(pass, ops);
      pass.end();
      if (at + T === tokens.length) {
        // the last row's logits and greedy token, in row 0 of xn / logits
        enc.copyBufferToBuffer(a.x, (T - 1) * C * 4, a.gu, 0, C * 4);
        pass = enc.beginComputePass();
        encodeOps(pass, [
          await rmsnormOp(gpu, k, a.xn, a.gu, m.finalNorm, 1, C, c.rmsNormEps),
          await matmulOp(gpu, k, a.logits, a.xn, m.lmHead, 1, c.vocabSize, C),
          await argmaxOp(gpu, k, a.logits, this.st, {
            rows: 1,
            V: c.vocabSize,
            cap: this.maxLength,
            decode: false,
            seq,
          }),
        ]);
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
    const a = this.a;
    for (
      const b of [a.x, a.xn, a.qkv, a.att, a.gu, a.act, a.logits, a.chunkTokens, a.rowPos, a.rope]
    ) {
      b.destroy();
    }
    for (const b of Object.values(a.scratch)) b.destroy();
    for (const b of Object.values(this.st)) (b as GPUBuffer).destroy();
  }
}

interface Activations {
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
  scratch: { pm: GPUBuffer; pl: GPUBuffer; pacc: GPUBuffer };
  /** row stride of qkv */
  width: number;
}
