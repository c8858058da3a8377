import assert from "node:assert/strict";
import { wilson } from "./quality.ts";

Deno.test("wilson() gives the 95% Wilson score interval", () => {
  // reference values from the closed form with z = 1.96, computed by hand in float64
  const cases: [number, number, number, number][] = [
    [0, 10, 0, 0.2775],
    [5, 10, 0.2366, 0.7634],
    [10, 10, 0.7225, 1],
    [95, 100, 0.8882, 0.9785],
  ];
  for (const [k, n, lo, hi] of cases) {
    const [a, b] = wilson(k, n);
    assert.ok(Math.abs(a - lo) < 1e-4 && Math.abs(b - hi) < 1e-4, `${k}/${n}: [${a}, ${b}]`);
  }
  assert.deepEqual(wilson(0, 0), [0, 1]);
});
