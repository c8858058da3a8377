import assert from "node:assert/strict";
import { attentionByProducts, type AttentionDims, type Engine, owned } from "./engine.ts";
import { tsEngine } from "./engine_ts.ts";
import { checkEngine } from "./_engine_contract.ts";

Deno.test("attentionByProducts() is the contract's attention from two products per kv head", async () => {
  const products: string[] = [];
  const e: Engine = {
    name: "products",
    matmulT: (...a) => (products.push("matmulT"), tsEngine.matmulT(...a)),
    matmul: (...a) => (products.push("matmul"), tsEngine.matmul(...a)),
    attention: (out, q, k, v, d: AttentionDims) => attentionByProducts(e, out, q, k, v, d),
    rangeAttention: (...a) => tsEngine.rangeAttention(...a),
    prepare: (m) => tsEngine.prepare(m),
  };
  await checkEngine(e);
  // the contract runs two products and one attention over NKV = 2 kv heads
  assert.deepEqual(products, [
    "matmulT",
    "matmulT",
    "matmul",
    "matmulT",
    "matmul",
    "matmulT",
    "matmul",
  ]);
});

Deno.test("owned() is a view of the first n values, sharing memory", () => {
  const a = Float32Array.from([1, 2, 3, 4]);
  const v = owned(a, 2);
  assert.deepEqual([...v], [1, 2]);
  v[0] = 9;
  assert.equal(a[0], 9);
});
