import assert from "node:assert/strict";
import { spearman } from "./validity.ts";

Deno.test("spearman() is 1 for any increasing relation, -1 for a decreasing one, and handles ties", () => {
  assert.equal(spearman([1, 2, 3, 4], [10, 20, 30, 400]), 1);
  assert.equal(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1);
  const r = spearman([1, 2, 2, 3], [1, 2, 3, 4]);
  assert.ok(Math.abs(r - 0.9486832980505138) < 1e-12, `${r}`); // Pearson of ranks [0,1.5,1.5,3] and [0,1,2,3]
});
