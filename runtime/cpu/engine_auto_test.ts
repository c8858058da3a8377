import assert from "node:assert/strict";
import type { Engine } from "./engine.ts";
import { AutoEngine, fastEngine } from "./engine_auto.ts";
import { tsEngine } from "./engine_ts.ts";
import { checkEngine } from "./_engine_contract.ts";

/** An engine that records its calls and does the work of the TypeScript engine. */
function counting(name: string): Engine & { calls: string[] } {
  const calls: string[] = [];
  return {
    name,
    calls,
    matmulT: (...a) => (calls.push("matmulT"), tsEngine.matmulT(...a)),
    matmul: (...a) => (calls.push("matmul"), tsEngine.matmul(...a)),
    attention: (...a) => (calls.push("attention"), tsEngine.attention(...a)),
  };
}

Deno.test("AutoEngine sends calls of at least `threshold` multiply-adds to the large engine", async () => {
  const small = counting("small"), large = counting("large");
  const e = new AutoEngine(small, large, 64);
  assert.equal(e.name, "large+small");
  const out = new Float32Array(16);
  await e.matmulT(out, new Float32Array(12), new Float32Array(15), 4, 3, 5); // 60 < 64
  await e.matmul(out, new Float32Array(16), new Float32Array(16), 4, 4, 4); // 64
  const dims = { T: 1, S: 4, NH: 2, NKV: 1, HS: 8, first: 3 }; // 1·2·4·8 = 64
  await e.attention(
    new Float32Array(16),
    new Float32Array(16),
    new Float32Array(32),
    new Float32Array(32),
    dims,
  );
  assert.deepEqual(small.calls, ["matmulT"]);
  assert.deepEqual(large.calls, ["matmul", "attention"]);
  await checkEngine(e); // routed calls still compute the right thing
});

Deno.test("fastEngine() is one engine for the process and keeps the contract", async () => {
  const e = await fastEngine();
  assert.equal(await fastEngine(), e);
  assert.match(e.name, /^(ort-wasm×\d+\+ts|ts)$/);
  await checkEngine(e);
});
