import assert from "node:assert/strict";
import { matmulTSync, TsEngine, tsEngine } from "./engine_ts.ts";
import { checkEngine } from "./_engine_contract.ts";

Deno.test("TsEngine keeps the engine contract against float64 loops", async () => {
  await checkEngine(new TsEngine());
  assert.equal(tsEngine.name, "ts");
});

Deno.test("matmulTSync() handles every N, not only multiples of four", () => {
  // x = [[1, 2]], w = rows (1, 0), (0, 1), (1, 1), (2, -1), (3, 3): x·wᵀ = 1, 2, 3, 0, 9
  const w = Float32Array.from([1, 0, 0, 1, 1, 1, 2, -1, 3, 3]);
  for (const n of [1, 3, 4, 5]) {
    const out = new Float32Array(n).fill(NaN);
    matmulTSync(out, Float32Array.from([1, 2]), w, 1, 2, n);
    assert.deepEqual([...out], [1, 2, 3, 0, 9].slice(0, n), `N = ${n}`);
  }
});
