import assert from "node:assert/strict";
import { InputError } from "../../runtime/errors.ts";
import type { Rng } from "../../runtime/rng.ts";
import {
  formatLine,
  formatQuestion,
  generateCases,
  generateCasesByLines,
  HEADER,
  type LongEvalCase,
  readLongEvalJsonl,
  scoreAnswer,
  summarize,
  writeLongEvalJsonl,
} from "./longeval.ts";
import { ADJECTIVES, HELDOUT_WORDS, NOUNS, TRAIN_WORDS } from "./words.ts";

// The exact strings of DESIGN.md §5.1, written out independently of longeval.ts.
const EXPECTED_HEADER =
  "Below is a record of lines I want you to remember. Each line begins with 'line <line index>' and contains a '<REGISTER_CONTENT>' at the end of the line as a numerical value. For each line index, memorize its corresponding <REGISTER_CONTENT>. At the end of the record, I will ask you to retrieve the corresponding <REGISTER_CONTENT> of a certain line index. Now the record start:\n\n";
const QUESTION_RE =
  /\nNow the record is over\. Tell me what is the <REGISTER_CONTENT> in line ([a-z]+-[a-z]+)\? I need the number\. ?$/; // the sample file predates the space
const LINE_RE = /^line ([a-z]+-[a-z]+): REGISTER_CONTENT is <(\d+)>$/;

/** The fields of LongChat's published test files, in their order. */
const PUBLISHED_FIELDS = [
  "random_idx",
  "expected_number",
  "num_lines",
  "token_size",
  "correct_line",
  "prompt",
  "prompt_length",
];
/** A line and the question of LongChat's published files, trailing space included. */
const PUBLISHED_LINE = "line torpid-kid: REGISTER_CONTENT is <2416>\n";
const publishedQuestion = (key: string) =>
  `\nNow the record is over. Tell me what is the <REGISTER_CONTENT> in line ${key}? I need the number. `;
const PUBLISHED_QUESTION = publishedQuestion("torpid-kid");

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

