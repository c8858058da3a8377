/**
 * Reading and writing Hugging Face `config.json` files of LLaMA-family models.
 *
 * @module
 */
import { InputError } from "./errors.ts";
import type { ModelConfig, ModelType, RopeScaling } from "./model.ts";

/** The `model_type` values {@linkcode parseConfig} accepts. */
export const SUPPORTED_MODEL_TYPES: readonly ModelType[] = ["llama", "mistral", "qwen2"];

/** The `torch_dtype` names that correspond to the float dtypes we write. */
export type TorchDtype = "float32" | "float16" | "bfloat16";

const ARCHITECTURES: Readonly<Record<ModelType, string>> = {
  llama: "LlamaForCausalLM",
  mistral: "MistralForCausalLM",
  qwen2: "Qwen2ForCausalLM",
};

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function describe(x: unknown): string {
  if (x === undefined) return "nothing (field missing)";
  const s = JSON.stringify(x);
  return s.length > 60 ? s.slice(0, 60) + "…" : s;
}

/** Reads typed fields of one JSON object, naming `file: path` in every error. */
class Reader {
  constructor(
    readonly obj: Record<string, unknown>,
    readonly file: string,
    readonly prefix: string,
  ) {}

  fail(key: string, expected: string, got: unknown = this.obj[key]): never {
    throw new InputError(
      `${this.file}: ${this.prefix}${key}: expected ${expected}, got ${describe(got)}`,
    );
  }

  /** The value, or undefined when absent or null. */
  raw(key: string): unknown {
    const v = this.obj[key];
    return v === null ? undefined : v;
  }

  has(key: string): boolean {
    return this.raw(key) !== undefined;
  }

  positiveInt(key: string, fallback?: number): number {
    const v = this.raw(key);
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      this.fail(key, "a positive integer");
    }
    return v;
  }

  nonNegativeInt(key: string): number {
    const v = this.raw(key);
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
      this.fail(key, "a non-negative integer");
    }
    return v;
  }

  positiveNumber(key: string, fallback?: number): number {
    const v = this.raw(key);
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      this.fail(key, "a positive number");
    }
    return v;
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.raw(key);
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") this.fail(key, "true or false");
    return v;
  }
}

/** Parses a `rope_scaling` (or v5 `rope_parameters`) object; null means plain RoPE. */
function parseRopeScaling(r: Reader): RopeScaling | null {
  const kind = r.raw("rope_type") ?? r.raw("type");
  const key = r.has("rope_type") ? "rope_type" : "type";
  if (kind === undefined || kind === "default") return null;
  if (kind === "linear") return { type: "linear", factor: r.positiveNumber("factor") };
  if (kind === "llama3") {
    const scaling: RopeScaling = {
      type: "llama3",
      factor: r.positiveNumber("factor"),
      lowFreqFactor: r.positiveNumber("low_freq_factor"),
      highFreqFactor: r.positiveNumber("high_freq_factor"),
      originalMaxPositionEmbeddings: r.positiveInt("original_max_position_embeddings"),
    };
    if (scaling.highFreqFactor <= scaling.lowFreqFactor) {
      r.fail(
        "high_freq_factor",
        `a number above low_freq_factor=${scaling.lowFreqFactor}`,
      );
    }
    return scaling;
  }
  return r.fail(key, `"linear" or "llama3" (other RoPE scalings are not supported)`, kind);
}

/**
 * Validates a parsed Hugging Face `config.json` of a llama, mistral or qwen2 model and
 * normalises it.
 *
 * Defaults: `num_key_value_heads` = `num_attention_heads`; `head_dim` =
 * `hidden_size / num_attention_heads`; `rope_theta` = 10000; `rope_scaling` = none;
 * `tie_word_embeddings` = false; `attention_bias` = false (always true for qwen2);
 * `bos_token_id` = null; `eos_token_id` = none. A null field counts as absent. Transformers v5
 * `rope_parameters` are read when `rope_theta` / `rope_scaling` are absent.
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * const c = parseConfig({
 *   model_type: "llama", vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008,
 *   num_hidden_layers: 32, num_attention_heads: 32, rms_norm_eps: 1e-5,
 *   max_position_embeddings: 4096, bos_token_id: 1, eos_token_id: 2,
 * }, "config.json");
 * console.log(c.headDim, c.numKvHeads, c.eosTokenIds); // 128 32 [ 2 ]
 * ```
 *
 * @param json the result of `JSON.parse` on the file
 * @param file the file's path, used to start error messages
 * @returns the normalised configuration
 * @throws {InputError} naming the field, the bad value and what was expected
 */
