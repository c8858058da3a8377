import assert from "node:assert/strict";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import {
  buildMoaTokenizer,
  encodeWithMerges,
  longEvalSample,
  preTokenize,
  trainBpe,
  trainBpeDetailed,
} from "./bpe.ts";
import {
  byteLevelTokenizerJson,
  byteToUnicode,
  tokenizerFromJson,
} from "../../runtime/tokenizer.ts";
import { brownText } from "../brown.ts";
import { formatLine, formatQuestion, HEADER } from "../longeval/longeval.ts";
import { HELDOUT_WORDS, TRAIN_WORDS } from "../longeval/words.ts";
import { Rng } from "../../runtime/rng.ts";

/** The package's decode cleans up " ." → "." unless told not to; exact round trips need this. */
const NO_CLEANUP = { clean_up_tokenization_spaces: false };

const utf8Length = (s: string) => new TextEncoder().encode(s).length;

/** Texts every tokenizer must round-trip and every splitter must agree on. */
const SAMPLES = [
  "",
  "The quick brown fox -- it's 3.14, isn't it? I'm sure they'll say \"yes\" .",
  "line calm-river: REGISTER_CONTENT is <40213>\n",
  "Ünïcödé → 漢字 and emoji 🙂👍🏽, tabs\tand  double  spaces",
  "crlf\r\nline two\r\n\r\n   trailing   ",
  "   leading spaces and a lone \r and \n\n\n",
  "numbers 0123456789 x²y ٣٤ ½ Ⅻ 1,000,000",
  "nbsp\u00a0bom\ufeffnel\u0085ls\u2028end",
  "'s'S 'tis 've'll'd 'RE don't",
  "!!! ... ?!?! <<>> __init__ $100 #tag @user a/b\\c",
];

/** Deterministic random strings over a mixed alphabet (letters, digits, spaces, symbols, ...). */
function randomTexts(n: number, seed: number): string[] {
  const alphabet = [
    ..."abcXYZ 0123456789  \t\n\r'.,-_<>:;!?é漢🙂²٣\u00a0\ufeff",
    "'s",
    "'ll",
    "  ",
  ];
  const rng = new Rng(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    let s = "";
    const len = rng.int(0, 40);
    for (let j = 0; j < len; j++) s += rng.pick(alphabet);
    out.push(s);
  }
  return out;
}

let moaJson: Promise<{ json: Record<string, unknown>; ms: number }> | undefined;
/** The 4096-entry moa tokenizer, built once per test run, with its build time. */
function moa(): Promise<{ json: Record<string, unknown>; ms: number }> {
  moaJson ??= (async () => {
    await brownText("train"); // read the corpus first so the timing is training only
    const t0 = performance.now();
    const json = await buildMoaTokenizer();
    return { json, ms: performance.now() - t0 };
  })();
  return moaJson;
}

Deno.test("preTokenize() splits exactly as the tokenizer.json pre-tokenizer does", async (t) => {
  const hf = new HfTokenizer(byteLevelTokenizerJson([]), {});
  const pre = hf.pre_tokenizer!;
  for (const s of SAMPLES) {
    await t.step(JSON.stringify(s).slice(0, 40), () => {
      assert.deepEqual(preTokenize(s), pre.pre_tokenize(s));
    });
  }
  await t.step("400 random strings", () => {
    for (const s of randomTexts(400, 1)) assert.deepEqual(preTokenize(s), pre.pre_tokenize(s), s);
  });
  await t.step("special-token strings are left out", () => {
    assert.deepEqual(preTokenize("a<s>b</s><unk>c"), ["a", "b", "c"]);
  });
});

Deno.test("trainBpe() learns the hand-computed merges of a tiny corpus", async (t) => {
  // Word types: Ġlow ×5, Ġlower ×2, Ġnewest ×6, Ġwidest ×3. Counts: (e,s) 9 = (s,t) 9 → (e,s)
  // first by order; then (es,t) 9; then (l,o) = (o,w) = (Ġ,l) 7 → (l,o) ("l" < "o" < "Ġ");
  // (lo,w) 7 < (Ġ,lo) 7 by order; (Ġ,low) 7; then four pairs at 6: (e,w), (ew,est), (n,ewest),
  // (Ġ,newest), each the smallest of the ties in turn.
  const corpus = " low".repeat(5) + " lower".repeat(2) + " newest".repeat(6) + " widest".repeat(3);
  const expected = [
    ["e", "s"],
    ["es", "t"],
    ["l", "o"],
    ["lo", "w"],
    ["Ġ", "low"],
    ["e", "w"],
    ["ew", "est"],
    ["n", "ewest"],
    ["Ġ", "newest"],
  ];
  await t.step("the first nine merges", () => {
    assert.deepEqual(trainBpe(corpus, { vocabSize: 259 + 9, minFrequency: 1 }), expected);
  });
  await t.step("a smaller vocabulary gives a prefix of them", () => {
    assert.deepEqual(trainBpe(corpus, { vocabSize: 259 + 4 }), expected.slice(0, 4));
  });
  await t.step("the trainer's segmentation of each word", () => {
    const d = trainBpeDetailed(corpus, { vocabSize: 259 + 9, minFrequency: 1 });
    assert.deepEqual(d.segmentation.get("Ġlower"), ["Ġlow", "e", "r"]);
    assert.deepEqual(d.segmentation.get("Ġwidest"), ["Ġ", "w", "i", "d", "est"]);
    assert.equal(d.wordCounts.get("Ġnewest"), 6);
  });
  await t.step("a corpus split over several texts counts the same", () => {
    const parts = [" low".repeat(5), " lower".repeat(2), " newest".repeat(6), " widest".repeat(3)];
    assert.deepEqual(trainBpe(parts, { vocabSize: 259 + 9, minFrequency: 1 }), expected);
  });
});

