import assert from "node:assert/strict";
import {
  byteLevelTokenizerJson,
  type TextTokenizer,
  tokenizerFromJson,
} from "../../runtime/tokenizer.ts";
import { brownText } from "../brown.ts";
import { formatLine, formatQuestion, HEADER } from "../longeval/longeval.ts";
import { HELDOUT_WORDS, TRAIN_WORDS } from "../longeval/words.ts";
import {
  BOS_ID,
  type BrownCorpus,
  brownParagraphs,
  buildBrownCorpus,
  COPY_INSTRUCTION,
  EOS_ID,
  type Example,
  MIX_KINDS,
  type MixConfig,
  type MixKind,
  MixStream,
  readBrownParagraphs,
  spreadPositions,
} from "./mix.ts";
import { TrainKeySampler } from "../longeval/keys.ts";
import { Rng } from "../../runtime/rng.ts";

/** One token per byte: token i of an ASCII text is character i. */
const bytes: TextTokenizer = tokenizerFromJson(byteLevelTokenizerJson([]));

/** Byte-level BPE with merges that cross the piece boundaries ("\n\n", " <", "is"). */
const MERGES: [string, string][] = [
  ["Ċ", "Ċ"],
  ["i", "s"],
  ["Ġ", "is"],
  ["Ġ", "<"],
  ["l", "i"],
  ["li", "n"],
  ["lin", "e"],
  ["Ġ", "b"],
  ["e", "r"],
  ["Ġ", "t"],
  ["Ġt", "h"],
  ["Ġth", "e"],
];
const merged: TextTokenizer = tokenizerFromJson(byteLevelTokenizerJson(MERGES));

/** The same merges with the pre-tokenizer's regex off: whole-text merges, pieces are not exact. */
function noRegexTokenizer(): TextTokenizer {
  const json = byteLevelTokenizerJson(MERGES);
  json.pre_tokenizer = {
    type: "ByteLevel",
    add_prefix_space: false,
    trim_offsets: true,
    use_regex: false,
  };
  return tokenizerFromJson(json);
}

const C = 0.25; // context weight
const A = 2; // answer weight

function config(over: Partial<MixConfig> = {}): MixConfig {
  return {
    T: 1024,
    kinds: { brown: 1, longeval: 1, multiQuery: 1, copy: 1 },
    lines: [2, 8],
    contextWeight: C,
    answerWeight: A,
    ...over,
  };
}

function only(kind: MixKind): MixConfig["kinds"] {
  return { brown: 0, longeval: 0, multiQuery: 0, copy: 0, [kind]: 1 };
}

let paragraphsPromise: ReturnType<typeof readBrownParagraphs> | undefined;
let corpusPromise: Promise<BrownCorpus> | undefined;
/** The first 20 training documents, read once for the file. */
function paragraphs() {
  paragraphsPromise ??= readBrownParagraphs({ documents: 20 });
  return paragraphsPromise;
}
function corpus(): Promise<BrownCorpus> {
  corpusPromise ??= paragraphs().then((ps) => buildBrownCorpus(bytes, ps));
  return corpusPromise;
}

async function stream(over: Partial<MixConfig> = {}, seed = 1): Promise<MixStream> {
  return new MixStream(bytes, config(over), seed, await corpus());
}

/** The example as one sequence: tokens then the last target (length T + 1). */
function sequence(ex: Example): number[] {
  return [...ex.tokens, ex.targets[ex.targets.length - 1]!];
}

/** Number of target positions before the EOS padding (weight 0 and EOS from there on). */
function contentLength(ex: Example): number {
  let end = ex.weights.length;
  while (end > 0 && ex.weights[end - 1] === 0) end--;
  return end;
}

/**
 * The text of a task example (byte-level tokenizer: target t is character t of the text after
 * BOS), checking that every position after the content is EOS with weight 0.
 */
function textOf(ex: Example): string {
  const n = contentLength(ex);
  for (let t = n; t < ex.targets.length; t++) {
    assert.equal(ex.targets[t], EOS_ID, `target ${t} is padding`);
    assert.equal(ex.weights[t], 0, `weight ${t} is padding`);
  }
  return bytes.decode(ex.targets.slice(0, n));
}

const LINE = /^line ([a-z]+)-([a-z]+): REGISTER_CONTENT is <(\d+)>$/;

