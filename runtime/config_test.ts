import assert from "node:assert/strict";
import { configToJson, parseConfig } from "./config.ts";
import { InputError } from "./errors.ts";
import type { ModelConfig } from "./model.ts";
import { tinyConfig } from "./random_model.ts";

const FILE = "models/x/config.json";

/** The fields of a Llama-3-8B-Instruct config.json, as published. */
const LLAMA3 = {
  architectures: ["LlamaForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  hidden_act: "silu",
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: "llama",
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-05,
  rope_scaling: {
    factor: 8.0,
    low_freq_factor: 1.0,
    high_freq_factor: 4.0,
    original_max_position_embeddings: 8192,
    rope_type: "llama3",
  },
  rope_theta: 500000.0,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  transformers_version: "4.43.0.dev0",
  use_cache: true,
  vocab_size: 128256,
};

/** A Mistral-7B-v0.1-style config.json. */
const MISTRAL = {
  architectures: ["MistralForCausalLM"],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: "silu",
  hidden_size: 4096,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: "mistral",
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-05,
  rope_theta: 10000.0,
  sliding_window: 4096,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  vocab_size: 32000,
};

/** A Qwen2-0.5B-style config.json (tied embeddings, no attention_bias field). */
const QWEN2 = {
  architectures: ["Qwen2ForCausalLM"],
  bos_token_id: 151643,
  eos_token_id: 151643,
  hidden_act: "silu",
  hidden_size: 896,
  intermediate_size: 4864,
  max_position_embeddings: 131072,
  max_window_layers: 24,
  model_type: "qwen2",
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-06,
  rope_theta: 1000000.0,
  sliding_window: 131072,
  tie_word_embeddings: true,
  torch_dtype: "bfloat16",
  use_sliding_window: false,
  vocab_size: 151936,
};

function throwsInput(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${e}`);
    assert.ok(e.message.startsWith(FILE + ":"), `message should start with the file: ${e.message}`);
    for (const p of parts) {
      assert.ok(e.message.includes(p), `message ${JSON.stringify(e.message)} lacks ${p}`);
    }
    return true;
  });
}

Deno.test("parseConfig() reads published configs", async (t) => {
  await t.step("Llama 3 with llama3 RoPE scaling and several eos ids", () => {
    const c = parseConfig(LLAMA3, FILE);
    const want: ModelConfig = {
      modelType: "llama",
      vocabSize: 128256,
      hiddenSize: 4096,
      intermediateSize: 14336,
      numLayers: 32,
      numHeads: 32,
      numKvHeads: 8,
      headDim: 128,
      rmsNormEps: 1e-5,
      ropeTheta: 500000,
      ropeScaling: {
        type: "llama3",
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 8192,
      },
      maxPositionEmbeddings: 131072,
      tieWordEmbeddings: false,
      attentionBias: false,
      bosTokenId: 128000,
      eosTokenIds: [128001, 128008, 128009],
    };
    assert.deepEqual(c, want);
  });

  await t.step("Mistral with a single eos id", () => {
    const c = parseConfig(MISTRAL, FILE);
    assert.equal(c.modelType, "mistral");
    assert.equal(c.headDim, 128);
    assert.equal(c.numKvHeads, 8);
    assert.deepEqual(c.eosTokenIds, [2]);
    assert.equal(c.attentionBias, false);
    assert.equal(c.ropeScaling, null);
  });

  await t.step("Qwen2 always has attention biases", () => {
    const c = parseConfig(QWEN2, FILE);
    assert.equal(c.modelType, "qwen2");
    assert.equal(c.attentionBias, true);
    assert.equal(c.tieWordEmbeddings, true);
    assert.equal(c.headDim, 64);
    assert.equal(c.ropeTheta, 1e6);
    assert.equal(parseConfig({ ...QWEN2, attention_bias: false }, FILE).attentionBias, true);
  });
});

Deno.test("parseConfig() fills in defaults", async (t) => {
  const minimal = {
    model_type: "llama",
    vocab_size: 100,
    hidden_size: 48,
    intermediate_size: 96,
    num_hidden_layers: 2,
    num_attention_heads: 6,
    rms_norm_eps: 1e-6,
    max_position_embeddings: 512,
  };

  await t.step("absent optional fields", () => {
    const c = parseConfig(minimal, FILE);
    assert.equal(c.numKvHeads, 6);
    assert.equal(c.headDim, 8);
    assert.equal(c.ropeTheta, 10000);
    assert.equal(c.ropeScaling, null);
    assert.equal(c.tieWordEmbeddings, false);
    assert.equal(c.attentionBias, false);
    assert.equal(c.bosTokenId, null);
    assert.deepEqual(c.eosTokenIds, []);
  });

  await t.step("null fields count as absent", () => {
    const c = parseConfig(
      {
        ...minimal,
        head_dim: null,
        num_key_value_heads: null,
        rope_scaling: null,
        bos_token_id: null,
      },
      FILE,
    );
    assert.equal(c.headDim, 8);
    assert.equal(c.numKvHeads, 6);
    assert.equal(c.bosTokenId, null);
  });

  await t.step("an explicit head_dim overrides hidden/heads", () => {
    assert.equal(parseConfig({ ...minimal, head_dim: 16 }, FILE).headDim, 16);
  });

  await t.step("llama attention_bias is read", () => {
    assert.equal(parseConfig({ ...minimal, attention_bias: true }, FILE).attentionBias, true);
  });

  await t.step("linear RoPE scaling under type or rope_type", () => {
    for (const key of ["type", "rope_type"]) {
      const c = parseConfig({ ...minimal, rope_scaling: { [key]: "linear", factor: 4 } }, FILE);
      assert.deepEqual(c.ropeScaling, { type: "linear", factor: 4 });
    }
  });

  await t.step("Transformers v5 rope_parameters", () => {
    const c = parseConfig(
      { ...minimal, rope_parameters: { rope_type: "linear", factor: 2, rope_theta: 5e5 } },
      FILE,
    );
    assert.equal(c.ropeTheta, 5e5);
    assert.deepEqual(c.ropeScaling, { type: "linear", factor: 2 });
    const d = parseConfig({
      ...minimal,
      rope_parameters: { rope_type: "default", rope_theta: 1e6 },
    }, FILE);
    assert.equal(d.ropeTheta, 1e6);
    assert.equal(d.ropeScaling, null);
  });
});

Deno.test("parseConfig() rejects bad fields, naming them", async (t) => {
  await t.step("a config that is not an object", () => {
    throwsInput(() => parseConfig([1], FILE), "expected a JSON object");
  });

  await t.step("an unsupported model_type", () => {
    throwsInput(
      () => parseConfig({ ...LLAMA3, model_type: "gpt2" }, FILE),
      "model_type",
      '"gpt2"',
      "llama, mistral, qwen2",
    );
  });

  await t.step("a missing model_type", () => {
    const { model_type: _, ...rest } = LLAMA3;
    throwsInput(() => parseConfig(rest, FILE), "model_type", "field missing");
  });

  await t.step("a missing hidden_size", () => {
    const { hidden_size: _, ...rest } = LLAMA3;
    throwsInput(
      () => parseConfig(rest, FILE),
      "hidden_size: expected a positive integer, got nothing",
    );
  });

  const bad: [string, unknown, string][] = [
    ["hidden_size", -4096, "expected a positive integer, got -4096"],
    ["intermediate_size", 1.5, "expected a positive integer, got 1.5"],
    ["num_hidden_layers", "32", 'expected a positive integer, got "32"'],
    ["num_attention_heads", 0, "expected a positive integer, got 0"],
    ["vocab_size", true, "expected a positive integer, got true"],
    ["rms_norm_eps", 0, "expected a positive number, got 0"],
    ["rope_theta", -1, "expected a positive number, got -1"],
    ["max_position_embeddings", "long", 'expected a positive integer, got "long"'],
    ["tie_word_embeddings", "yes", 'expected true or false, got "yes"'],
    ["attention_bias", 1, "expected true or false, got 1"],
    ["bos_token_id", -1, "expected a non-negative integer, got -1"],
    ["eos_token_id", "</s>", 'expected a non-negative integer, got "</s>"'],
    ["hidden_act", "gelu", 'expected "silu", got "gelu"'],
    ["mlp_bias", true, "expected false (MLP biases are not supported), got true"],
    ["head_dim", 0, "expected a positive integer, got 0"],
  ];
  for (const [field, value, expected] of bad) {
    await t.step(`${field} = ${JSON.stringify(value)}`, () => {
      throwsInput(
        () => parseConfig({ ...LLAMA3, [field]: value }, FILE),
        `${FILE}: ${field}: ${expected}`,
      );
    });
  }

  await t.step("an eos_token_id list with a bad element", () => {
    throwsInput(
      () => parseConfig({ ...LLAMA3, eos_token_id: [1, "x"] }, FILE),
      'eos_token_id[1]: expected a non-negative integer, got "x"',
    );
  });

  await t.step("num_attention_heads not divisible by num_key_value_heads", () => {
    throwsInput(
      () => parseConfig({ ...LLAMA3, num_key_value_heads: 5 }, FILE),
      "num_key_value_heads: expected a divisor of num_attention_heads=32, got 5",
    );
  });

  await t.step("hidden_size not divisible by heads and no head_dim", () => {
    throwsInput(
      () =>
        parseConfig({
          ...LLAMA3,
          hidden_size: 4000,
          num_attention_heads: 48,
          num_key_value_heads: 8,
        }, FILE),
      "head_dim",
      "hidden_size=4000 is not divisible by num_attention_heads=48",
    );
  });

  await t.step("an unsupported RoPE scaling", () => {
    throwsInput(
      () => parseConfig({ ...LLAMA3, rope_scaling: { rope_type: "yarn", factor: 4 } }, FILE),
      'rope_scaling.rope_type: expected "linear" or "llama3"',
      '"yarn"',
    );
    throwsInput(
      () => parseConfig({ ...LLAMA3, rope_scaling: { type: "dynamic", factor: 2 } }, FILE),
      "rope_scaling.type",
      '"dynamic"',
    );
  });

  await t.step("a llama3 RoPE scaling without low_freq_factor", () => {
    const { low_freq_factor: _, ...rs } = LLAMA3.rope_scaling;
    throwsInput(
      () => parseConfig({ ...LLAMA3, rope_scaling: rs }, FILE),
      "rope_scaling.low_freq_factor: expected a positive number, got nothing",
    );
  });

  await t.step("a llama3 RoPE scaling with high_freq_factor <= low_freq_factor", () => {
    throwsInput(
      () =>
        parseConfig(
          { ...LLAMA3, rope_scaling: { ...LLAMA3.rope_scaling, high_freq_factor: 1 } },
          FILE,
        ),
      "rope_scaling.high_freq_factor: expected a number above low_freq_factor=1, got 1",
    );
  });

  await t.step("a linear RoPE scaling with a bad factor", () => {
    throwsInput(
      () => parseConfig({ ...LLAMA3, rope_scaling: { type: "linear", factor: "2" } }, FILE),
      'rope_scaling.factor: expected a positive number, got "2"',
    );
  });

  await t.step("a rope_scaling that is not an object", () => {
    throwsInput(
      () => parseConfig({ ...LLAMA3, rope_scaling: 8 }, FILE),
      "rope_scaling: expected null or an object, got 8",
    );
  });

  await t.step("qwen2 with sliding-window layers", () => {
    throwsInput(
      () => parseConfig({ ...QWEN2, use_sliding_window: true }, FILE),
      "use_sliding_window",
    );
  });
});

Deno.test("configToJson() writes configs that parseConfig() reads back equal", async (t) => {
  const cases: [string, ModelConfig][] = [
    ["tinyConfig", tinyConfig()],
    ["Llama 3", parseConfig(LLAMA3, FILE)],
    ["Mistral", parseConfig(MISTRAL, FILE)],
    ["Qwen2", parseConfig(QWEN2, FILE)],
    [
      "linear RoPE, no bos, no eos, tied, biased llama",
      tinyConfig({
        ropeScaling: { type: "linear", factor: 2.5 },
        bosTokenId: null,
        eosTokenIds: [],
        tieWordEmbeddings: true,
        attentionBias: true,
        headDim: 32,
      }),
    ],
  ];
  for (const [name, c] of cases) {
    await t.step(name, () => {
      const json = JSON.parse(JSON.stringify(configToJson(c)));
      assert.deepEqual(parseConfig(json, FILE), c);
    });
  }

  await t.step("uses Hugging Face keys, architectures and torch_dtype", () => {
    const json = configToJson(parseConfig(QWEN2, FILE), "bfloat16");
    assert.deepEqual(json["architectures"], ["Qwen2ForCausalLM"]);
    assert.equal(json["model_type"], "qwen2");
    assert.equal(json["torch_dtype"], "bfloat16");
    assert.equal(json["num_key_value_heads"], 2);
    assert.equal(json["eos_token_id"], 151643);
    assert.equal(configToJson(tinyConfig())["torch_dtype"], "float32");
    assert.deepEqual(configToJson(tinyConfig({ modelType: "mistral" }))["architectures"], [
      "MistralForCausalLM",
    ]);
    assert.deepEqual(configToJson(parseConfig(LLAMA3, FILE))["eos_token_id"], [
      128001,
      128008,
      128009,
    ]);
  });

  await t.step("refuses a qwen2 config without biases", () => {
    assert.throws(() => configToJson(tinyConfig({ modelType: "qwen2" })), RangeError);
  });
});
