import assert from "node:assert/strict";
import { InputError } from "../../runtime/errors.ts";
import {
  formatLine,
  formatQuestion,
  generateCases,
  HEADER,
  type LongEvalCase,
  readLongEvalJsonl,
  scoreAnswer,
  summarize,
  writeLongEvalJsonl,
} from "./longeval.ts";
import { ADJECTIVES, HELDOUT_WORDS, NOUNS, TRAIN_WORDS } from "./words.ts";

// The exact strings of DESIGN.md §5, written out independently of longeval.ts.
const EXPECTED_HEADER =
  "Below is a record of lines I want you to remember. Each line begins with 'line <line index>' and contains a '<REGISTER_CONTENT>' at the end of the line as a numerical value. For each line index, memorize its corresponding <REGISTER_CONTENT>. At the end of the record, I will ask you to retrieve the corresponding <REGISTER_CONTENT> of a certain line index. Now the record start:\n\n";
const QUESTION_RE =
  /\nNow the record is over\. Tell me what is the <REGISTER_CONTENT> in line ([a-z]+-[a-z]+)\? I need the number\.$/;
const LINE_RE = /^line ([a-z]+-[a-z]+): REGISTER_CONTENT is <(\d+)>$/;

const charTokens = (s: string) => Math.ceil(s.length / 4);
const wordTokens = (s: string) => s.split(/\s+/).filter((w) => w !== "").length;

/** Splits a prompt into its lines and asked key, checking the layout on the way. */
function parsePrompt(prompt: string): { lines: { key: string; value: number }[]; asked: string } {
  assert.ok(prompt.startsWith(EXPECTED_HEADER), "prompt starts with the header");
  const q = QUESTION_RE.exec(prompt);
  assert.ok(q !== null, "prompt ends with the question");
  const body = prompt.slice(EXPECTED_HEADER.length, q.index);
  assert.ok(body.endsWith("\n"), "the last line ends with a newline");
  const lines = body.slice(0, -1).split("\n").map((l) => {
    const m = LINE_RE.exec(l);
    assert.ok(m !== null, `line has the record format: ${JSON.stringify(l)}`);
    return { key: m[1]!, value: Number(m[2]) };
  });
  return { lines, asked: q[1]! };
}

function longestLine(words: { adjectives: readonly string[]; nouns: readonly string[] }): string {
  const longest = (ws: readonly string[]) => ws.reduce((a, b) => (b.length > a.length ? b : a));
  return `line ${longest(words.adjectives)}-${longest(words.nouns)}: REGISTER_CONTENT is <50000>\n`;
}

Deno.test("the prompt pieces have exactly the strings of DESIGN.md §5", async (t) => {
  await t.step("HEADER", () => {
    assert.equal(HEADER, EXPECTED_HEADER);
    assert.ok(HEADER.endsWith("Now the record start:\n\n"));
  });
  await t.step("formatLine()", () => {
    assert.equal(formatLine("brave-otter", 4821), "line brave-otter: REGISTER_CONTENT is <4821>\n");
  });
  await t.step("formatQuestion()", () => {
    assert.equal(
      formatQuestion("brave-otter"),
      "\nNow the record is over. Tell me what is the <REGISTER_CONTENT> in line brave-otter? I need the number.",
    );
  });
});

Deno.test("generateCases() is deterministic by seed", async (t) => {
  const opts = { count: 6, targetLength: 600, countTokens: charTokens };
  await t.step("the same seed gives identical cases", () => {
    assert.deepEqual(generateCases({ ...opts, seed: 7 }), generateCases({ ...opts, seed: 7 }));
  });
  await t.step("different seeds give different prompts and values", () => {
    const a = generateCases({ ...opts, seed: 7 });
    const b = generateCases({ ...opts, seed: 8 });
    for (let i = 0; i < a.length; i++) {
      assert.notEqual(a[i]!.prompt, b[i]!.prompt);
    }
    assert.notDeepEqual(a.map((c) => c.expected), b.map((c) => c.expected));
  });
  await t.step("ids name the length, seed and case number", () => {
    const cs = generateCases({ ...opts, targetLength: 1024, seed: 0, count: 4 });
    assert.deepEqual(cs.map((c) => c.id), [
      "lines-n1024-s0-0",
      "lines-n1024-s0-1",
      "lines-n1024-s0-2",
      "lines-n1024-s0-3",
    ]);
  });
});

