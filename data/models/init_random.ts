/**
 * Writes randomly initialised models in the Hugging Face layout: small ones with moa's byte-level
 * tokenizer (how tests get a model folder of any shape), and checkpoints of real models' shapes
 * (Qwen2.5-0.5B, Llama-3.2-1B, Llama-3-8B) with moa-tiny's tokenizer, whose ids fit any of their
 * vocabularies. Random weights give honest time and memory figures and no accuracy figures.
 *
 * Usage: deno run -A data/models/init_random.ts OUT_DIR [--layers 4] [--hidden 128] [--heads 4]
 *        [--kv-heads 2] [--seed 0] [--dtype F32|F16|BF16]
 *        deno run -A data/models/init_random.ts OUT_DIR --shape qwen2.5-0.5b|llama-3.2-1b|
 *        llama-3-8b [--seed 0] [--dtype BF16]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { saveModel, writeModel } from "../../runtime/hf.ts";
import type { ModelConfig } from "../../runtime/model.ts";
import { randomModel, randomWeights, tinyConfig } from "../../runtime/random_model.ts";
import { byteLevelTokenizerJson, SPECIAL_TOKENS } from "../../runtime/tokenizer.ts";
import { writeFileAtomic } from "../../runtime/atomic.ts";

/** Options of `writeRandomModel`. */
export interface RandomModelOptions {
  layers?: number;
  hidden?: number;
  heads?: number;
  kvHeads?: number;
  seed?: number;
  dtype?: "F32" | "F16" | "BF16";
  maxPositions?: number;
}

/**
 * Writes config.json, model.safetensors, tokenizer.json and tokenizer_config.json to `dir`.
 * @returns the config written
 */
export async function writeRandomModel(
  dir: string,
  o: RandomModelOptions = {},
): Promise<ModelConfig> {
  const hidden = o.hidden ?? 128, heads = o.heads ?? 4;
  const tokenizer = byteLevelTokenizerJson([]);
  const vocab = SPECIAL_TOKENS.length + 256;
  const config = tinyConfig({
    vocabSize: Math.ceil(vocab / 64) * 64,
    hiddenSize: hidden,
    intermediateSize: Math.round((hidden * 8) / 3 / 8) * 8,
    numLayers: o.layers ?? 4,
    numHeads: heads,
    numKvHeads: o.kvHeads ?? 2,
    headDim: hidden / heads,
    maxPositionEmbeddings: o.maxPositions ?? 8192,
    bosTokenId: 1,
    eosTokenIds: [2],
  });
  await saveModel(dir, randomModel(config, o.seed ?? 0), { dtype: o.dtype ?? "F32" });
  await writeFileAtomic(`${dir}/tokenizer.json`, JSON.stringify(tokenizer));
  await writeFileAtomic(
    `${dir}/tokenizer_config.json`,
    JSON.stringify(
      {
        bos_token: "<s>",
        eos_token: "</s>",
        unk_token: "<unk>",
        model_max_length: config.maxPositionEmbeddings,
        clean_up_tokenization_spaces: false,
      },
      null,
      2,
    ) + "\n",
  );
  return config;
}

/**
 * The architectures of public checkpoints, from their `config.json` (hidden size, layers, heads,
 * kv heads, intermediate size, vocabulary, RoPE θ and scaling, norm ε, context, tied embeddings,
 * q/k/v biases). BOS and EOS are moa-tiny's (1 and 2), as the checkpoints carry its tokenizer.
 */
export const REAL_SHAPES = {
  /** Qwen/Qwen2.5-0.5B: 494 M parameters. */
  "qwen2.5-0.5b": tinyConfig({
    modelType: "qwen2",
    vocabSize: 151936,
    hiddenSize: 896,
    intermediateSize: 4864,
    numLayers: 24,
    numHeads: 14,
    numKvHeads: 2,
    headDim: 64,
    rmsNormEps: 1e-6,
    ropeTheta: 1_000_000,
    maxPositionEmbeddings: 32768,
    tieWordEmbeddings: true,
    attentionBias: true,
  }),
  /** meta-llama/Llama-3.2-1B: 1.24 B parameters. */
  "llama-3.2-1b": tinyConfig({
    vocabSize: 128256,
    hiddenSize: 2048,
    intermediateSize: 8192,
    numLayers: 16,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 64,
    rmsNormEps: 1e-5,
    ropeTheta: 500_000,
    ropeScaling: {
      type: "llama3",
      factor: 32,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    },
    maxPositionEmbeddings: 131072,
    tieWordEmbeddings: true,
  }),
  /** meta-llama/Meta-Llama-3-8B: 8.03 B parameters. */
  "llama-3-8b": tinyConfig({
    vocabSize: 128256,
    hiddenSize: 4096,
    intermediateSize: 14336,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    rmsNormEps: 1e-5,
    ropeTheta: 500_000,
    maxPositionEmbeddings: 8192,
    tieWordEmbeddings: false,
  }),
} as const satisfies Record<string, ModelConfig>;

