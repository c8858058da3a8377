import assert from "node:assert/strict";
import { join } from "node:path";
import { parameterCount, REAL_SHAPES, writeShapedCheckpoint } from "./init_random.ts";
import { loadModel } from "../../runtime/hf.ts";
import { loadTokenizer } from "../../runtime/tokenizer.ts";
import { modelBytes } from "../../runtime/model.ts";
import { tinyConfig } from "../../runtime/random_model.ts";

Deno.test("REAL_SHAPES have the published parameter counts", () => {
  // the counts on the models' Hugging Face pages (safetensors metadata)
  assert.equal(parameterCount(REAL_SHAPES["qwen2.5-0.5b"]), 494_032_768);
  assert.equal(parameterCount(REAL_SHAPES["llama-3.2-1b"]), 1_235_814_400);
  assert.equal(parameterCount(REAL_SHAPES["llama-3-8b"]), 8_030_261_248);
});

Deno.test("writeShapedCheckpoint() writes a loadable BF16 folder with moa-tiny's tokenizer", async () => {
  const dir = await Deno.makeTempDir({ prefix: "moa_shape_test_" });
  try {
    const config = tinyConfig({ modelType: "qwen2", attentionBias: true, vocabSize: 4160 });
    await writeShapedCheckpoint(dir, { name: "tiny-qwen", config }, { seed: 2 });
    const m = await loadModel(dir, { compact: true });
    assert.deepEqual(m.config, config);
    assert.equal(
      modelBytes(m),
      2 * parameterCount(config) + 2 * (config.numLayers * 2 * 64 + 64 + 128 * 2),
    );
    const tok = await loadTokenizer(dir);
    const moaTiny = await loadTokenizer(new URL("./moa-tiny", import.meta.url).pathname);
    assert.deepEqual(tok.encode("line 7: REGISTER"), moaTiny.encode("line 7: REGISTER"));
    assert.match(await Deno.readTextFile(join(dir, "README.md")), /no accuracy figures/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
