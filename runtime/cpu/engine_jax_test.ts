import assert from "node:assert/strict";
import { JaxEngine } from "./engine_jax.ts";
import { checkEngine } from "./_engine_contract.ts";

Deno.test("JaxEngine keeps the engine contract against float64 loops", async () => {
  await checkEngine(await JaxEngine.create());
});

Deno.test("JaxEngine uploads a constant weight once and reuses it", async () => {
  const e = await JaxEngine.create();
  const x = Float32Array.from([1, 2]), w = Float32Array.from([1, 0, 0, 1]); // identity
  const out = new Float32Array(2);
  await e.matmulT(out, x, w, 1, 2, 2, true);
  assert.deepEqual([...out], [1, 2]);
  w.set([0, 1, 1, 0]); // the same array, changed: a constant weight is not read again
  await e.matmulT(out, x, w, 1, 2, 2, true);
  assert.deepEqual([...out], [1, 2]);
  await e.matmulT(out, x, w, 1, 2, 2, false); // not constant: read as it is now
  assert.deepEqual([...out], [2, 1]);
});
