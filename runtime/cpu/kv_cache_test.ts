import assert from "node:assert/strict";
import { assertAllClose } from "../_testing.ts";
import { tinyConfig } from "../random_model.ts";
import type { ModelConfig } from "../model.ts";
import { Rng } from "../rng.ts";
import { tsEngine } from "./engine_ts.ts";
import { attendDirect, DenseKvCache } from "./kv_cache.ts";
import { KvMemory } from "./engine_simd.ts";
import { referenceAttention } from "./_engine_contract.ts";

const config = tinyConfig({ numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 8 });
const { numHeads: NH, numKvHeads: NKV, headDim: HS } = config;

Deno.test("DenseKvCache attends over every key so far, in steps of any size", async (t) => {
  // head size 8 decodes with scalar loops, 32 with the SIMD kernel (engine_simd.ts)
  for (const headDim of [8, 32]) {
    await t.step(`head size ${headDim}`, () => denseSteps(tinyConfig({ ...config, headDim })));
  }
});

async function denseSteps(config: ModelConfig): Promise<void> {
  const { headDim: HS } = config;
  const r = new Rng(4);
  const normal = (n: number) => Float32Array.from({ length: n }, () => r.normal());
  // starts with room for 8 tokens: grows while holding keys, and a 600-token step crosses the
  // 512-query block of prefill; steps of ≤ 8 queries take the in-place decode path
  const cache = new DenseKvCache(config, 8);
  const keys: number[][] = Array.from({ length: NKV }, () => []);
  const values: number[][] = Array.from({ length: NKV }, () => []);
  for (const T of [3, 20, 1, 600, 8]) {
    const P = cache.length;
    const q = normal(T * NH * HS), k = normal(T * NKV * HS), v = normal(T * NKV * HS);
    for (let t = 0; t < T; t++) {
      for (let g = 0; g < NKV; g++) {
        keys[g]!.push(...k.subarray((t * NKV + g) * HS, (t * NKV + g + 1) * HS));
        values[g]!.push(...v.subarray((t * NKV + g) * HS, (t * NKV + g + 1) * HS));
      }
    }
    const dims = { T, S: P + T, NH, NKV, HS, first: P };
    const want = referenceAttention(q, keys.flat(), values.flat(), dims);
    for (let layer = 0; layer < config.numLayers; layer++) {
      const out = new Float32Array(T * NH * HS);
      await cache.attend(layer, out, q, k, v, T, tsEngine);
      assertAllClose(out, want, { atol: 1e-5 }, `layer ${layer}, ${T} queries at ${P}`);
    }
    cache.commit(T);
    assert.equal(cache.length, P + T);
    // 2 layers × K and V × kv heads × tokens × head size × 4 bytes
    assert.equal(cache.bytes(), 2 * 2 * NKV * (P + T) * HS * 4);
  }
}

Deno.test("attendDirect() reads a cache with spare capacity in place", () => {
  const r = new Rng(5);
  const cap = 6, S = 4, T = 2;
  const store = new KvMemory({
    layers: 1,
    floats: NKV * cap * HS,
    group: NH / NKV,
    headDim: HS,
    maxKeys: cap,
  });
  const K = store.k[0]!, V = store.v[0]!;
  K.set(Float32Array.from({ length: NKV * cap * HS }, () => r.normal()));
  V.set(Float32Array.from({ length: NKV * cap * HS }, () => r.normal()));
  const q = Float32Array.from({ length: T * NH * HS }, () => r.normal());
  // the first S slots of each head, contiguous: what the reference reads
  const take = (a: Float32Array) =>
    Array.from({ length: NKV }, (_, g) => [...a.subarray(g * cap * HS, (g * cap + S) * HS)]).flat();
  const dims = { T, S, NH, NKV, HS, first: S - T };
  const out = new Float32Array(T * NH * HS);
  attendDirect(out, q, store, 0, cap, dims);
  assertAllClose(out, referenceAttention(q, take(K), take(V), dims), { atol: 1e-5 });
});