export function parseConfig(json: unknown, file: string): ModelConfig {
  if (!isRecord(json)) {
    throw new InputError(`${file}: expected a JSON object, got ${describe(json)}`);
  }
  const r: Reader = new Reader(json, file, "");

  const modelType = r.raw("model_type");
  if (typeof modelType !== "string" || !(SUPPORTED_MODEL_TYPES as string[]).includes(modelType)) {
    r.fail(
      "model_type",
      `one of ${SUPPORTED_MODEL_TYPES.join(", ")} (the supported model types)`,
    );
  }
  const type = modelType as ModelType;

  const act = r.raw("hidden_act");
  if (act !== undefined && act !== "silu") r.fail("hidden_act", `"silu"`);
  if (r.boolean("mlp_bias", false)) r.fail("mlp_bias", "false (MLP biases are not supported)");
  if (type === "qwen2" && r.boolean("use_sliding_window", false)) {
    r.fail("use_sliding_window", "false (sliding-window layers are not supported)");
  }

  const vocabSize = r.positiveInt("vocab_size");
  const hiddenSize = r.positiveInt("hidden_size");
  const intermediateSize = r.positiveInt("intermediate_size");
  const numLayers = r.positiveInt("num_hidden_layers");
  const numHeads = r.positiveInt("num_attention_heads");
  const numKvHeads = r.positiveInt("num_key_value_heads", numHeads);
  if (numHeads % numKvHeads !== 0) {
    r.fail("num_key_value_heads", `a divisor of num_attention_heads=${numHeads}`);
  }
  let headDim: number;
  if (r.has("head_dim")) {
    headDim = r.positiveInt("head_dim");
  } else {
    if (hiddenSize % numHeads !== 0) {
      r.fail(
        "head_dim",
        `a positive integer, since hidden_size=${hiddenSize} is not divisible by ` +
          `num_attention_heads=${numHeads}`,
      );
    }
    headDim = hiddenSize / numHeads;
  }
  const rmsNormEps = r.positiveNumber("rms_norm_eps");

  const ropeParams = r.raw("rope_parameters");
  if (ropeParams !== undefined && !isRecord(ropeParams)) r.fail("rope_parameters", "an object");
  const rp = ropeParams === undefined ? null : new Reader(ropeParams, file, "rope_parameters.");
  const ropeTheta = r.has("rope_theta") || rp === null || !rp.has("rope_theta")
    ? r.positiveNumber("rope_theta", 10000)
    : rp.positiveNumber("rope_theta");
  let ropeScaling: RopeScaling | null = null;
  const rs = r.raw("rope_scaling");
  if (rs !== undefined) {
    if (!isRecord(rs)) r.fail("rope_scaling", "null or an object");
    ropeScaling = parseRopeScaling(new Reader(rs, file, "rope_scaling."));
  } else if (rp !== null) {
    ropeScaling = parseRopeScaling(rp);
  }

  const maxPositionEmbeddings = r.positiveInt("max_position_embeddings");
  const tieWordEmbeddings = r.boolean("tie_word_embeddings", false);
  const attentionBias = type === "qwen2" ? true : r.boolean("attention_bias", false);

  const bosTokenId = r.has("bos_token_id") ? r.nonNegativeInt("bos_token_id") : null;
  let eosTokenIds: number[] = [];
  const eos = r.raw("eos_token_id");
  if (Array.isArray(eos)) {
    eosTokenIds = eos.map((v, i) => {
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
        r.fail(`eos_token_id[${i}]`, "a non-negative integer", v);
      }
      return v;
    });
  } else if (eos !== undefined) {
    eosTokenIds = [r.nonNegativeInt("eos_token_id")];
  }

  return {
    modelType: type,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings,
    tieWordEmbeddings,
    attentionBias,
    bosTokenId,
    eosTokenIds,
  };
}

/**
 * Writes a configuration as a Hugging Face style `config.json` object (snake_case keys,
 * `architectures`, `torch_dtype`) that {@linkcode parseConfig} reads back to an equal config.
 *
 * @example
 * ```ts
 * import { configToJson, parseConfig } from "./config.ts";
 * const config = parseConfig({
 *   model_type: "llama", hidden_size: 64, intermediate_size: 172, num_hidden_layers: 2,
 *   num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 4096, rms_norm_eps: 1e-5,
 *   rope_theta: 10000, max_position_embeddings: 2048,
 * }, "config.json");
 * const json = configToJson(config, "bfloat16");
 * console.log(json.architectures, json.torch_dtype); // [ "LlamaForCausalLM" ] bfloat16
 * console.log(parseConfig(json, "config.json").hiddenSize); // 64
 * ```
 *
 * @param c the configuration
 * @param torchDtype the dtype the weights are stored in; @default "float32"
 * @returns a JSON-ready object
 * @throws {RangeError} for a qwen2 config without attention biases (qwen2 always has them)
 */
export function configToJson(
  c: ModelConfig,
  torchDtype: TorchDtype = "float32",
): Record<string, unknown> {
  if (c.modelType === "qwen2" && !c.attentionBias) {
    throw new RangeError("configToJson: a qwen2 config must have attentionBias = true");
  }
  let ropeScaling: Record<string, unknown> | null = null;
  if (c.ropeScaling?.type === "linear") {
    ropeScaling = { rope_type: "linear", factor: c.ropeScaling.factor };
  } else if (c.ropeScaling?.type === "llama3") {
    ropeScaling = {
      rope_type: "llama3",
      factor: c.ropeScaling.factor,
      low_freq_factor: c.ropeScaling.lowFreqFactor,
      high_freq_factor: c.ropeScaling.highFreqFactor,
      original_max_position_embeddings: c.ropeScaling.originalMaxPositionEmbeddings,
    };
  }
  const json: Record<string, unknown> = {
    architectures: [ARCHITECTURES[c.modelType]],
    model_type: c.modelType,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: "silu",
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: ropeScaling,
    max_position_embeddings: c.maxPositionEmbeddings,
    tie_word_embeddings: c.tieWordEmbeddings,
  };
  if (c.modelType === "qwen2") {
    json["use_sliding_window"] = false;
  } else {
    json["attention_bias"] = c.attentionBias;
    json["mlp_bias"] = false;
  }
  if (c.modelType === "mistral") json["sliding_window"] = null;
  json["bos_token_id"] = c.bosTokenId;
  json["eos_token_id"] = c.eosTokenIds.length === 1
    ? c.eosTokenIds[0]
    : c.eosTokenIds.length === 0
    ? null
    : [...c.eosTokenIds];
  json["torch_dtype"] = torchDtype;
  return json;
}