Deno.test("the prompt pieces have exactly the strings of DESIGN.md §5.1", async (t) => {
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
      "\nNow the record is over. Tell me what is the <REGISTER_CONTENT> in line brave-otter? I need the number. ",
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
    await t.step("generated cases round-trip, but for id and targetLength", async () => {
      const cases = generateCases({
        count: 5,
        targetLength: 500,
        seed: 9,
        countTokens: charTokens,
      });
      const path = `${dir}/sub/cases.jsonl`;
      await writeLongEvalJsonl(path, cases);
      assert.deepEqual(
        await readLongEvalJsonl(path),
        cases.map((c, i) => ({ ...c, id: `cases-${i}`, targetLength: null })),
      );
      assert.deepEqual([...Deno.readDirSync(`${dir}/sub`)].map((e) => e.name), ["cases.jsonl"]);
    });
    await t.step("the file holds exactly LongChat's published fields, in its order", async () => {
      const [c] = generateCases({ count: 1, targetLength: 300, seed: 9, countTokens: charTokens });
      const path = `${dir}/one.jsonl`;
      await writeLongEvalJsonl(path, [c!]);
      const o = JSON.parse(await Deno.readTextFile(path));
      assert.deepEqual(Object.keys(o), PUBLISHED_FIELDS);
      assert.deepEqual(o.random_idx, [c!.key, c!.lineIndex]);
      assert.equal(o.expected_number, c!.expected);
      assert.equal(o.num_lines, c!.numLines);
      assert.equal(o.token_size, c!.tokens);
      assert.equal(o.correct_line, `line ${c!.key}: REGISTER_CONTENT is <${c!.expected}>\n`);
      assert.equal(o.prompt, c!.prompt);
      assert.equal(o.prompt_length, -1);
    });
    await t.step("a line in LongChat's published layout reads as it is", async () => {
      const lines = ["line plain-cup: REGISTER_CONTENT is <11>\n", PUBLISHED_LINE];
      const prompt = EXPECTED_HEADER + lines.join("") + PUBLISHED_QUESTION;
      const path = `${dir}/200_lines.jsonl`;
      await Deno.writeTextFile(
        path,
        // the published field order, written out by hand
        `{"random_idx": ["torpid-kid", 1], "expected_number": 2416, "num_lines": 2, ` +
          `"token_size": 4803, "correct_line": ${JSON.stringify(PUBLISHED_LINE)}, ` +
          `"prompt": ${JSON.stringify(prompt)}, "prompt_length": -1}\n`,
      );
      const [c, ...rest] = await readLongEvalJsonl(path);
      assert.equal(rest.length, 0);
      assert.deepEqual(c, {
        id: "200_lines-0",
        prompt,
        expected: 2416,
        key: "torpid-kid",
        lineIndex: 1,
        numLines: 2,
        decile: 5,
        targetLength: null,
        tokens: 4803,
      });
      assert.ok(c!.prompt.endsWith("I need the number. "), "the trailing space is kept");
    });
    await t.step("random_idx's key is enough without correct_line", async () => {
      const path = `${dir}/nokey.jsonl`;
      await Deno.writeTextFile(
        path,
        JSON.stringify({ random_idx: ["Early-resolve", 0], expected_number: 3, prompt: "p " }) +
          "\n",
      );
      const [c] = await readLongEvalJsonl(path);
      assert.equal(c!.key, "Early-resolve");
      assert.equal(c!.lineIndex, 0);
      assert.equal(c!.prompt, "p ");
    });
    // testdata/longchat_layout.jsonl: generateCases({ count: 10, targetLength: 512, seed: 12 }) with
    // moa-tiny's token count (BOS included), written by writeLongEvalJsonl
    await t.step("the fixture in the published layout is consistent with its prompts", async () => {
      const path = new URL("./testdata/longchat_layout.jsonl", import.meta.url).pathname;
      const rows = (await Deno.readTextFile(path)).trimEnd().split("\n").map((l) => JSON.parse(l));
      const cases = await readLongEvalJsonl(path);
      assert.equal(cases.length, rows.length);
      assert.ok(cases.length >= 10, `${cases.length} cases`);
      const deciles = new Set<number>();
      for (const [i, c] of cases.entries()) {
        assert.deepEqual(Object.keys(rows[i]), PUBLISHED_FIELDS, `line ${i + 1}`);
        const question = publishedQuestion(c.key!);
        assert.ok(c.prompt.startsWith(EXPECTED_HEADER), `line ${i + 1}: header`);
        assert.ok(c.prompt.endsWith(question), `line ${i + 1}: question, trailing space included`);
        const body = c.prompt.slice(EXPECTED_HEADER.length, c.prompt.length - question.length);
        const lines = body.split("\n").slice(0, -1).map((l) => {
          const m = /^line (\S+): REGISTER_CONTENT is <(\d+)>$/.exec(l);
          assert.ok(m !== null, `line ${i + 1}: a record line ${JSON.stringify(l)}`);
          return { key: m[1]!, value: Number(m[2]) };
        });
        assert.equal(lines.length, c.numLines);
        assert.deepEqual(lines[c.lineIndex!], { key: c.key, value: c.expected });
        assert.equal(
          rows[i].correct_line,
          PUBLISHED_LINE.replace("torpid-kid", c.key!)
            .replace("2416", String(c.expected)),
        );
        deciles.add(c.decile!);
      }
      assert.equal(deciles.size, 10, "the asked lines cover every decile");
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
        /bad\.jsonl:1: random_idx: expected \[key, line index >= 0\] \(LongChat's layout\) or \[line index >= 0, \.\.\.\], got "x"$/,
      ],
      [
        "a random_idx with a key but a negative line index",
        '{"prompt": "a", "expected_number": 1, "random_idx": ["red-fox", -1]}\n',
        /bad\.jsonl:1: random_idx: expected \[key, .*got \["red-fox",-1\]$/,
      ],
      [
        "a published random_idx past num_lines",
        '{"prompt": "a", "expected_number": 1, "random_idx": ["red-fox", 5], "num_lines": 5}\n',
        /bad\.jsonl:1: random_idx\[1\]: expected a line index below num_lines 5, got 5$/,
      ],
      [
        "a random_idx key that disagrees with correct_line",
        '{"prompt": "a", "expected_number": 7, "random_idx": ["red-fox", 0], ' +
        '"correct_line": "line blue-fox: REGISTER_CONTENT is <7>\\n"}\n',
        /bad\.jsonl:1: correct_line: names key "blue-fox" but random_idx\[0\] is "red-fox"$/,
      ],
      [
        "a correct_line whose value is not expected_number",
        '{"prompt": "a", "expected_number": 7, ' +
        '"correct_line": "line blue-fox: REGISTER_CONTENT is <8>\\n"}\n',
        /bad\.jsonl:1: correct_line: holds the value 8 but expected_number is 7$/,
      ],
      [
        "a prompt_length that is not an integer",
        '{"prompt": "a", "expected_number": 1, "prompt_length": "-1"}\n',
        /bad\.jsonl:1: prompt_length: expected an integer >= -1, got "-1"$/,
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

Deno.test("generateCasesByLines() gives every prompt the asked number of lines", () => {
  const drawKey = (r: Rng) => `k${r.int(0, 1e6)}-Z${r.int(0, 99)}`;
  const cases = generateCasesByLines({
    count: 20,
    lines: 37,
    seed: 4,
    countTokens: (s) => s.length,
    drawKey,
  });
  for (const [i, c] of cases.entries()) {
    const lines = c.prompt.slice(HEADER.length, c.prompt.indexOf("\nNow the record")).split("\n");
    assert.equal(lines.pop(), "");
    assert.equal(lines.length, 37);
    assert.equal(c.numLines, 37);
    assert.equal(lines[c.lineIndex!], formatLine(c.key!, c.expected).trimEnd());
    assert.equal(c.decile, i % 10);
    assert.ok(c.prompt.endsWith(formatQuestion(c.key!)));
    assert.equal(new Set(lines.map((l) => l.split(":")[0])).size, 37, "distinct keys");
    assert.equal(c.tokens, c.prompt.length);
  }
  assert.throws(
    () => generateCasesByLines({ count: 1, lines: 1, seed: 0, countTokens: (s) => s.length }),
    /lines must be an integer >= 2/,
  );
});
