/**
 * Run a model exported by `exportOnnx` (./export.ts) in onnxruntime-web, on the wasm execution
 * provider or on its WebGPU one, keeping the KV cache between calls: a prefill, then one token
 * per sequence per decode step. On WebGPU the presents stay in GPU buffers between runs
 * (`preferredOutputLocation: "gpu-buffer"`), as a user who cares about speed would set it.
 *
 * @module
 */
import * as ort from "onnxruntime-web";

type Ort = typeof ort;
let ortWebgpu: Promise<Ort> | null = null;

/** Options of {@link OrtModel.create}. */
export interface OrtModelOptions {
  /**
   * Wasm threads (`ort.env.wasm.numThreads`). The setting is process-wide and takes effect when
   * the first session of the process initialises the wasm backend. Ignored on WebGPU (1).
   * @default 2
   */
  threads?: number;
  /**
   * Execution provider: WebAssembly, or WebGPU (`onnxruntime-web/webgpu`).
   * @default "wasm"
   */
  executionProvider?: "wasm" | "webgpu";
}

/** What {@link OrtModel.prefill} returns. */
export interface PrefillResult {
  /** Logits of every prompt position.                                             (B, T, V) */
  logits: Float32Array;
  /** The sizes of `logits`: [B, T, V]. */
  dims: [number, number, number];
}

/**
 * An ONNX session of an exported model plus its KV cache.
 *
 * All sequences of a batch must have the same length: the graph has no padding mask, so a
 * prefill takes B prompts of equal length T and every decode step appends one token to each.
 */
export class OrtModel {
  #session: ort.InferenceSession;
  #ort: Ort;
  #numLayers: number;
  #numKvHeads: number;
  #headDim: number;
  #vocabSize: number;
  /** past_key_l / past_value_l of the next run, or null before the first prefill. */
  #past: Record<string, ort.Tensor> | null = null;
  #batch = 0;
  #length = 0;

  private constructor(session: ort.InferenceSession, module: Ort) {
    this.#session = session;
    this.#ort = module;
    const pastKeys = session.inputNames.filter((n) => /^past_key_\d+$/.test(n));
    const keyShape = tensorShape(session.inputMetadata, "past_key_0");
    const logitsShape = tensorShape(session.outputMetadata, "logits");
    const [nkv, hs, v] = [keyShape[1], keyShape[3], logitsShape[2]];
    if (typeof nkv !== "number" || typeof hs !== "number" || typeof v !== "number") {
      throw new TypeError(
        `OrtModel: expected fixed NKV, HS and V in past_key_0 ${JSON.stringify(keyShape)} ` +
          `and logits ${JSON.stringify(logitsShape)}`,
      );
    }
    this.#numLayers = pastKeys.length;
    this.#numKvHeads = nkv;
    this.#headDim = hs;
    this.#vocabSize = v;
  }

  /**
   * Loads an exported model into a wasm session.
   *
   * @example
   * ```ts
   * import { exportOnnx } from "./export.ts";
   * import { OrtModel } from "./ort.ts";
   * import { randomModel, tinyConfig } from "../random_model.ts";
   * const m = await OrtModel.create(exportOnnx(randomModel(tinyConfig(), 0), { maxPositions: 32 }));
   * const { dims } = await m.prefill([[1, 2, 3]]);
   * const next = await m.decode([4]);
   * console.log(dims, next.length);
   * await m.release();
   * ```
   *
   * @param bytes a serialised ONNX model from `exportOnnx`
   * @param opts session options; see {@link OrtModelOptions}
   * @returns a model with an empty cache
   */
  static async create(bytes: Uint8Array, opts: OrtModelOptions = {}): Promise<OrtModel> {
    const ep = opts.executionProvider ?? "wasm";
    const module = ep === "webgpu"
      ? await (ortWebgpu ??= import("onnxruntime-web/webgpu") as Promise<Ort>)
      : ort;
    // the WebGPU bundle cannot start wasm worker threads under Deno (blob: URLs), and needs none
    module.env.wasm.numThreads = ep === "webgpu" ? 1 : opts.threads ?? 2;
    const presents: Record<string, "gpu-buffer"> = {};
    if (ep === "webgpu") {
      // keep the KV cache on the GPU between runs; logits come back to the host
      const probe = await module.InferenceSession.create(bytes, { executionProviders: ["webgpu"] });
      for (const n of probe.outputNames) if (n.startsWith("present_")) presents[n] = "gpu-buffer";
      await probe.release();
    }
    const session = await module.InferenceSession.create(bytes, {
      executionProviders: [ep],
      graphOptimizationLevel: "all",
      ...(ep === "webgpu" ? { preferredOutputLocation: presents } : {}),
    });
    return new OrtModel(session, module);
  }