Deno.test("generateCases() fills each prompt up to the token target", async (t) => {
  const tokenizers = [
    ["one token per 4 characters", charTokens],
    ["one token per whitespace-separated word", wordTokens],
  ] as const;
  const longest = longestLine({ adjectives: ADJECTIVES, nouns: NOUNS });
  for (const [name, countTokens] of tokenizers) {
    for (const targetLength of [200, 1000, 3000]) {
      await t.step(`${name}, target ${targetLength}: tokens <= target, within one line`, () => {
        const cases = generateCases({ count: 10, targetLength, seed: 3, countTokens });
        for (const c of cases) {
          const tokens = countTokens(c.prompt);
          assert.equal(c.tokens, tokens);
          assert.equal(c.targetLength, targetLength);
          assert.ok(tokens <= targetLength, `${c.id}: ${tokens} > ${targetLength}`);
          // Adding any further line (at most as long as `longest`) would overflow the target.
          const q = c.prompt.lastIndexOf("\nNow the record is over.");
          const grown = c.prompt.slice(0, q) + longest + c.prompt.slice(q);
          assert.ok(countTokens(grown) > targetLength, `${c.id}: room for another line`);
          assert.ok(targetLength - tokens < countTokens(longest), `${c.id}: gap too large`);
          const { lines } = parsePrompt(c.prompt);
          assert.equal(c.numLines, lines.length);
          assert.ok(lines.length >= 2);
        }
      });
    }
  }
  await t.step("whitespace words: every line is 5 tokens, so the gap is under 5", () => {
    const [c] = generateCases({ count: 1, targetLength: 2000, seed: 1, countTokens: wordTokens });
    const fixed = wordTokens(EXPECTED_HEADER) + wordTokens(formatQuestion(c!.key!));
    assert.equal(c!.tokens, fixed + 5 * c!.numLines!);
    assert.equal(c!.numLines, Math.floor((2000 - fixed) / 5));
  });
  await t.step("a target too small for 2 lines is a RangeError stating the minimum", () => {
    let minimum = 0;
    assert.throws(
      () => generateCases({ count: 1, targetLength: 100, seed: 5, countTokens: charTokens }),
      (e: unknown) => {
        assert.ok(e instanceof RangeError);
        const m = /minimum targetLength (\d+)/.exec(e.message);
        assert.ok(m !== null, e.message);
        assert.match(e.message, /targetLength 100 is too small/);
        minimum = Number(m[1]);
        return true;
      },
    );
    assert.ok(minimum > 100);
    const [c] = generateCases({
      count: 1,
      targetLength: minimum,
      seed: 5,
      countTokens: charTokens,
    });
    assert.equal(c!.numLines, 2);
    assert.equal(c!.tokens, minimum);
  });
  await t.step("a target needing more lines than there are keys is a RangeError", () => {
    assert.throws(
      () =>
        generateCases({
          count: 1,
          targetLength: 10000,
          seed: 0,
          countTokens: charTokens,
          words: { adjectives: ["red", "blue"], nouns: ["fox", "cat"] },
        }),
      (e: unknown) => e instanceof RangeError && /fits all 4 lines/.test(e.message),
    );
  });
  await t.step("bad count and targetLength are RangeErrors", () => {
    assert.throws(
      () => generateCases({ count: -1, targetLength: 500, seed: 0, countTokens: charTokens }),
      /count must be an integer >= 0, got -1/,
    );
    assert.throws(
      () => generateCases({ count: 1, targetLength: 1.5, seed: 0, countTokens: charTokens }),
      /targetLength must be an integer >= 1, got 1.5/,
    );
  });
});

