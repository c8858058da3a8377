import assert from "node:assert/strict";
import {
  buildCalibration,
  type CalibrationSample,
  describeCalibration,
  QUESTIONS,
  RECALLS,
} from "./calibration.ts";
import { CpuModel } from "../runtime/cpu/forward.ts";
import { generateGreedy } from "../runtime/cpu/generate.ts";
import { randomModel, tinyConfig } from "../runtime/random_model.ts";
import { byteLevelTokenizerJson, tokenizerFromJson } from "../runtime/tokenizer.ts";
import { isTrainPart } from "./longeval/keys.ts";

const tok = tokenizerFromJson(byteLevelTokenizerJson([]));
const cpu = new CpuModel(randomModel(tinyConfig({ vocabSize: 320, numLayers: 1 }), 2, 20));
const opts = { length: 900, samples: 2, seed: 4, maxResponse: 8, brownDocuments: 3 };
const NL = tok.encode("\n")[0]!;

/** The [start, end) runs of mask = 1, as positions of the targets. */
function runs(s: CalibrationSample): [number, number][] {
  const out: [number, number][] = [];
  for (let t = 0; t < s.mask.length; t++) {
    if (s.mask[t] !== 1) continue;
    if (out.length && out.at(-1)![1] === t) out.at(-1)![1] = t + 1;
    else out.push([t, t + 1]);
  }
  return out;
}

Deno.test("buildCalibration() 'model': each response is the dense model's own greedy answer", async () => {
  const [le, rec] = await buildCalibration(cpu, tok, { ...opts, kind: "model" });
  for (const s of [le!, rec!]) {
    assert.equal(s.tokens.length, 900);
    const rs = runs(s);
    assert.equal(rs.length, s.responses!.length, "one masked run per response");
    for (const [a, b] of rs) {
      // the prompt is tokens[0..a]; regenerate from it and compare with the masked targets
      const prompt = Array.from(s.tokens.subarray(0, a + 1));
      const want = (await generateGreedy(cpu, [prompt], {
        maxNewTokens: 8,
        stopTokens: [2, NL],
      }))[0]!;
      assert.deepEqual(Array.from(s.targets.subarray(a, b)), want);
    }
  }
  // the recall record: bare lines, then up to RECALLS of them restated up to "is"
  assert.ok(rec!.responses!.length >= 2 && rec!.responses!.length <= RECALLS);
  assert.ok(rec!.responses!.every((r) => r.task === "recall"));
  const recText = tok.decode(Array.from(rec!.tokens.subarray(1, runs(rec!)[0]![0] + 1)));
  assert.match(recText, /^line [^:]+: REGISTER_CONTENT is <\d+>\n/);
  assert.match(recText, /\nline [^:\n]+: REGISTER_CONTENT is$/);
  // the record: LongChat's prompt, several questions, keys from training's side only
  assert.ok(le!.responses!.length >= 2 && le!.responses!.length <= QUESTIONS);
  const text = tok.decode(Array.from(le!.tokens.subarray(1, runs(le!).at(-1)![0] + 1)));
  assert.match(text, /^Below is a record of lines/);
  const asked = [...text.matchAll(/ line ([^?\s]+)\? I need the number\. /g)].map((m) => m[1]!);
  assert.equal(asked.length, le!.responses!.length);
  for (const m of text.matchAll(/^line ([^:]+): REGISTER_CONTENT is <\d+>$/gm)) {
    for (const part of m[1]!.split("-")) assert.ok(isTrainPart(part), `${m[1]}: ${part}`);
  }
});

Deno.test("buildCalibration() 'reference' answers with the truth and 'context' counts every token", async () => {
  const [le] = await buildCalibration(cpu, tok, { ...opts, maxResponse: 12, kind: "reference" });
  const prompt = tok.decode(Array.from(le!.tokens.subarray(1)));
  for (const [i, [a, b]] of runs(le!).entries()) {
    const answer = tok.decode(Array.from(le!.targets.subarray(a, b)));
    const before = tok.decode(Array.from(le!.tokens.subarray(1, a + 1)));
    const key = [...before.matchAll(/ line ([^?\s]+)\? I need the number\. /g)].at(-1)![1]!;
    const line = prompt.split("\n").find((l) => l.startsWith(`line ${key}: `))!;
    assert.equal(answer, `<${/<(\d+)>$/.exec(line)![1]}>\n`, `answer ${i}`);
    assert.equal(le!.responses![i]!.correct, true);
  }
  // recall: each restated line is completed with the value the record gives it
  const [, rec] = await buildCalibration(cpu, tok, { ...opts, maxResponse: 12, kind: "reference" });
  const recRuns = runs(rec!);
  assert.ok(recRuns.length >= 2);
  const record = tok.decode(Array.from(rec!.tokens.subarray(1, recRuns[0]![0] + 1)));
  for (const [i, [a, b]] of recRuns.entries()) {
    const before = tok.decode(Array.from(rec!.tokens.subarray(1, a + 1)));
    const key = /line ([^:\n]+): REGISTER_CONTENT is$/.exec(before)![1]!;
    const value = new RegExp(`^line ${key}: REGISTER_CONTENT is <(\\d+)>$`, "m").exec(record)![1];
    assert.equal(tok.decode(Array.from(rec!.targets.subarray(a, b))), ` <${value}>\n`, `${i}`);
    assert.equal(rec!.responses![i]!.correct, true);
  }
  const [ctx] = await buildCalibration(cpu, tok, { ...opts, kind: "context" });
  assert.equal(ctx!.mask.reduce((a, x) => a + x, 0), 900);
  assert.deepEqual(ctx!.tokens.subarray(1), ctx!.targets.subarray(0, 899));
  assert.equal(ctx!.responses, undefined);
});

Deno.test("describeCalibration() gives the response lengths and the share right, per task", () => {
  const s = { tokens: new Int32Array(1), targets: new Int32Array(1), mask: new Float32Array(1) };
  const lines = describeCalibration([
    {
      ...s,
      responses: [
        { task: "longeval", tokens: 20, correct: true },
        { task: "longeval", tokens: 1, correct: false },
        { task: "longeval", tokens: 22, correct: true },
        { task: "longeval", tokens: 21, correct: false },
      ],
    },
    { ...s, responses: [{ task: "recall", tokens: 0, correct: false }] },
  ]);
  assert.deepEqual(lines, [
    "longeval: 4 responses, tokens min 1 / median 21 / max 22, 1 of at most one token, 0.50 right",
    "recall: 1 responses, tokens min 0 / median 0 / max 0, 1 of at most one token, 0.00 right",
  ]);
});
