import assert from "node:assert/strict";
import {
  byteLevelTokenizerJson,
  byteToUnicode,
  loadTokenizer,
  tokenizerFromJson,
} from "./tokenizer.ts";
import { InputError } from "./errors.ts";

const samples = [
  "line calm-river: REGISTER_CONTENT is <40213>\n",
  "Ünïcödé → 漢字 and emoji 🙂, tabs\tand  double  spaces",
  "",
  "\n\n\r\n 0123456789",
];

Deno.test("byteToUnicode() maps 256 bytes to 256 distinct characters", () => {
  const m = byteToUnicode();
  assert.equal(new Set(m).size, 256);
  assert.equal(m["A".charCodeAt(0)], "A");
  assert.equal(m[32], "Ġ"); // space maps to U+0120
});

Deno.test("a byte-level tokenizer round-trips any UTF-8 text", async (t) => {
  const u = byteToUnicode();
  const tok = tokenizerFromJson(byteLevelTokenizerJson([[u[116]!, u[104]!], [u[32]!, u[105]!]]));
  for (const s of samples) {
    await t.step(JSON.stringify(s).slice(0, 30), () => assert.equal(tok.decode(tok.encode(s)), s));
  }
  await t.step("digits are single tokens and merges apply", () => {
    const ids = tok.encode("the 2048");
    assert.deepEqual(ids.slice(-4).map((i) => tok.decode([i])), ["2", "0", "4", "8"]);
    assert.equal(tok.encode("th").length, 1);
    assert.equal(tok.vocabSize, 3 + 256 + 2);
  });
});

Deno.test("loadTokenizer() names the missing file", async () => {
  await assert.rejects(() => loadTokenizer("/nonexistent/model"), (e: unknown) => {
    assert.ok(e instanceof InputError);
    assert.match(e.message, /\/nonexistent\/model\/tokenizer\.json: file not found/);
    return true;
  });
});

Deno.test("decoding keeps spaces before punctuation unless the config asks to clean them", () => {
  const json = byteLevelTokenizerJson([]);
  const s = "Hello , world .";
  assert.equal(tokenizerFromJson(json).decode(tokenizerFromJson(json).encode(s)), s);
  const clean = tokenizerFromJson(json, { clean_up_tokenization_spaces: true });
  assert.equal(clean.decode(clean.encode(s)), "Hello, world.");
});