Deno.test("trainBpe() stops early when the corpus runs out of pairs", async (t) => {
  await t.step("no pair at all", () => {
    assert.deepEqual(trainBpe(["", "a", "b\nc", "7 8 9"], { vocabSize: 300, minFrequency: 1 }), []);
  });
  await t.step("every pair rarer than minFrequency", () => {
    // "ab" and "Ġab": (a,b) 2, then (Ġ,ab) 1 < 2.
    assert.deepEqual(trainBpe("ab ab", { vocabSize: 300 }), [["a", "b"]]);
    assert.deepEqual(trainBpe("ab ab", { vocabSize: 300, minFrequency: 1 }), [
      ["a", "b"],
      ["Ġ", "ab"],
    ]);
  });
  await t.step("259 entries means no merges", () => {
    assert.deepEqual(trainBpe("aaaa aaaa", { vocabSize: 259 }), []);
  });
});

Deno.test("trainBpe() rejects bad options", async (t) => {
  await t.step("vocabSize below 259", () => {
    assert.throws(() => trainBpe("x", { vocabSize: 258 }), {
      name: "RangeError",
      message: "trainBpe: vocabSize must be an integer from 259 to 1048576, got 258",
    });
  });
  await t.step("fractional vocabSize", () => {
    assert.throws(() => trainBpe("x", { vocabSize: 300.5 }), /got 300\.5$/);
  });
  await t.step("minFrequency 0", () => {
    assert.throws(() => trainBpe("x", { vocabSize: 300, minFrequency: 0 }), {
      name: "RangeError",
      message: "trainBpe: minFrequency must be an integer >= 1, got 0",
    });
  });
});

Deno.test("trainBpe() never merges digits", async (t) => {
  const corpus = longEvalSample({ prompts: 4 }) +
    " 1999 2000 2001 3.14159 x²y ²² ³³ ٣٤٥ ٣٤٥ 00 00 00 11 11 a1 a1 a1 1a 1a".repeat(20);
  const merges = trainBpe(corpus, { vocabSize: 1000, minFrequency: 1 });
  const fromByte = new Map(byteToUnicode().map((ch, b) => [ch, b]));
  await t.step("no merged token holds a digit byte", () => {
    assert.ok(merges.length > 100);
    for (const [a, b] of merges) {
      const bytes = Array.from(a + b, (ch) => fromByte.get(ch)!);
      assert.ok(!bytes.some((x) => x >= 0x30 && x <= 0x39), `merge ${a} ${b}`);
    }
  });
  await t.step("no merge joins the bytes of a non-ASCII numeral", () => {
    // "²" is the word "Â²" and "٣" the word "Ù£": numeric words take part in no merge.
    for (const [a, b] of merges) assert.ok(a + b !== "Â²" && a + b !== "Ù£", `merge ${a} ${b}`);
  });
  await t.step("every digit encodes as its own token", () => {
    const tok = tokenizerFromJson(byteLevelTokenizerJson(merges), NO_CLEANUP);
    const text = "REGISTER_CONTENT is <40213> and 1999, a1 0123456789";
    const pieces = tok.encode(text).map((id) => tok.decode([id]));
    assert.equal(pieces.join(""), text);
    for (const p of pieces) {
      assert.ok(!/\d/.test(p) || /^\d$/.test(p), `token ${JSON.stringify(p)}`);
    }
    assert.equal(pieces.filter((p) => /^\d$/.test(p)).length, 5 + 4 + 1 + 10);
  });
});

Deno.test("the trained tokenizer round-trips any UTF-8 text exactly", async (t) => {
  const corpus = (await brownText("heldout")).slice(0, 200_000) + SAMPLES.join("\n");
  const tok = tokenizerFromJson(
    byteLevelTokenizerJson(trainBpe(corpus, { vocabSize: 1200 })),
    NO_CLEANUP,
  );
  for (const s of SAMPLES) {
    await t.step(JSON.stringify(s).slice(0, 40), () => assert.equal(tok.decode(tok.encode(s)), s));
  }
  await t.step("the empty string is no tokens", () => assert.deepEqual(tok.encode(""), []));
  await t.step("400 random strings", () => {
    for (const s of randomTexts(400, 2)) assert.equal(tok.decode(tok.encode(s)), s);
  });
});

