import assert from "node:assert/strict";
import { buildCalibration } from "./calibration.ts";
import { CpuModel } from "../runtime/cpu/forward.ts";
import { generateGreedy } from "../runtime/cpu/generate.ts";
import { randomModel, tinyConfig } from "../runtime/random_model.ts";
import { byteLevelTokenizerJson, tokenizerFromJson } from "../runtime/tokenizer.ts";
import { HELDOUT_WORDS } from "./longeval/words.ts";

const tok = tokenizerFromJson(byteLevelTokenizerJson([]));
const cpu = new CpuModel(randomModel(tinyConfig({ vocabSize: 320, numLayers: 1 }), 2, 20));
const opts = { length: 700, samples: 2, seed: 4, maxResponse: 8, brownDocuments: 3 };

Deno.test("buildCalibration() 'model': responses are the dense model's own greedy answers", async () => {
  const [le, copy] = await buildCalibration(cpu, tok, { ...opts, kind: "model" });
  for (const s of [le!, copy!]) {
    assert.equal(s.tokens.length, 700);
    const first = s.mask.indexOf(1);
    assert.ok(first > 0, "some response positions");
    // the prompt is tokens[0..first]; regenerate from it and compare with the masked targets
    const prompt = Array.from(s.tokens.subarray(0, first + 1));
    const want = (await generateGreedy(cpu, [prompt], {
      maxNewTokens: 8,
      stopTokens: [2, ...tok.encode("\n")],
    }))[0]!;
    const got = Array.from(s.targets.subarray(first, first + want.length));
    assert.deepEqual(got, want);
    assert.equal(
      s.mask.reduce((a, x) => a + x, 0),
      want.length,
      "mask covers exactly the response",
    );
  }
  const text = tok.decode(Array.from(le!.tokens.subarray(1, le!.mask.indexOf(1) + 1)));
  assert.match(text, /^Below is a record of lines/);
  for (const w of HELDOUT_WORDS.nouns) {
    assert.ok(!text.includes(`-${w}:`), `held-out noun ${w} used as a key`);
  }
});

Deno.test("buildCalibration() 'reference' answers with the truth and 'context' counts every token", async () => {
  const [le] = await buildCalibration(cpu, tok, { ...opts, maxResponse: 12, kind: "reference" });
  const first = le!.mask.indexOf(1);
  const answer = tok.decode(
    Array.from(le!.targets.subarray(first)).filter((_, i) => le!.mask[first + i]),
  );
  const prompt = tok.decode(Array.from(le!.tokens.subarray(1, first + 1)));
  const key = /in line ([a-z]+-[a-z]+)\?/.exec(prompt)![1]!;
  const value = new RegExp(`line ${key}: REGISTER_CONTENT is <(\\d+)>`).exec(prompt)![1]!;
  assert.equal(answer, ` <${value}>\n`);
  const [ctx] = await buildCalibration(cpu, tok, { ...opts, kind: "context" });
  assert.equal(ctx!.mask.reduce((a, x) => a + x, 0), 700);
  assert.deepEqual(ctx!.tokens.subarray(1), ctx!.targets.subarray(0, 699));
});