/** Parses a LongEval example's text into its lines and question/answer pairs. */
function parseLongEval(text: string, echo = false) {
  assert.ok(text.startsWith(HEADER), "starts with the exact header");
  const qStart = text.indexOf("\nNow the record is over.");
  assert.ok(qStart > HEADER.length, "has a question after the record");
  const record = text.slice(HEADER.length, qStart).split("\n");
  assert.equal(record.pop(), "", "the record ends with a newline");
  const lines = record.map((l) => {
    const m = LINE.exec(l);
    assert.ok(m !== null, `a record line: ${JSON.stringify(l)}`);
    return { adjective: m[1]!, noun: m[2]!, key: `${m[1]}-${m[2]}`, value: Number(m[3]) };
  });
  const qa: { key: string; answer: number; at: number }[] = [];
  let at = qStart;
  const QA = echo
    ? /^\nNow the record is over\. Tell me what is the <REGISTER_CONTENT> in line ([a-z-]+)\? I need the number\. {2}line ([a-z-]+): REGISTER_CONTENT is <(\d+)>\n/
    : /^\nNow the record is over\. Tell me what is the <REGISTER_CONTENT> in line ([a-z-]+)\? I need the number\. <(\d+)>\n/;
  while (at < text.length) {
    const m = QA.exec(text.slice(at));
    assert.ok(m !== null, `a question and answer at ${at}: ${JSON.stringify(text.slice(at))}`);
    const key = m[1]!;
    assert.equal(text.slice(at, at + formatQuestion(key).length), formatQuestion(key));
    if (echo) assert.equal(m[2], key, "the echoed line is the asked one");
    qa.push({ key, answer: Number(m[echo ? 3 : 2]), at: at + formatQuestion(key).length });
    at += m[0].length;
  }
  return { lines, qa };
}

Deno.test("brownParagraphs() groups paragraphs and finds first sentences", async (t) => {
  await t.step("a paragraph's first sentence is its first tagged line", () => {
    const tagged = "\n\tHe/pps said/vbd ,/, ``/`` Yes/rb ''/'' ./.\n" +
      "\tMr./np Smith/np left/vbd ./.\n\n\tIt/pps rained/vbd ./.\n";
    assert.deepEqual(brownParagraphs(tagged), [
      { text: 'He said, "Yes". Mr. Smith left.', firstSentence: 'He said, "Yes".' },
      { text: "It rained.", firstSentence: "It rained." },
    ]);
  });
  await t.step("a headline is a paragraph of its own without a first sentence", () => {
    const tagged = "Merger/nn-hl proposed/vbn-hl\nHowever/rb ,/, no/at ./.\n";
    assert.deepEqual(brownParagraphs(tagged), [
      { text: "Merger proposed", firstSentence: null },
      { text: "However, no.", firstSentence: "However, no." },
    ]);
  });
  await t.step("a sentence ending in an abbreviation keeps one full stop", () => {
    const tagged = "Ivan/np Allen/np Jr./np ./.\nHe/pps won/vbd ./.\n";
    assert.deepEqual(brownParagraphs(tagged), [
      { text: "Ivan Allen Jr. He won.", firstSentence: "Ivan Allen Jr." },
    ]);
  });
});

Deno.test("readBrownParagraphs() rebuilds the Brown training text exactly", async () => {
  const all = await readBrownParagraphs();
  assert.equal(all.map((p) => p.text).join("\n\n"), await brownText("train"));
  const withSentence = all.filter((p) => p.firstSentence !== null);
  assert.ok(withSentence.length > 0.9 * all.length, "most paragraphs have a first sentence");
  for (const p of withSentence) assert.ok(p.text.startsWith(p.firstSentence!));
});

Deno.test("buildBrownCorpus() tokenizes paragraphs like one encode of the joined text", async () => {
  const ps = (await paragraphs()).slice(0, 40);
  const c = buildBrownCorpus(merged, ps);
  assert.deepEqual([...c.tokens], merged.encode(ps.map((p) => p.text).join("\n\n")));
  assert.ok(c.passages.length > 0);
  for (const p of c.passages) {
    assert.deepEqual([...c.tokens.slice(p.start, p.start + p.sentenceTokens.length)], [
      ...p.sentenceTokens,
    ]);
    assert.equal(merged.decode(p.sentenceTokens), p.sentence);
  }
});

