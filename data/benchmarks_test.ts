import assert from "node:assert/strict";
import {
  ANSWER_TOKENS,
  runLongEval,
  runPerplexity,
  runRuler,
  runThroughput,
} from "./benchmarks.ts";
import type { RulerCase } from "./ruler/ruler.ts";
import type { LongEvalCase } from "./longeval/longeval.ts";
import { assertAllClose, byteModel } from "../runtime/_testing.ts";
import { forwardLogits } from "../runtime/cpu/forward.ts";
import type { Decoder } from "../runtime/decoder.ts";

const { cpu, tok } = byteModel();
/** What the benchmarks read of a session: the tokenizer, BOS and stop tokens, the CPU model. */
const session = { cpu, tokenizer: tok, bos: 1, stopTokens: [10] };

/** A case asking `question i`, at a position decile (or none); the rest unknown. */
const longEvalCase = (i: number, expected: number, decile: number | null): LongEvalCase => {
  const unknown = { key: null, lineIndex: null, numLines: null, targetLength: null, tokens: null };
  return { ...unknown, id: `c${i}`, prompt: `question ${i}`, expected, decile };
};

/** A decoder that answers each prompt with a scripted text and records what it was asked. */
function scripted(answers: Map<string, string>) {
  const asked: { prompts: number[][]; maxNew: number; stop: readonly number[] }[] = [];
  const decoder: Decoder = {
    backend: "cpu",
    generate(prompts, maxNew, stop) {
      asked.push({ prompts, maxNew, stop });
      return Promise.resolve(
        prompts.map((p) => tok.encode(answers.get(tok.decode(p.slice(1))) ?? "no idea")),
      );
    },
    time: () => Promise.reject(new Error("not timed here")),
  };
  return { decoder, asked };
}

Deno.test("runLongEval() scores the last integer of each answer, overall and per decile", async () => {
  const cases = [
    longEvalCase(0, 111, 0),
    longEvalCase(1, 222, 0),
    longEvalCase(2, 333, 5),
    longEvalCase(3, 444, 5),
    longEvalCase(4, 555, null), // no decile: counts overall only
  ];
  const { decoder, asked } = scripted(
    new Map([
      ["question 0", "line x: REGISTER_CONTENT is <111>"],
      ["question 1", "221"],
      ["question 2", "the value is 7, no: 333"],
      ["question 4", "555"],
    ]),
  );
  const ticks: [number, number][] = [];
  const outcomes: [string, boolean][] = [];
  const metrics = await runLongEval(
    session,
    cases,
    decoder,
    (d, t) => ticks.push([d, t]),
    (c, correct) => outcomes.push([c.id, correct]),
  );
  // each case's outcome, in case order (what paired comparisons read)
  assert.deepEqual(outcomes, [["c0", true], ["c1", false], ["c2", true], ["c3", false], [
    "c4",
    true,
  ]]);
  const value = (name: string) => metrics.find((m) => m.metric === name);
  assert.deepEqual(value("accuracy"), { metric: "accuracy", value: 3 / 5, n: 5 });
  assert.deepEqual(value("accuracy_decile_0"), { metric: "accuracy_decile_0", value: 0.5, n: 2 });
  assert.deepEqual(value("accuracy_decile_5"), { metric: "accuracy_decile_5", value: 0.5, n: 2 });
  // "question i" is 10 bytes, plus BOS
  assert.deepEqual(value("prompt_tokens"), { metric: "prompt_tokens", value: 11, n: 5 });
  // batches of 4 prompts with BOS first, the answer budget and the session's stop tokens
  assert.deepEqual(asked.map((a) => a.prompts.length), [4, 1]);
  assert.deepEqual(asked[0]!.prompts[0], [1, ...tok.encode("question 0")]);
  assert.ok(asked.every((a) => a.maxNew === ANSWER_TOKENS && a.stop === session.stopTokens));
  assert.deepEqual(ticks, [[4, 5], [5, 5]]);
});

Deno.test("runLongEval() with no cases reports accuracy as missing, not 0", async () => {
  const metrics = await runLongEval(session, [], scripted(new Map()).decoder, () => {});
  assert.equal(metrics.length, 2);
  for (const m of metrics) {
    assert.ok(Number.isNaN(m.value), m.metric);
    assert.equal(m.n, 0);
  }
});