Deno.test("generateCases() builds well-formed cases", async (t) => {
  const cases = generateCases({ count: 20, targetLength: 800, seed: 11, countTokens: charTokens });
  await t.step("the asked line spreads evenly over the 10 deciles (2 each in 20 cases)", () => {
    assert.deepEqual(cases.map((c) => c.decile), [...Array(20).keys()].map((i) => i % 10));
    for (const c of cases) {
      assert.equal(c.decile, Math.floor((10 * c.lineIndex!) / c.numLines!));
    }
  });
  await t.step("the line at lineIndex is the asked key with the expected value", () => {
    for (const c of cases) {
      const { lines, asked } = parsePrompt(c.prompt);
      assert.equal(asked, c.key);
      assert.deepEqual(lines[c.lineIndex!], { key: c.key, value: c.expected });
    }
  });
  await t.step("the asked key appears in exactly one line", () => {
    for (const c of cases) {
      assert.equal(c.prompt.split(`line ${c.key}:`).length - 1, 1);
      assert.ok(c.prompt.includes(`\nline ${c.key}: REGISTER_CONTENT is <${c.expected}>\n`));
    }
  });
  await t.step("keys are distinct within a case, values are integers in 1..50000", () => {
    for (const c of cases) {
      const { lines } = parsePrompt(c.prompt);
      assert.equal(new Set(lines.map((l) => l.key)).size, lines.length);
      for (const l of lines) assert.ok(l.value >= 1 && l.value <= 50000, `${l.value}`);
    }
  });
  await t.step("values are spread over 1..50000, not clustered", () => {
    const values = cases.flatMap((c) => parsePrompt(c.prompt).lines.map((l) => l.value));
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    // Uniform mean 25000.5, sd ≈ 14434; with > 300 values the mean's sd is < 850.
    assert.ok(Math.abs(mean - 25000.5) < 4000, `mean ${mean}`);
  });
  await t.step("held-out words give keys made only of held-out words", () => {
    const held = generateCases({
      count: 3,
      targetLength: 800,
      seed: 2,
      countTokens: charTokens,
      words: HELDOUT_WORDS,
    });
    const heldAdj = new Set(HELDOUT_WORDS.adjectives);
    const heldNoun = new Set(HELDOUT_WORDS.nouns);
    const trainAll = new Set([...TRAIN_WORDS.adjectives, ...TRAIN_WORDS.nouns]);
    for (const c of held) {
      for (const { key } of parsePrompt(c.prompt).lines) {
        const [adj, noun] = key.split("-") as [string, string];
        assert.ok(heldAdj.has(adj) && heldNoun.has(noun), key);
        assert.ok(!trainAll.has(adj) && !trainAll.has(noun), key);
      }
    }
  });
  await t.step("a line count below 10 still gives a valid asked line", () => {
    const small = generateCases({ count: 10, targetLength: 160, seed: 4, countTokens: charTokens });
    for (const c of small) {
      assert.ok(c.numLines! < 10);
      assert.ok(c.lineIndex! >= 0 && c.lineIndex! < c.numLines!);
      assert.deepEqual(parsePrompt(c.prompt).lines[c.lineIndex!], {
        key: c.key,
        value: c.expected,
      });
    }
  });
});

Deno.test("scoreAnswer() takes the last integer of the output", async (t) => {
  const cases: [string, number, boolean, number | null][] = [
    ["<1234>", 1234, true, 1234],
    ["12, 34", 34, true, 34],
    ["12, 34", 12, false, 34],
    ["The <REGISTER_CONTENT> in line brave-otter is 4821.", 4821, true, 4821],
    ["I do not know.", 5, false, null],
    ["", 5, false, null],
    ["007", 7, true, 7],
    ["line 3 holds 4821", 3, false, 4821],
  ];
  for (const [output, expected, correct, predicted] of cases) {
    await t.step(`${JSON.stringify(output)} against ${expected}`, () => {
      assert.deepEqual(scoreAnswer(output, expected), { correct, predicted });
    });
  }
});

Deno.test("summarize() gives overall and per-decile accuracy", async (t) => {
  const mk = (decile: number | null): LongEvalCase => ({
    id: "x",
    prompt: "",
    expected: 1,
    key: null,
    lineIndex: null,
    numLines: null,
    decile,
    targetLength: null,
    tokens: null,
  });
  await t.step("three deciles and one case without a decile", () => {
    const s = summarize([
      { c: mk(3), correct: true },
      { c: mk(0), correct: false },
      { c: mk(3), correct: false },
      { c: mk(0), correct: false },
      { c: mk(9), correct: true },
      { c: mk(null), correct: true },
    ]);
    assert.deepEqual(s, {
      accuracy: 3 / 6,
      n: 6,
      byDecile: [
        { decile: 0, accuracy: 0, n: 2 },
        { decile: 3, accuracy: 0.5, n: 2 },
        { decile: 9, accuracy: 1, n: 1 },
      ],
    });
  });
  await t.step("no results", () => {
    assert.deepEqual(summarize([]), { accuracy: 0, n: 0, byDecile: [] });
  });
});

