/**
 * Writes a randomly initialised model in the Hugging Face layout, with moa's byte-level
 * tokenizer. `data/models/moa-tiny/` starts out as such a model until the trained weights land;
 * it is also how tests and benchmarks get a model folder of any shape.
 *
 * Usage: deno run -A data/models/init_random.ts OUT_DIR [--layers 4] [--hidden 128] [--heads 4]
 *        [--kv-heads 2] [--seed 0] [--dtype F32|F16|BF16]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { saveModel } from "../../runtime/hf.ts";
import type { ModelConfig } from "../../runtime/model.ts";
import { randomModel, tinyConfig } from "../../runtime/random_model.ts";
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
    },
  });
  const dir = positionals[0];
  if (!dir) {
    console.error(
      "usage: deno run -A data/models/init_random.ts OUT_DIR [--layers N] [--hidden C] [--heads NH] [--kv-heads NKV] [--seed S] [--dtype F32|F16|BF16]",
    );
    Deno.exit(2);
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