Deno.test("MixStream longeval examples", async (t) => {
  const s = await stream({ kinds: only("longeval"), lines: [3, 8] });
  const examples = Array.from({ length: 40 }, () => s.next());
  const trainAdj = new Set(TRAIN_WORDS.adjectives);
  const trainNoun = new Set(TRAIN_WORDS.nouns);
  const heldAdj = new Set(HELDOUT_WORDS.adjectives);
  const heldNoun = new Set(HELDOUT_WORDS.nouns);

  await t.step("have exactly T positions and targets shifted by one", () => {
    for (const ex of examples) {
      assert.equal(ex.kind, "longeval");
      assert.equal(ex.tokens.length, 1024);
      assert.equal(ex.targets.length, 1024);
      assert.equal(ex.weights.length, 1024);
      assert.equal(ex.tokens[0], BOS_ID);
      for (let t = 0; t + 1 < 1024; t++) assert.equal(ex.targets[t], ex.tokens[t + 1]);
    }
  });

  await t.step("hold the exact header and question, and the asked line's value", () => {
    for (const ex of examples) {
      const text = textOf(ex);
      const { lines, qa } = parseLongEval(text);
      assert.equal(qa.length, 1);
      assert.equal(ex.questions, 1);
      assert.equal(lines.length, ex.lines);
      const asked = lines.find((l) => l.key === qa[0]!.key);
      assert.ok(asked !== undefined, "the asked key is a line of the record");
      assert.equal(qa[0]!.answer, asked.value);
      assert.ok(text.endsWith(`I need the number. <${asked.value}>\n`));
    }
  });

  await t.step("use distinct training keys only and values in 1..50000", () => {
    for (const ex of examples) {
      const { lines } = parseLongEval(textOf(ex));
      assert.equal(new Set(lines.map((l) => l.key)).size, lines.length);
      for (const l of lines) {
        assert.ok(trainAdj.has(l.adjective) && trainNoun.has(l.noun), l.key);
        assert.ok(!heldAdj.has(l.adjective) && !heldNoun.has(l.noun), l.key);
        assert.ok(Number.isInteger(l.value) && l.value >= 1 && l.value <= 50000);
      }
    }
  });

  await t.step("weight the answer tokens, the context less and the padding 0", () => {
    for (const ex of examples) {
      const text = textOf(ex);
      // the question ends with a space (context); the answer follows it
      const answerStart = text.lastIndexOf(" <") + 1;
      for (let i = 0; i < text.length; i++) {
        assert.equal(ex.weights[i], i >= answerStart ? A : C, `weight of character ${i}`);
      }
      assert.equal(text.slice(answerStart), `<${parseLongEval(text).qa[0]!.answer}>\n`);
    }
  });

  await t.step("keep the line count within [min, max] when T allows it", () => {
    const counts = examples.map((ex) => ex.lines);
    assert.ok(counts.every((n) => n >= 3 && n <= 8), String(counts));
    assert.ok(counts.includes(3) && counts.includes(8), "both ends are drawn");
  });

  await t.step("cap the line count so the example fits T, filling most of it", () => {
    s.setConfig({ lines: [200, 300] });
    for (let i = 0; i < 20; i++) {
      const ex = s.next();
      const text = textOf(ex);
      const { lines, qa } = parseLongEval(text);
      assert.equal(lines.length, ex.lines);
      assert.ok(ex.lines >= 1 && ex.lines < 200);
      assert.equal(qa.length, 1);
      // 1 BOS + text = the used part of T + 1 positions; a line is at most ~60 bytes
      assert.ok(1 + text.length <= 1025 && 1025 - (1 + text.length) < 120, String(text.length));
    }
  });
});