/** A name of {@linkcode REAL_SHAPES}. */
export type RealShape = keyof typeof REAL_SHAPES;

/** The folder of the embedded moa-tiny, whose tokenizer the real-shape checkpoints carry. */
const MOA_TINY = new URL("./moa-tiny/", import.meta.url).pathname;

/**
 * Parameters of a config (embedding, layers, final norm, untied head).
 *
 * @example
 * ```ts
 * import { parameterCount, REAL_SHAPES } from "./init_random.ts";
 * console.log(parameterCount(REAL_SHAPES["qwen2.5-0.5b"])); // 494032768
 * ```
 */
export function parameterCount(c: ModelConfig): number {
  const { hiddenSize: C, numHeads: NH, numKvHeads: NKV, headDim: HS } = c;
  const attn = 2 * C * NH * HS + 2 * C * NKV * HS + (c.attentionBias ? (NH + 2 * NKV) * HS : 0);
  const layer = attn + 3 * C * c.intermediateSize + 2 * C;
  return c.vocabSize * C * (c.tieWordEmbeddings ? 1 : 2) + c.numLayers * layer + C;
}

/**
 * Writes a checkpoint of a real model's shape with random weights (see
 * {@linkcode REAL_SHAPES}), a chunk at a time (an 8B BF16 checkpoint takes 16 GB on disk and
 * little memory to write), in shards of at most 5 GB like the originals, with moa-tiny's
 * tokenizer and a README that says the weights are random.
 *
 * @param dir the model folder (created)
 * @param shape which architecture: a name of REAL_SHAPES, or a name and a config (tests)
 * @param opts element type (default BF16, as published) and seed
 * @returns the config written
 */
export async function writeShapedCheckpoint(
  dir: string,
  shape: RealShape | { name: string; config: ModelConfig },
  opts: { dtype?: "F32" | "F16" | "BF16"; seed?: number } = {},
): Promise<ModelConfig> {
  const [name, config] = typeof shape === "string"
    ? [shape, REAL_SHAPES[shape] as ModelConfig]
    : [shape.name, shape.config];
  await Deno.mkdir(dir, { recursive: true });
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    await writeFileAtomic(join(dir, f), await Deno.readFile(join(MOA_TINY, f)));
  }
  await writeFileAtomic(
    join(dir, "README.md"),
    `# ${name} shape, random weights\n\n` +
      `Written by data/models/init_random.ts (seed ${opts.seed ?? 0}): the architecture of ` +
      `${name} (${parameterCount(config).toLocaleString("en-US")} parameters) with random ` +
      `weights and moa-tiny's tokenizer. It gives time and memory figures, no accuracy figures.\n`,
  );
  await writeModel(dir, config, randomWeights(opts.seed ?? 0), { dtype: opts.dtype ?? "BF16" });
  return config;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      layers: { type: "string" },
      hidden: { type: "string" },
      heads: { type: "string" },
      "kv-heads": { type: "string" },
      seed: { type: "string" },
      dtype: { type: "string" },
      shape: { type: "string" },
    },
  });
  const dir = positionals[0];
  if (!dir) {
    console.error(
      "usage: deno run -A data/models/init_random.ts OUT_DIR [--layers N] [--hidden C] [--heads NH] [--kv-heads NKV] [--seed S] [--dtype F32|F16|BF16]",
    );
    Deno.exit(2);
  }
  if (values.shape !== undefined) {
    if (!Object.hasOwn(REAL_SHAPES, values.shape)) {
      console.error(
        `error: --shape: expected one of ${Object.keys(REAL_SHAPES).join(", ")}, ` +
          `got '${values.shape}'`,
      );
      Deno.exit(2);
    }
    const dtype = (values.dtype ?? "BF16") as "BF16";
    const c = await writeShapedCheckpoint(dir, values.shape as RealShape, {
      dtype,
      seed: Number(values.seed ?? 0),
    });
    console.log(
      `wrote a random ${values.shape}-shaped ${dtype} checkpoint ` +
        `(${parameterCount(c).toLocaleString("en-US")} parameters) to ${dir}`,
    );
    Deno.exit(0);
  }
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const opts: RandomModelOptions = {};
  for (
    const [k, v] of [
      ["layers", values.layers],
      ["hidden", values.hidden],
      ["heads", values.heads],
      ["kvHeads", values["kv-heads"]],
      ["seed", values.seed],
    ] as const
  ) {
    if (v !== undefined) (opts as Record<string, number | undefined>)[k] = num(v);
  }
  if (values.dtype) opts.dtype = values.dtype as "F32";
  const c = await writeRandomModel(dir, opts);
  console.log(
    `wrote a random ${c.numLayers}-layer model (C=${c.hiddenSize}, NH=${c.numHeads}, NKV=${c.numKvHeads}, V=${c.vocabSize}) to ${dir}`,
  );
}
