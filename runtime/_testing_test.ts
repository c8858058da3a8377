import assert from "node:assert/strict";
import { assertAllClose, maxAbsDiff } from "./_testing.ts";

Deno.test("assertAllClose() passes within atol + rtol·|want| and names the first bad index", () => {
  assertAllClose([1, -2, 1000], [1.05, -2, 1001], { atol: 0.1, rtol: 1e-3 });
  assert.throws(
    () => assertAllClose([1, 2, 3], [1, 2.5, 3.5], { atol: 0.1 }, "logits"),
    /logits\[1\]: got 2, want 2\.5 \(\|Δ\| 0\.5 > 0\.1 \+ 0·\|want\|; largest \|Δ\| 0\.5\)/,
  );
  assert.throws(() => assertAllClose([1], [1, 2], { atol: 1 }), /values: length/);
  assert.throws(() => assertAllClose([NaN], [0], { atol: 1 }), /values\[0\]: got NaN/);
});

Deno.test("maxAbsDiff() is the largest difference, NaN when one is", () => {
  assert.equal(maxAbsDiff([1, 5, -3], [1.5, 5, -1]), 2);
  assert.ok(Number.isNaN(maxAbsDiff([1, NaN], [1, 2])));
  assert.throws(() => maxAbsDiff([1], []), /length 1 ≠ 0/);
});