Deno.test("trainer and @huggingface/tokenizers agree on every segmentation", async (t) => {
  const heldout = await brownText("heldout");
  const corpus = heldout.slice(0, 300_000);
  const d = trainBpeDetailed(corpus, { vocabSize: 2000 });
  const hf = new HfTokenizer(byteLevelTokenizerJson(d.merges), NO_CLEANUP);
  await t.step("the whole training corpus, word by word as the trainer left it", () => {
    const ours = preTokenize(corpus).flatMap((w) => d.segmentation.get(w) ?? Array.from(w));
    assert.deepEqual(hf.tokenize(corpus), ours);
  });
  await t.step("unseen text with the classic rank-order encoder", () => {
    const text = heldout.slice(300_000, 400_000) + SAMPLES.join(" <s> ") +
      randomTexts(200, 3).join("</s>");
    assert.deepEqual(hf.tokenize(text), encodeWithMerges(text, d.merges));
  });
});

Deno.test("trainBpe() is deterministic", async () => {
  const corpus = (await brownText("heldout")).slice(0, 150_000);
  const a = trainBpe(corpus, { vocabSize: 1500 });
  const b = trainBpe(corpus, { vocabSize: 1500 });
  assert.equal(a.length, 1500 - 259);
  assert.deepEqual(a, b);
});

Deno.test("longEvalSample() uses the training words only", () => {
  const sample = longEvalSample();
  const keys = [...sample.matchAll(/line ([a-z]+)-([a-z]+)[:?]/g)];
  assert.equal(keys.length, 8 * 50 + 8);
  const adj = new Set(TRAIN_WORDS.adjectives), nouns = new Set(TRAIN_WORDS.nouns);
  for (const [, a, n] of keys) assert.ok(adj.has(a!) && nouns.has(n!), `${a}-${n}`);
  assert.equal(sample.split(HEADER).length - 1, 8);
  assert.ok(sample.endsWith(formatQuestion(keys[keys.length - 1]![1] + "-" + keys.at(-1)![2])));
  assert.equal(longEvalSample(), sample); // seeded
});

Deno.test("buildMoaTokenizer() gives a compact 4096-entry tokenizer", async (t) => {
  const { json, ms } = await moa();
  const tok = tokenizerFromJson(json, NO_CLEANUP);
  await t.step("it builds in well under a minute", () => {
    console.log(`  buildMoaTokenizer(): ${(ms / 1000).toFixed(2)} s`);
    assert.ok(ms < 30_000, `${ms} ms`);
  });
  await t.step("the vocabulary has exactly 4096 entries with ids 0..4095", () => {
    assert.equal(tok.vocabSize, 4096);
    const vocab = (json.model as { vocab: Record<string, number> }).vocab;
    const ids = Object.values(vocab).sort((x, y) => x - y);
    assert.deepEqual(ids, Array.from({ length: 4096 }, (_, i) => i));
    assert.equal((json.model as { merges: unknown[] }).merges.length, 4096 - 259);
  });
  await t.step("the LongEval header takes far fewer tokens than bytes", () => {
    const ratio = utf8Length(HEADER) / tok.encode(HEADER).length;
    console.log(`  header: ${utf8Length(HEADER)} bytes / ${tok.encode(HEADER).length} tokens`);
    assert.ok(ratio > 3, `bytes/token ${ratio}`);
  });
  await t.step("REGISTER_CONTENT and a training key are a few tokens", () => {
    assert.equal(tok.encode(" REGISTER_CONTENT").length, 3); // " REGISTER", "_", "CONTENT"
    const line = formatLine("calm-river", 40213);
    assert.ok(tok.encode(line).length <= 20, `${tok.encode(line).length} tokens`);
  });
  await t.step("held-out Brown text averages over 3.3 bytes per token", async () => {
    const text = await brownText("heldout");
    const ids = tok.encode(text);
    const ratio = utf8Length(text) / ids.length;
    console.log(`  held-out Brown: ${ratio.toFixed(3)} bytes/token`);
    assert.ok(ratio > 3.3, `bytes/token ${ratio}`);
    assert.equal(tok.decode(ids), text);
  });
  await t.step("held-out words are not favoured over training words", () => {
    const perLine = (adjectives: string[], nouns: string[]) => {
      let n = 0;
      for (let i = 0; i < 60; i++) {
        const key = `${adjectives[i % adjectives.length]}-${nouns[(7 * i) % nouns.length]}`;
        n += tok.encode(formatLine(key, 12345)).length;
      }
      return n / 60;
    };
    const train = perLine(TRAIN_WORDS.adjectives, TRAIN_WORDS.nouns);
    const held = perLine(HELDOUT_WORDS.adjectives, HELDOUT_WORDS.nouns);
    assert.ok(held >= train - 0.5, `held-out ${held} vs train ${train} tokens per line`);
  });
});
