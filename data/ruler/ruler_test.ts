import assert from "node:assert/strict";
import {
  FILLER,
  generateRulerCases,
  passkeySample,
  RULER_TASKS,
  type RulerCase,
  scoreRuler,
  summarizeRuler,
} from "./ruler.ts";

/** A stand-in tokenizer: one token per 4 characters, plus BOS. */
const countTokens = (s: string) => Math.ceil(s.length / 4) + 1;

/** Occurrences of each item. */
function counts(xs: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

/** The items with the k largest counts, checking that the k-th is strictly above the next. */
function topK(xs: string[], k: number): string[] {
  const sorted = [...counts(xs)].sort((a, b) => b[1] - a[1]);
  assert.ok(sorted.length > k && sorted[k - 1]![1] > sorted[k]![1], "a clear top " + k);
  return sorted.slice(0, k).map(([w]) => w);
}

/** What a case's answer should be, read back from its prompt alone. */
function answerFromPrompt(c: RulerCase): string[] {
  const [, body, question] = /^[^\n]*\n([\s\S]*)\n([^\n]*)$/.exec(c.prompt)!;
  if (c.task.startsWith("niah")) {
    const needles = [...body!.matchAll(/The secret (?:number|code) for (\S+) is: (\S+)\./g)];
    const asked = /for (.+) in the text above\?/.exec(question!)![1]!.split(/, and |, | and /);
    return asked.flatMap((k) => needles.filter((m) => m[1] === k).map((m) => m[2]!));
  }
  if (c.task === "vt") {
    const value = /the value (\d+) in the text/.exec(question!)![1]!;
    const assign = new Map(
      [...body!.matchAll(/VAR (\w+) = (VAR \w+|\d+)\./g)].map((m) => [m[1]!, m[2]!]),
    );
    const resolve = (v: string): string => {
      const rhs = assign.get(v)!;
      return rhs.startsWith("VAR ") ? resolve(rhs.slice(4)) : rhs;
    };
    return [...assign.keys()].filter((v) => resolve(v) === value);
  }
  if (c.task === "cwe") {
    return topK([...body!.matchAll(/\d+\. (\S+)/g)].map((m) => m[1]!), 10);
  }
  return topK(body!.split(" ").filter((w) => w !== "..."), 3);
}

Deno.test("every RULER task's prompt fits the length and holds its answer", async (t) => {
  for (const length of [512, 1024, 4096]) {
    await t.step(`${length} tokens`, () => {
      const cases = generateRulerCases({
        tasks: RULER_TASKS,
        count: 2 * RULER_TASKS.length,
        targetLength: length,
        seed: 3,
        countTokens,
      });
      assert.deepEqual(cases.map((c) => c.task), [...RULER_TASKS, ...RULER_TASKS]);
      for (const c of cases) {
        assert.ok(c.tokens <= length && c.tokens === countTokens(c.prompt), c.id);
        // as many haystack units as fit: within a few sentences of the length
        assert.ok(c.tokens > length - 60, `${c.id}: ${c.tokens} tokens`);
        assert.deepEqual(
          [...answerFromPrompt(c)].sort(),
          [...c.expected].sort(),
          `${c.id}: the prompt's own answer`,
        );
        assert.ok(c.maxNew >= 16, c.id);
      }
      const multi = cases.filter((c) => c.task === "niah_multiquery" || c.task === "vt");
      assert.ok(multi.every((c) => c.expected.length >= 4));
    });
  }
});

Deno.test("RULER haystacks are filler sentences; cases follow the seed", () => {
  const gen = (seed: number) =>
    generateRulerCases({
      tasks: ["niah_single_1", "niah_single_2"],
      count: 4,
      targetLength: 600,
      seed,
      countTokens,
    });
  const a = gen(5);
  assert.deepEqual(gen(5), a);
  assert.notDeepEqual(gen(6).map((c) => c.prompt), a.map((c) => c.prompt));
  for (const c of a) {
    const body = c.prompt.split("\n")[1]!;
    const rest = body.replace(/The secret number for \S+ is: \d+\./g, "");
    for (const s of rest.split(/(?<=\.) /).filter((x) => x.trim())) {
      assert.ok(FILLER.includes(s.trim()), `${c.id}: '${s}' is filler`);
    }
  }
  // single_1 repeats one block of five sentences; single_2 draws from all of them
  const distinct = (c: RulerCase) => new Set(c.prompt.split("\n")[1]!.split(/(?<=\.) /)).size;
  assert.ok(distinct(a[0]!) <= 6 && distinct(a[1]!) > 6);
});

Deno.test("a length too short for a task is refused, naming the task", () => {
  assert.throws(
    () => generateRulerCases({ tasks: ["cwe"], count: 1, targetLength: 100, seed: 0, countTokens }),
    /cwe: a prompt of 100 tokens is too short; the smallest case needs \d+/,
  );
});

Deno.test("scoreRuler() is the share of expected strings in the answer, ignoring case", () => {
  assert.equal(scoreRuler(" 1234567.", ["1234567"]), 1);
  assert.equal(scoreRuler(" 123456.", ["1234567"]), 0);
  assert.equal(scoreRuler("ABCDE, fghij", ["abcde", "FGHIJ", "KLMNO", "PQRST"]), 0.5);
  const s = summarizeRuler([
    { task: "vt", score: 1 },
    { task: "vt", score: 0 },
    { task: "cwe", score: 0.2 },
  ]);
  // the mean over tasks (0.5 and 0.2), as RULER averages, not over cases
  assert.deepEqual(s.byTask.map((t) => [t.task, t.n]), [["vt", 2], ["cwe", 1]]);
  assert.ok(Math.abs(s.score - 0.35) < 1e-12);
  assert.equal(summarizeRuler([]).score, 0);
});

Deno.test("passkeySample() ends with the answer listing every key's value", () => {
  const { text, answerStart } = passkeySample(40, 5, 9);
  const answer = text.slice(answerStart);
  const needles = [...text.matchAll(/The secret number for (\S+) is: (\d+)\./g)];
  assert.equal(needles.length, 5);
  for (const [, , v] of needles) assert.ok(answer.includes(v!), `${v}`);
  assert.match(answer, /^ \d{7}(, \d{7}){4}\.$/);
});