Deno.test("MixStream multiQuery examples answer every question correctly", async () => {
  const s = await stream({ kinds: only("multiQuery"), lines: [2, 6] });
  let extra = 0;
  for (let i = 0; i < 30; i++) {
    const ex = s.next();
    assert.equal(ex.kind, "multiQuery");
    assert.equal(ex.tokens[0], BOS_ID);
    const text = textOf(ex);
    const { lines, qa } = parseLongEval(text);
    assert.equal(lines.length, ex.lines);
    assert.equal(qa.length, ex.questions);
    assert.equal(new Set(qa.map((q) => q.key)).size, qa.length, "each line asked once");
    const valueOf = new Map(lines.map((l) => [l.key, l.value]));
    for (const q of qa) {
      assert.equal(q.answer, valueOf.get(q.key), `answer for ${q.key}`);
      const answer = `<${q.answer}>\n`;
      assert.equal(text.slice(q.at, q.at + answer.length), answer);
      for (let c = q.at; c < q.at + answer.length; c++) assert.equal(ex.weights[c], A);
      assert.equal(ex.weights[q.at - 1], C, "the question is context");
    }
    extra += qa.length - 1;
    // no further question would have fit: fewer free positions than a question + answer
    if (qa.length < lines.length) assert.ok(1025 - (1 + text.length) < 130);
  }
  assert.ok(extra >= 30, `extra questions in 30 examples: ${extra}`);
});

Deno.test("MixStream echo answers restate the asked line, all of it weighted as answer", async () => {
  for (const kind of ["longeval", "multiQuery"] as const) {
    const s = await stream({ kinds: only(kind), lines: [2, 6], answer: "echo" }, 3);
    for (let i = 0; i < 15; i++) {
      const ex = s.next();
      const text = textOf(ex);
      const { lines, qa } = parseLongEval(text, true);
      assert.equal(qa.length, ex.questions);
      if (kind === "longeval") assert.equal(qa.length, 1);
      const valueOf = new Map(lines.map((l) => [l.key, l.value]));
      for (const q of qa) {
        assert.equal(q.answer, valueOf.get(q.key), `answer for ${q.key}`);
        const answer = ` ${formatLine(q.key, q.answer)}`; // after the question's space
        assert.equal(text.slice(q.at, q.at + answer.length), answer);
        for (let c = q.at; c < q.at + answer.length; c++) assert.equal(ex.weights[c], A);
        assert.equal(ex.weights[q.at - 1], C, "the question is context");
      }
    }
  }
  // the default answers with the value only, and a bad style is named
  const plain = (await stream({ kinds: only("longeval"), lines: [2, 6] }, 3)).next();
  parseLongEval(textOf(plain));
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => new MixStream(bytes, config({ kinds: only("longeval"), answer: "both" as any }), 0),
    /MixConfig\.answer: expected "value" or "echo", got "both"/,
  );
});

Deno.test("MixStream copy examples repeat the passage's first sentence", async () => {
  const firstSentences = new Set((await paragraphs()).map((p) => p.firstSentence));
  const s = await stream({ kinds: only("copy") });
  for (let i = 0; i < 30; i++) {
    const ex = s.next();
    assert.equal(ex.kind, "copy");
    assert.equal(ex.tokens.length, 1024);
    assert.equal(ex.tokens[0], BOS_ID);
    const text = textOf(ex);
    const cut = text.lastIndexOf(COPY_INSTRUCTION);
    assert.ok(cut > 0);
    const passage = text.slice(0, cut);
    const answer = text.slice(cut + COPY_INSTRUCTION.length);
    assert.ok(answer.endsWith("\n"));
    const sentence = answer.slice(0, -1);
    assert.ok(firstSentences.has(sentence), `a paragraph's first sentence: ${sentence}`);
    assert.ok(passage.startsWith(sentence), "the passage begins with the sentence");
    const after = passage.slice(sentence.length);
    assert.ok(after === "" || after.startsWith(" ") || after.startsWith("\n\n"));
    for (let c = 0; c < text.length; c++) {
      assert.equal(ex.weights[c], c >= cut + COPY_INSTRUCTION.length ? A : C, `weight ${c}`);
    }
    assert.equal(text.length, 1024, "the passage fills T");
  }
});

Deno.test("MixStream brown examples are corpus windows with weight 1", async () => {
  const text = (await paragraphs()).map((p) => p.text).join("\n\n");
  const s = await stream({ kinds: only("brown") });
  for (let i = 0; i < 20; i++) {
    const ex = s.next();
    assert.equal(ex.kind, "brown");
    for (let t = 0; t + 1 < 1024; t++) assert.equal(ex.targets[t], ex.tokens[t + 1]);
    assert.ok(ex.weights.every((w) => w === 1));
    const window = bytes.decode(sequence(ex));
    assert.equal(window.length, 1025);
    assert.ok(text.includes(window), "a window of the Brown text");
  }
});