Deno.test("readLongEvalJsonl() and writeLongEvalJsonl() handle the LongChat format", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "longeval_test_" });
  try {
    await t.step("generated cases round-trip unchanged", async () => {
      const cases = generateCases({
        count: 5,
        targetLength: 500,
        seed: 9,
        countTokens: charTokens,
      });
      const path = `${dir}/sub/cases.jsonl`;
      await writeLongEvalJsonl(path, cases);
      assert.deepEqual(await readLongEvalJsonl(path), cases);
      assert.deepEqual([...Deno.readDirSync(`${dir}/sub`)].map((e) => e.name), ["cases.jsonl"]);
    });
    await t.step("the file holds LongChat field names", async () => {
      const [c] = generateCases({ count: 1, targetLength: 300, seed: 9, countTokens: charTokens });
      const path = `${dir}/one.jsonl`;
      await writeLongEvalJsonl(path, [c!]);
      const o = JSON.parse(await Deno.readTextFile(path));
      assert.equal(o.prompt, c!.prompt);
      assert.equal(o.expected_number, c!.expected);
      assert.equal(o.correct_line, `line ${c!.key}: REGISTER_CONTENT is <${c!.expected}>\n`);
      assert.equal(o.num_lines, c!.numLines);
      assert.deepEqual(o.random_idx, [c!.lineIndex]);
      assert.equal(o.token_size, c!.tokens);
    });
    await t.step(
      "the sample file reads with keys, positions and a numeric-string value",
      async () => {
        const path = new URL("./testdata/longchat_sample.jsonl", import.meta.url).pathname;
        const cases = await readLongEvalJsonl(path);
        assert.equal(cases.length, 3);
        const [a, b, c] = cases as [LongEvalCase, LongEvalCase, LongEvalCase];
        assert.deepEqual({ ...a, prompt: "" }, {
          id: "longchat_sample-0",
          prompt: "",
          expected: 39002,
          key: "quiet-lantern",
          lineIndex: 2,
          numLines: 4,
          decile: 5,
          targetLength: null,
          tokens: 131,
        });
        assert.equal(parsePrompt(a.prompt).lines[2]!.value, 39002);
        assert.equal(b.expected, 12345);
        assert.equal(b.key, "gentle-walnut");
        assert.equal(b.decile, 0);
        assert.deepEqual({ ...c, prompt: "" }, {
          id: "longchat_sample-2",
          prompt: "",
          expected: 5,
          key: null,
          lineIndex: null,
          numLines: null,
          decile: null,
          targetLength: null,
          tokens: null,
        });
      },
    );

    const bad: [string, string, RegExp][] = [
      [
        "invalid JSON with a position gives line and column",
        '{"prompt": "a", "expected_number": 1}\n\n{"prompt": "b", }\n',
        /bad\.jsonl:3:17: invalid JSON: Expected double-quoted property name$/,
      ],
      [
        "invalid JSON without a position gives the line",
        '{"prompt": "a", "expected_number": 1}\nnot json\n',
        /bad\.jsonl:2: invalid JSON: Unexpected token/,
      ],
      [
        "a missing prompt",
        '{"prompt": "a", "expected_number": 1}\n{"expected_number": 1}\n',
        /bad\.jsonl:2: missing field "prompt"$/,
      ],
      [
        "a prompt that is not a string",
        '{"prompt": 3, "expected_number": 1}\n',
        /bad\.jsonl:1: prompt: expected a string, got 3$/,
      ],
      [
        "a fractional expected_number",
        '{"prompt": "a", "expected_number": 1.5}\n',
        /bad\.jsonl:1: expected_number: expected an integer, got 1\.5$/,
      ],
      [
        "a non-numeric expected_number string",
        '\n\n{"prompt": "a", "expected_number": "12a"}\n',
        /bad\.jsonl:3: expected_number: expected an integer, got "12a"$/,
      ],
      [
        "a missing expected_number",
        '{"prompt": "a"}\n',
        /bad\.jsonl:1: expected_number: expected an integer, got nothing$/,
      ],
      [
        "a line that is not an object",
        "[1, 2]\n",
        /bad\.jsonl:1: expected a JSON object, got \[1,2\]$/,
      ],
      [
        "a bad random_idx",
        '{"prompt": "a", "expected_number": 1, "random_idx": "x"}\n',
        /bad\.jsonl:1: random_idx: expected an array starting with a line index >= 0, got "x"$/,
      ],
      [
        "a random_idx past num_lines",
        '{"prompt": "a", "expected_number": 1, "random_idx": [5], "num_lines": 5}\n',
        /bad\.jsonl:1: random_idx\[0\]: expected a line index below num_lines 5, got 5$/,
      ],
      [
        "a bad num_lines",
        '{"prompt": "a", "expected_number": 1, "num_lines": 0}\n',
        /bad\.jsonl:1: num_lines: expected an integer >= 1, got 0$/,
      ],
      ["a file with only blank lines", "\n  \n\n", /bad\.jsonl: no cases/],
      ["an empty file", "", /bad\.jsonl: no cases/],
    ];
    for (const [name, text, message] of bad) {
      await t.step(`rejects ${name}`, async () => {
        const path = `${dir}/bad.jsonl`;
        await Deno.writeTextFile(path, text);
        await assert.rejects(readLongEvalJsonl(path), (e: unknown) => {
          assert.ok(e instanceof InputError);
          assert.match(e.message, message);
          assert.ok(e.message.startsWith(`${path}:`), e.message);
          return true;
        });
      });
    }
    await t.step("rejects a missing file", async () => {
      await assert.rejects(
        readLongEvalJsonl(`${dir}/absent.jsonl`),
        (e: unknown) =>
          e instanceof InputError && e.message === `${dir}/absent.jsonl: cannot read LongEval ` +
              "cases: file not found",
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