Deno.test("runPerplexity() is exp of the mean next-token loss over evenly spread windows", async () => {
  const text = "The quick brown fox jumps over the lazy dog, twice: the quick brown fox.";
  const ids = tok.encode(text);
  const length = 16, total = 40; // ⌈40/16⌉ = 3 windows of 17 tokens
  const windows = 3, stride = Math.floor((ids.length - length - 1) / (windows - 1));
  // independent reference: log-softmax of the full forward's logits, in float64
  let nll = 0, n = 0;
  for (let w = 0; w < windows; w++) {
    const win = ids.slice(w * stride, w * stride + length + 1);
    const logits = await forwardLogits(cpu.model, win);
    const V = cpu.model.config.vocabSize;
    for (let t = 0; t < length; t++) {
      const row = Array.from(logits.subarray(t * V, (t + 1) * V));
      const mx = Math.max(...row);
      const lse = mx + Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0));
      nll += lse - row[win[t + 1]!]!;
      n++;
    }
  }
  const ticks: number[] = [];
  const newCache = (max: number) => cpu.newCache(max);
  for (const chunk of [1024, 5]) {
    const m = await runPerplexity(
      session,
      text,
      length,
      total,
      newCache,
      (d) => ticks.push(d),
      chunk,
    );
    assert.deepEqual(m.map((x) => [x.metric, x.n]), [["perplexity", n], ["nll", n]]);
    assertAllClose(
      [m[1]!.value, m[0]!.value],
      [nll / n, Math.exp(nll / n)],
      { rtol: 1e-5 },
      `chunk ${chunk}`,
    );
  }
  assert.deepEqual(ticks, [1, 2, 3, 1, 2, 3]);
  await assert.rejects(
    () => runPerplexity(session, "short", 16, 16, newCache, () => {}),
    /the held-out text has 5 tokens, fewer than one window of 16/,
  );
});

Deno.test("runThroughput() turns a decoder's timing into tokens per second and KV bytes", async () => {
  const prompts: number[][] = [];
  const decoder: Decoder = {
    backend: "cpu",
    generate: () => Promise.reject(new Error("not used")),
    time(p, decode) {
      prompts.push(...p);
      assert.equal(decode, 8);
      return Promise.resolve({ prefillS: 0.5, decodeS: 2, kvBytes: 1234 });
    },
  };
  const m = await runThroughput(session, 64, 8, 3, 0, decoder, () => {});
  assert.deepEqual(m, [
    { metric: "prefill_tokens_per_s", value: (3 * 64) / 0.5, n: 3 * 64 },
    { metric: "decode_tokens_per_s", value: (3 * 8) / 2, n: 3 * 8 },
    { metric: "kv_bytes", value: 1234, n: 3 },
  ]);
  // random prompts of the asked length, ids in [3, V − 1]
  assert.equal(prompts.length, 3);
  const V = cpu.model.config.vocabSize;
  assert.ok(prompts.every((p) => p.length === 64 && p.every((t) => t >= 3 && t < V)));
});

Deno.test("runRuler() scores the share of expected strings, per task and as the mean over tasks", async () => {
  const rulerCase = (i: number, task: RulerCase["task"], expected: string[], maxNew: number) => ({
    id: `r${i}`,
    task,
    prompt: `question ${i}`,
    expected,
    maxNew,
    targetLength: 64,
    tokens: 11,
  });
  const cases = [
    rulerCase(0, "vt", ["ABCDE", "FGHIJ"], 40),
    rulerCase(1, "niah_single_1", ["1234567"], 16),
    rulerCase(2, "vt", ["KLMNO", "PQRST"], 40),
    rulerCase(3, "niah_single_1", ["7654321"], 16),
    rulerCase(4, "niah_single_1", ["1111111"], 16),
  ];
  const { decoder, asked } = scripted(
    new Map([
      ["question 0", "abcde, and then FGHIJ."],
      ["question 1", " 1234567."],
      ["question 2", "PQRST"],
      ["question 3", " 765432."],
    ]),
  );
  const scores: [string, number][] = [];
  const metrics = await runRuler(
    session,
    cases,
    decoder,
    () => {},
    (c, x) => scores.push([c.id, x]),
  );
  // one task at a time, in the order tasks first appear, each batch with its task's answer budget
  assert.deepEqual(scores, [["r0", 1], ["r2", 0.5], ["r1", 1], ["r3", 0], ["r4", 0]]);
  assert.deepEqual(asked.map((a) => [a.prompts.length, a.maxNew]), [[2, 40], [3, 16]]);
  const value = (name: string) => metrics.find((m) => m.metric === name);
  // vt 0.75 and niah_single_1 1/3: RULER averages the tasks, not the cases (0.5)
  assert.deepEqual(value("score_vt"), { metric: "score_vt", value: 0.75, n: 2 });
  assert.deepEqual(value("score_niah_single_1"), {
    metric: "score_niah_single_1",
    value: 1 / 3,
    n: 3,
  });
  assert.deepEqual(value("score"), { metric: "score", value: (0.75 + 1 / 3) / 2, n: 5 });
  assert.deepEqual(value("prompt_tokens"), { metric: "prompt_tokens", value: 11, n: 5 });
  const none = await runRuler(session, [], decoder, () => {});
  assert.ok(Number.isNaN(none.find((m) => m.metric === "score")!.value));
});