Deno.test("MixStream draws", async (t) => {
  await t.step("equal examples for equal seeds and different ones otherwise", async () => {
    const a = (await stream({}, 7)).nextBatch(12);
    const b = (await stream({}, 7)).nextBatch(12);
    const c = (await stream({}, 8)).nextBatch(12);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.tokens, c.tokens);
  });

  await t.step("kinds in proportion to their weights", async () => {
    const kinds = { brown: 1, longeval: 2, multiQuery: 1, copy: 0.5, repeat: 0.5, recall: 1 };
    const s = await stream({ kinds }, 3);
    const counts: Record<string, number> = Object.fromEntries(MIX_KINDS.map((k) => [k, 0]));
    for (let i = 0; i < 500; i++) counts[s.next().kind]!++;
    for (const k of MIX_KINDS) {
      const expected = kinds[k] / 6;
      // binomial sd at n = 500 is at most 0.023; allow about 3 sd
      assert.ok(Math.abs(counts[k]! / 500 - expected) < 0.07, `${k}: ${counts[k]} of 500`);
    }
  });

  await t.step(
    "repeat: random spans each followed by itself; loss only on the copies",
    async () => {
      const s = await stream({
        T: 256,
        kinds: { brown: 0, longeval: 0, multiQuery: 0, copy: 0, repeat: 1 },
      });
      for (let i = 0; i < 20; i++) {
        const ex = s.next();
        assert.equal(ex.kind, "repeat");
        assert.equal(ex.tokens[0], BOS_ID);
        // each run of weighted targets [a, b] predicts copied tokens a+1 … b+1; with the copy's
        // unweighted first token, the span is n = m + 1 long and each target repeats the token
        // n positions earlier
        let weighted = 0;
        for (let a = 0; a < ex.weights.length;) {
          if (ex.weights[a] === 0) {
            a++;
            continue;
          }
          let b = a;
          while (b + 1 < ex.weights.length && ex.weights[b + 1]! > 0) b++;
          const m = b - a + 1;
          assert.ok(m >= 7, `a copy of ${m} weighted tokens at ${a}`);
          for (let t = a; t <= b; t++) assert.equal(ex.targets[t], ex.tokens[t - m]);
          for (let t = a - m - 1; t < a; t++) assert.equal(ex.weights[t], 0);
          weighted += m;
          a = b + 1;
        }
        assert.ok(weighted > 100, `only ${weighted} weighted targets`);
        for (const id of ex.tokens.subarray(1)) assert.ok(id >= 3 || id === EOS_ID);
      }
    },
  );

  await t.step(
    "recall: record lines, then the same lines again; loss on the recalled values",
    async () => {
      const V = 3;
      const s = await stream({
        T: 400,
        lines: [3, 30],
        valueWeight: V,
        kinds: { brown: 0, longeval: 0, multiQuery: 0, copy: 0, recall: 1 },
      });
      for (let i = 0; i < 10; i++) {
        const ex = s.next();
        assert.equal(ex.kind, "recall");
        assert.equal(ex.tokens[0], BOS_ID);
        const end = ex.tokens.indexOf(EOS_ID);
        const text = bytes.decode(ex.tokens.subarray(1, end < 0 ? undefined : end));
        const lines = [...text.matchAll(/line ([a-z]+-[a-z]+): REGISTER_CONTENT is <(\d+)>\n/g)];
        assert.equal(
          lines.map((m) => m[0]).join(""),
          text.slice(0, lines.at(-1)!.index + lines.at(-1)![0].length),
        );
        const record = lines.slice(0, ex.lines), recalls = lines.slice(ex.lines);
        assert.ok(
          ex.lines >= 3 && recalls.length >= ex.lines,
          `${ex.lines} lines, ${recalls.length} recalls`,
        );
        assert.equal(ex.questions, recalls.length);
        const values = new Map(record.map((m) => [m[1], m[2]]));
        assert.equal(values.size, record.length, "distinct keys");
        for (const m of recalls) assert.equal(m[2], values.get(m[1]!), `value of ${m[1]}`);
        // each recalled value " <digits>>\n" carries V; nothing else but context weight or 0
        const vw = [...ex.weights].filter((w) => w === V).length;
        const valueChars = recalls.reduce((a, m) => a + m[2]!.length + 4, 0);
        assert.equal(vw, valueChars);
        for (const w of ex.weights) assert.ok(w === V || w === C || w === 0, `weight ${w}`);
      }
    },
  );

  await t.step("repeat: repeatVocab limits the alphabet; a bad value is rejected", async () => {
    const kinds = { brown: 0, longeval: 0, multiQuery: 0, copy: 0, repeat: 1 };
    const s = await stream({ T: 128, kinds, repeatVocab: 10 });
    for (let i = 0; i < 5; i++) {
      for (const id of s.next().tokens.subarray(1)) {
        assert.ok((id >= 3 && id < 13) || id === EOS_ID, `id ${id}`);
      }
    }
    await assert.rejects(() => stream({ T: 128, kinds, repeatVocab: 1 }), /repeatVocab/);
  });

  await t.step("never a kind of weight 0", async () => {
    const s = await stream({ kinds: { brown: 1, longeval: 0, multiQuery: 1, copy: 0 } });
    for (let i = 0; i < 50; i++) assert.ok(["brown", "multiQuery"].includes(s.next().kind));
  });

  await t.step("a batch of the same rows as single draws", async () => {
    const batch = (await stream({}, 5)).nextBatch(6);
    const single = await stream({}, 5);
    for (let b = 0; b < 6; b++) {
      const ex = single.next();
      assert.equal(batch.kinds[b], ex.kind);
      assert.deepEqual(batch.tokens.slice(b * 1024, (b + 1) * 1024), ex.tokens);
      assert.deepEqual(batch.targets.slice(b * 1024, (b + 1) * 1024), ex.targets);
      assert.deepEqual(batch.weights.slice(b * 1024, (b + 1) * 1024), ex.weights);
    }
  });

  await t.step("examples of the new T and lines after setConfig()", async () => {
    const s = await stream({ kinds: { brown: 1, longeval: 1, multiQuery: 1, copy: 1 } });
    s.setConfig({ T: 1600, lines: [15, 15] });
    for (let i = 0; i < 12; i++) {
      const ex = s.next();
      assert.equal(ex.tokens.length, 1600);
      if (ex.kind === "longeval" || ex.kind === "multiQuery") assert.equal(ex.lines, 15);
    }
    assert.equal(s.config.T, 1600);
  });
});

