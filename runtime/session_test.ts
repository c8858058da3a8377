import assert from "node:assert/strict";
import { InputError } from "./errors.ts";
import { checkModel, EMBEDDED_MODELS_DIR, promptTokens, resolveModelDir } from "./session.ts";
import { byteLevelTokenizerJson, tokenizerFromJson } from "./tokenizer.ts";

Deno.test("resolveModelDir() finds embedded models by name and refuses what is not a model", async () => {
  assert.equal(await resolveModelDir("moa-tiny"), `${EMBEDDED_MODELS_DIR}moa-tiny`);
  await assert.rejects(
    () => resolveModelDir("no-such-model", "--model"),
    (e: unknown) =>
      e instanceof InputError &&
      /^--model: no embedded model named 'no-such-model' \(embedded: .*moa-tiny.*\)/.test(
        e.message,
      ),
  );
  const empty = await Deno.makeTempDir({ prefix: "moa_session_test_" });
  try {
    await assert.rejects(
      () => resolveModelDir(empty),
      (e: unknown) =>
        e instanceof InputError &&
        e.message === `model: '${empty}' is not a Hugging Face model folder (no config.json there)`,
    );
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test("checkModel() reads the embedded model's config and tokenizer without its weights", async () => {
  const { config, tokenizer } = await checkModel(await resolveModelDir("moa-tiny"));
  assert.equal(config.numLayers, 4);
  assert.ok(tokenizer.vocabSize <= config.vocabSize);
});

Deno.test("promptTokens() puts BOS first when the model has one", () => {
  const tokenizer = tokenizerFromJson(byteLevelTokenizerJson([]));
  const ids = tokenizer.encode("hi");
  assert.deepEqual(promptTokens({ tokenizer, bos: null }, "hi"), ids);
  assert.deepEqual(promptTokens({ tokenizer, bos: 1 }, "hi"), [1, ...ids]);
});
