import assert from "node:assert/strict";
import { spearman, validityCheck } from "./validity.ts";
import { byteModel } from "../runtime/_testing.ts";
import { candidateRules } from "./rules.ts";

Deno.test("spearman() is 1 for any increasing relation, -1 for a decreasing one, and handles ties", () => {
  assert.equal(spearman([1, 2, 3, 4], [10, 20, 30, 400]), 1);
  assert.equal(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1);
  const r = spearman([1, 2, 2, 3], [1, 2, 3, 4]);
  assert.ok(Math.abs(r - 0.9486832980505138) < 1e-12, `${r}`); // Pearson of ranks [0,1.5,1.5,3] and [0,1,2,3]
});

Deno.test("validityCheck() measures every pair and correlates what it returns", async () => {
  const { cpu, tok } = byteModel();
  const o = { length: 640, samples: 1, pairs: 10, block: 64, sink: 64, seed: 2 };
  const r = await validityCheck(cpu, tok, o);
  assert.equal(r.pairs.length, 10);
  const rules = candidateRules([320, 640], 1280);
  for (const p of r.pairs) {
    assert.ok(p.layer >= 0 && p.layer < 2 && p.kvHead >= 0 && p.kvHead < 2);
    assert.ok(rules.some((q) => q.alpha === p.alpha && q.beta === p.beta), "a candidate rule");
    // (the elastic band is each query block's last query's window, rounded up to whole blocks,
    // so it can keep more than the static band's ⌊S(N)/block⌋ blocks: neither contains the other)
    assert.ok(p.predicted >= 0 && p.predictedToken >= 0, "Σ|E| is not negative");
    assert.ok(p.predictedElastic >= 0, "Σ|E| over the elastic band is not negative");
    assert.ok(Number.isFinite(p.measured));
  }
  const m = r.pairs.map((p) => p.measured);
  assert.equal(r.spearman, spearman(r.pairs.map((p) => p.predicted), m));
  assert.equal(r.spearmanElastic, spearman(r.pairs.map((p) => p.predictedElastic), m));
  assert.equal(r.spearmanSigned, spearman(r.pairs.map((p) => p.predictedSigned), m));
  assert.equal(r.spearmanBlockSigned, spearman(r.pairs.map((p) => p.predictedBlockSigned), m));
});