Deno.test("MixStream prompt tokens equal one encode of the prompt text", async (t) => {
  const cases: [string, TextTokenizer, boolean][] = [
    ["with cached pieces when they are exact", merged, true],
    ["by whole-prompt encoding when pieces are not exact", noRegexTokenizer(), false],
  ];
  for (const [name, tok, fast] of cases) {
    await t.step(name, () => {
      const s = new MixStream(
        tok,
        config({ kinds: { brown: 0, longeval: 1, multiQuery: 1, copy: 0 }, lines: [5, 40] }),
        2,
      );
      assert.equal(s.fastPath, fast);
      for (let i = 0; i < 12; i++) {
        const ex = s.next();
        const firstAnswer = ex.weights.indexOf(A); // targets[firstAnswer] starts the answer
        const prompt = ex.tokens.slice(1, firstAnswer + 1);
        const text = tok.decode(prompt);
        assert.ok(text.startsWith(HEADER) && text.endsWith("I need the number. "));
        assert.deepEqual([...prompt], tok.encode(text));
        const answer = tok.decode(ex.targets.slice(firstAnswer, firstAnswer + 12));
        assert.match(answer, /^<\d+>\n/);
      }
    });
  }
});

Deno.test("MixStream rejects bad configs and too small T", async (t) => {
  const c = await corpus();
  await t.step("lines with min > max, naming the field and value", () => {
    const s = new MixStream(bytes, config(), 0, c);
    assert.throws(
      () => s.setConfig({ lines: [5, 3] }),
      (e: Error) =>
        e instanceof RangeError && e.message.includes("MixConfig.lines") &&
        e.message.includes("[5,3]"),
    );
    assert.deepEqual(s.config.lines, [2, 8], "the old config stays");
  });
  await t.step("all kind weights 0 or a negative one", () => {
    assert.throws(
      () =>
        new MixStream(bytes, config({ kinds: only("brown") }), 0, c).setConfig({
          kinds: { brown: 0, longeval: 0, multiQuery: 0, copy: 0 },
        }),
      /MixConfig\.kinds: expected at least one weight > 0/,
    );
    assert.throws(
      () => new MixStream(bytes, config({ kinds: { ...only("brown"), copy: -1 } }), 0, c),
      /MixConfig\.kinds\.copy: expected a finite number >= 0, got -1/,
    );
  });
  await t.step("brown or copy without a corpus", () => {
    assert.throws(
      () => new MixStream(bytes, config(), 0),
      /MixConfig\.kinds\.brown: 1 needs a Brown corpus/,
    );
  });
  await t.step("a T too small for one LongEval line, giving the minimum", () => {
    const s = new MixStream(bytes, config({ T: 300, kinds: only("longeval") }), 0);
    let need = 0;
    assert.throws(() => s.next(), (e: Error) => {
      const m = /^MixConfig\.T: 300 is too small .* \(needs T >= (\d+)\)$/.exec(e.message);
      need = Number(m?.[1]);
      return e instanceof RangeError && m !== null;
    });
    // the same seed draws the same line: at T = need it fits exactly, without padding
    const ex = new MixStream(bytes, config({ T: need, kinds: only("longeval") }), 0).next();
    assert.equal(ex.lines, 1);
    assert.equal(contentLength(ex), need);
    assert.equal(textOf(ex).length, need);
  });
});

