import assert from "node:assert/strict";
import { Rng } from "../../runtime/rng.ts";
import {
  EVAL_KEY_SOURCES,
  evalKey,
  isEvalPart,
  isTrainPart,
  loadTrainKeySampler,
  TrainKeySampler,
} from "./keys.ts";
import { ADJECTIVES, NOUNS } from "./words.ts";

const partsOf = (key: string) => key.split("-").map((p) => p.toLowerCase());

Deno.test("training keys share no part with any evaluation source", async (t) => {
  const sampler = await loadTrainKeySampler();
  const rng = new Rng(1);
  const trainParts = new Set<string>();
  for (let r = 0; r < 400; r++) {
    const used = new Set<string>();
    for (let i = 0; i < 50; i++) {
      for (const p of partsOf(sampler.draw(rng, used))) trainParts.add(p);
    }
  }
  await t.step("the training sample is large and varied", () => {
    assert.ok(trainParts.size > 15_000, `${trainParts.size} distinct parts`);
    const withDigit = [...trainParts].filter((p) => /\d/.test(p)).length;
    assert.ok(withDigit > 0.1 * trainParts.size, `${withDigit} parts with digits`);
  });
  for (const source of EVAL_KEY_SOURCES) {
    await t.step(`${source}: 2,000 keys, no part seen in training`, () => {
      const r = new Rng(7);
      for (let i = 0; i < 2000; i++) {
        const key = evalKey(source, r);
        assert.equal(key.split("-").length, 2, key);
        for (const p of partsOf(key)) {
          assert.ok(!trainParts.has(p), `${key}: ${p} is a training part`);
        }
      }
    });
  }
  await t.step("by construction: every training part is on the training side", () => {
    for (const p of trainParts) assert.ok(isTrainPart(p), p);
    for (const w of [...ADJECTIVES, ...NOUNS]) assert.ok(!isTrainPart(w), w);
  });
});

Deno.test("evaluation sources look as their names say", async (t) => {
  const r = new Rng(3);
  await t.step("words: adjective-noun from words.ts", () => {
    const adj = new Set(ADJECTIVES), noun = new Set(NOUNS);
    for (let i = 0; i < 200; i++) {
      const [a, n] = evalKey("words", r).split("-");
      assert.ok(adj.has(a!) && noun.has(n!));
    }
  });
  await t.step("madeup: lower-case letters only, on the evaluation side", () => {
    for (let i = 0; i < 200; i++) {
      const key = evalKey("madeup", r);
      assert.match(key, /^[a-z]+-[a-z]+$/);
      for (const p of key.split("-")) assert.ok(isEvalPart(p));
    }
  });
  await t.step("mixed: letters and digits in each part, both cases across keys", () => {
    let upper = 0, lower = 0;
    for (let i = 0; i < 200; i++) {
      const key = evalKey("mixed", r);
      for (const p of key.split("-")) {
        assert.match(p, /\d/);
        assert.match(p, /[A-Za-z]/);
      }
      if (/[A-Z]/.test(key)) upper++;
      if (/[a-z]/.test(key)) lower++;
    }
    assert.ok(upper > 100 && lower > 100, `${upper} with capitals, ${lower} with lower case`);
  });
});

Deno.test("TrainKeySampler.draw() gives distinct keys, some of them near misses", () => {
  const sampler = new TrainKeySampler(["river", "stone", "plank", "glove", "cedar", "frost"]);
  assert.ok(sampler.words.length >= 1);
  const rng = new Rng(5);
  let near = 0;
  for (let r = 0; r < 50; r++) {
    const used = new Set<string>();
    const keys: string[] = [];
    for (let i = 0; i < 20; i++) keys.push(sampler.draw(rng, used, 0.5));
    assert.equal(new Set(keys).size, keys.length);
    // a near miss shares all but one part with an earlier key, or differs in one character
    for (let i = 1; i < keys.length; i++) {
      const k = keys[i]!.split("-");
      if (
        keys.slice(0, i).some((e) => {
          const p = e.split("-");
          return p.length === k.length && p.filter((x, j) => x === k[j]).length === p.length - 1;
        })
      ) near++;
    }
  }
  assert.ok(near > 200, `${near} near misses among 950 keys drawn with share 0.5`);
  // one letter, an English-list word and a non-word: nothing usable
  assert.throws(() => new TrainKeySampler(["a", "brave", "x1"]), /no usable words/);
});
