import assert from "node:assert/strict";
import { ADJECTIVES, ALL_WORDS, HELDOUT_WORDS, isHeldOut, NOUNS, TRAIN_WORDS } from "./words.ts";

Deno.test("word lists are long enough, lowercase ASCII and free of duplicates", async (t) => {
  await t.step("ADJECTIVES holds at least 240 words and NOUNS at least 360", () => {
    assert.ok(ADJECTIVES.length >= 240, `${ADJECTIVES.length} adjectives`);
    assert.ok(NOUNS.length >= 360, `${NOUNS.length} nouns`);
  });
  await t.step("every word matches /^[a-z]+$/", () => {
    for (const w of [...ADJECTIVES, ...NOUNS]) assert.match(w, /^[a-z]+$/);
  });
  await t.step("no word appears twice, within or across the two lists", () => {
    const all = [...ADJECTIVES, ...NOUNS];
    const seen = new Set<string>();
    const dups = all.filter((w) => seen.has(w) || (seen.add(w), false));
    assert.deepEqual(dups, []);
  });
  await t.step("ALL_WORDS holds the full lists", () => {
    assert.deepEqual(ALL_WORDS.adjectives, [...ADJECTIVES]);
    assert.deepEqual(ALL_WORDS.nouns, [...NOUNS]);
  });
});

Deno.test("the train and held-out parts split each list by every 5th word", async (t) => {
  for (const [name, full] of [["adjectives", ADJECTIVES], ["nouns", NOUNS]] as const) {
    const train = TRAIN_WORDS[name];
    const held = HELDOUT_WORDS[name];
    await t.step(`${name}: the parts are disjoint`, () => {
      const heldSet = new Set(held);
      assert.deepEqual(train.filter((w) => heldSet.has(w)), []);
    });
    await t.step(`${name}: together the parts are the full list, in order`, () => {
      assert.equal(train.length + held.length, full.length);
      assert.deepEqual([...train, ...held].sort(), [...full].sort());
    });
    await t.step(`${name}: the held-out part is words 4, 9, 14, … (about 20%)`, () => {
      assert.equal(held.length, Math.floor(full.length / 5));
      assert.equal(held[0], full[4]);
      assert.equal(held[1], full[9]);
      assert.equal(train[4], full[5]);
    });
  }
  await t.step("the train nouns are disjoint from the held-out adjectives and vice versa", () => {
    const trainAll = new Set([...TRAIN_WORDS.adjectives, ...TRAIN_WORDS.nouns]);
    assert.deepEqual(
      [...HELDOUT_WORDS.adjectives, ...HELDOUT_WORDS.nouns].filter((w) => trainAll.has(w)),
      [],
    );
  });
  await t.step("isHeldOut() picks indices 4, 9, 14", () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5, 9, 14, 15].map(isHeldOut), [
      false,
      false,
      false,
      false,
      true,
      false,
      true,
      true,
      false,
    ]);
  });
});