Deno.test("MixStream with varied keys: echoed answers are the asked record line", async () => {
  const keys = new TrainKeySampler(["river", "stone", "plank", "glove", "cedar", "frost"]);
  const s = new MixStream(
    bytes,
    config({ kinds: only("multiQuery"), lines: [4, 30], answer: "echo", keys: "varied" }),
    4,
    await corpus(),
    keys,
  );
  const LINE_ANY = /^line ([^:\s]+): REGISTER_CONTENT is <(\d+)>$/;
  let asked = 0;
  for (let i = 0; i < 20; i++) {
    const text = textOf(s.next());
    const qStart = text.indexOf("\nNow the record is over.");
    const record = new Map(
      text.slice(HEADER.length, qStart).split("\n").filter((l) => l).map((l) => {
        const m = LINE_ANY.exec(l);
        assert.ok(m !== null, l);
        return [m[1]!, Number(m[2])] as const;
      }),
    );
    for (
      const m of text.slice(qStart).matchAll(
        /in line ([^?]+)\? I need the number\. {2}(line [^\n]*)\n/g,
      )
    ) {
      const echo = LINE_ANY.exec(m[2]!);
      assert.ok(echo !== null && echo[1] === m[1], `${m[1]} echoed as ${m[2]}`);
      assert.equal(Number(echo[2]), record.get(m[1]!), `value of ${m[1]}`);
      asked++;
    }
  }
  // every example's question(s) matched (20 examples, some with extra questions)
  assert.ok(asked > 20, `${asked} questions`);
  assert.throws(
    () => new MixStream(bytes, config({ kinds: only("recall"), keys: "varied" }), 0, null),
    /MixConfig\.keys: "varied" needs a TrainKeySampler/,
  );
});

Deno.test("spreadPositions() spreads chunks over the range, contiguous within a chunk", () => {
  const rng = new Rng(2);
  let maxSeen = 0;
  for (let i = 0; i < 200; i++) {
    const p = spreadPositions(512, 8192, rng);
    assert.equal(p[0], 0);
    let jumps = 0;
    for (let t = 1; t < p.length; t++) {
      const d = p[t]! - p[t - 1]!;
      assert.ok(d >= 1, `positions rise: ${p[t - 1]} then ${p[t]}`);
      if (d > 1) jumps++;
    }
    assert.ok(jumps <= 3, `${jumps} jumps`);
    assert.ok(p[511]! < 8192);
    maxSeen = Math.max(maxSeen, p[511]!);
  }
  assert.ok(maxSeen > 7000, `the last position reaches far: ${maxSeen}`);
  // MixStream applies it to the configured share of examples only
  const s = new MixStream(
    bytes,
    config({ kinds: only("repeat"), spread: 4096, spreadShare: 0.5 }),
    1,
  );
  let spread = 0;
  for (let i = 0; i < 100; i++) if (s.next().positions[1023]! > 1023) spread++;
  assert.ok(spread > 30 && spread < 70, `${spread} of 100 examples spread`);
});
