import assert from "node:assert/strict";
import { snapKvReach } from "./snapkv_reach.ts";
import { generateCases } from "../../data/longeval/longeval.ts";
import { CpuModel } from "../../runtime/cpu/forward.ts";
import { randomModel, tinyConfig } from "../../runtime/random_model.ts";
import { byteLevelTokenizerJson, tokenizerFromJson } from "../../runtime/tokenizer.ts";

Deno.test("snapKvReach(): a full budget keeps every asked line, a small one loses some", async () => {
  const tokenizer = tokenizerFromJson(byteLevelTokenizerJson([]));
  const cpu = new CpuModel(randomModel(tinyConfig({ vocabSize: 320, numLayers: 2 }), 2, 3));
  const s = { cpu, tokenizer, bos: 1 };
  const countTokens = (t: string) => 1 + tokenizer.encode(t).length;
  const cases = generateCases({ count: 4, targetLength: 700, seed: 0, countTokens });
  const full = await snapKvReach(s, cases, 1, 7);
  assert.deepEqual(full.value.flat(), [1, 1, 1, 1]);
  assert.deepEqual(full.key.flat(), [1, 1, 1, 1]);
  const small = await snapKvReach(s, cases, 0.06, 7);
  const mean = small.value.flat().reduce((a, x) => a + x, 0) / 4;
  assert.ok(mean < 1, `value kept in ${mean} of cases with 6% of the keys`);
  for (const x of [...small.value.flat(), ...small.key.flat()]) assert.ok(x >= 0 && x <= 1 + 1e-9);
});
