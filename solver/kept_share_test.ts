import assert from "node:assert/strict";
import { keptEntries, syntheticPlanAtDensity } from "./kept_share.ts";
import { ruleDensity, ruleKeeps } from "./rules.ts";
import { referenceCacheSize } from "../runtime/spans.ts";

Deno.test("keptEntries() counts the entries ruleKeeps() keeps, under each semantics", () => {
  const n = 150, sink = 8, block = 8;
  const rules = [
    { alpha: 6, beta: 0 },
    { alpha: -40, beta: 0.75 },
    { alpha: 20.5, beta: 0.25 },
    { alpha: -500, beta: 0.5 },
    { alpha: 0, beta: 1 },
  ];
  for (const rule of rules) {
    for (const spans of ["per-query", "reference"] as const) {
      let want = 0;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j <= i; j++) if (ruleKeeps(rule, n, sink, i, j, spans, block)) want++;
      }
      // a cache sized for the prompt alone, as ruleKeeps describes it
      const got = keptEntries(rule, { prompt: n, newTokens: 0, sink, block }, spans);
      assert.equal(got, want, `${spans} (${rule.alpha}, ${rule.beta})`);
    }
  }
});

Deno.test("keptEntries() sizes the reference cache for prompt + new tokens", () => {
  // issue 12: (−1024, 1) at a 4,096-token prompt keeps 0.59 per query, everything in the
  // reference (its cache is sized for 5,120 tokens: 4,096 slots, the whole prompt)
  const s = { prompt: 4096, newTokens: 1024, sink: 64, block: 64 };
  const all = (4096 * 4097) / 2;
  const rule = { alpha: -1024, beta: 1 };
  assert.equal(keptEntries(rule, s, "reference"), all);
  // per query: the first 1,024 queries see only the sink, query i ≥ 1,024 also i − 1,023 keys
  let want = 0;
  for (let i = 0; i < 4096; i++) {
    want += Math.min(i + 1, 64) + Math.max(0, i + 1 - Math.max(64, 1024));
  }
  assert.equal(keptEntries(rule, s, "per-query"), want);
  assert.equal(+(want / all).toFixed(2), 0.59);
  // without the new tokens the cache holds 3,072 slots and prefill loses the far blocks
  assert.equal(referenceCacheSize(-1024, 1, 4096, 64, 64), 3072);
  assert.ok(keptEntries(rule, { ...s, newTokens: 0 }, "reference") < all);
});

Deno.test("syntheticPlanAtDensity() stays within the budget at every length", () => {
  const plan = syntheticPlanAtDensity(4, 8, 1, 0.5);
  assert.equal(plan.length, 32);
  for (const n of [2048, 4096, 8192, 16384]) {
    const mean: number = plan.reduce((a, r) => a + ruleDensity(r, n, 64, 64), 0) / plan.length;
    assert.ok(mean <= 0.5, `${n}: ${mean}`);
  }
});