  /** Tokens in each cached sequence (0 before the first prefill). */
  get length(): number {
    return this.#length;
  }

  /**
   * Runs B prompts of equal length T from an empty cache and keeps their keys and values.
   *
   * @param tokens B token sequences, all of the same length T ≥ 1
   * @returns the logits of every position, (B, T, V)
   * @throws {RangeError} when the batch is empty or the lengths differ
   */
  async prefill(tokens: number[][]): Promise<PrefillResult> {
    const B = tokens.length;
    const T = tokens[0]?.length ?? 0;
    if (B === 0 || T === 0) {
      throw new RangeError(`OrtModel.prefill: expected at least one non-empty sequence`);
    }
    const bad = tokens.findIndex((seq) => seq.length !== T);
    if (bad >= 0) {
      throw new RangeError(
        `OrtModel.prefill: tokens[${bad}] has length ${tokens[bad]!.length}, ` +
          `expected ${T} like tokens[0] (batch sequences must have equal length)`,
      );
    }
    const past: Record<string, ort.Tensor> = {};
    const empty = new Float32Array(0);
    const shape = [B, this.#numKvHeads, 0, this.#headDim];
    for (let l = 0; l < this.#numLayers; l++) {
      past[`past_key_${l}`] = new this.#ort.Tensor("float32", empty, shape);
      past[`past_value_${l}`] = new this.#ort.Tensor("float32", empty, shape);
    }
    this.#dispose();
    this.#past = past;
    this.#batch = B;
    this.#length = 0;
    const logits = await this.#run(tokens.flat(), B, T);
    return { logits, dims: [B, T, this.#vocabSize] };
  }

  /**
   * Appends one token to each cached sequence.
   *
   * @param tokens one token per sequence, B of them as in the prefill
   * @returns the logits of the new position, (B, V)
   * @throws {Error} before any prefill
   * @throws {RangeError} when the batch size differs from the prefill's
   */
  async decode(tokens: number[]): Promise<Float32Array> {
    if (this.#past === null) throw new Error("OrtModel.decode: call prefill() first");
    if (tokens.length !== this.#batch) {
      throw new RangeError(
        `OrtModel.decode: got ${tokens.length} tokens, expected one per sequence (${this.#batch})`,
      );
    }
    return await this.#run(tokens, this.#batch, 1);
  }

  /** Frees the session and the cache. */
  async release(): Promise<void> {
    this.#dispose();
    this.#past = null;
    await this.#session.release();
  }

  /** Runs (B, T) ids against the stored past, keeps the presents, returns the logits. */
  async #run(ids: number[], B: number, T: number): Promise<Float32Array> {
    const inputIds = new this.#ort.Tensor(
      "int64",
      BigInt64Array.from(ids, (t) => BigInt(t)),
      [B, T],
    );
    const out = await this.#session.run({ input_ids: inputIds, ...this.#past });
    this.#dispose();
    const past: Record<string, ort.Tensor> = {};
    for (let l = 0; l < this.#numLayers; l++) {
      past[`past_key_${l}`] = out[`present_key_${l}`]!;
      past[`past_value_${l}`] = out[`present_value_${l}`]!;
    }
    this.#past = past;
    this.#length += T;
    const logits = out["logits"]!;
    return (logits.location === "cpu" ? logits.data : await logits.getData(true)) as Float32Array;
  }

  /** Frees past tensors that live in GPU buffers (no-op for host tensors). */
  #dispose(): void {
    for (const t of Object.values(this.#past ?? {})) {
      if (t.location === "gpu-buffer") t.dispose();
    }
  }
}

function tensorShape(
  metadata: readonly ort.InferenceSession.ValueMetadata[],
  name: string,
): readonly (number | string)[] {
  const m = metadata.find((v) => v.name === name);
  if (!m || !m.isTensor) throw new TypeError(`OrtModel: the model has no tensor named ${name}`);
  return m.shape;
}
