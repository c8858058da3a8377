import assert from "node:assert/strict";
import { randomModel, tinyConfig } from "../random_model.ts";
import { CpuModel } from "./forward.ts";
import { DenseKvCache } from "./kv_cache.ts";
import { cacheFactory } from "./method_cache.ts";
import { H2oKvCache, MoaKvCache } from "./sparse_cache.ts";
import type { SparsePlan } from "../spans.ts";

const config = tinyConfig({ numLayers: 2, numKvHeads: 2 });
const cpu = new CpuModel(randomModel(config, 1));

Deno.test("cacheFactory() builds each method's cache from the registry", async (t) => {
  await t.step("dense: the model's own full cache", () => {
    assert.ok(
      cacheFactory(cpu, { method: "dense", density: 1, sink: 0 })(64) instanceof DenseKvCache,
    );
  });
  await t.step("streaming: every head keeps density·n tokens, the sink inside", () => {
    const cache = cacheFactory(cpu, { method: "streaming", density: 0.5, sink: 4 })(64);
    assert.ok(cache instanceof MoaKvCache);
    for (let l = 0; l < 2; l++) for (let g = 0; g < 2; g++) assert.equal(cache.capacity(l, g), 32);
  });
  await t.step("moa and its variants: the plan's per-head rings", () => {
    const plan: SparsePlan = { sink: 4, alphas: [[8, 0], [-8, 16]], betas: [[0, 0.5], [0.25, 0]] };
    for (const method of ["moa", "moa-uniform", "moa-ctx"] as const) {
      const cache = cacheFactory(cpu, { method, density: 0.5, sink: 4, plan })(64);
      assert.ok(cache instanceof MoaKvCache, method);
      // sink + ⌈α + β·64⌉, at most 64
      assert.deepEqual(
        [cache.capacity(0, 0), cache.capacity(0, 1), cache.capacity(1, 0), cache.capacity(1, 1)],
        [4 + 8, 4 + 32, 4 + 8, 4 + 16],
        method,
      );
    }
    assert.throws(
      () => cacheFactory(cpu, { method: "moa-head", density: 0.5, sink: 4 }),
      /method moa-head needs a plan/,
    );
  });
  await t.step("h2o: round(density·n) keys per head", () => {
    const cache = cacheFactory(cpu, { method: "h2o", density: 0.25, sink: 0 })(64);
    assert.ok(cache instanceof H2oKvCache);
    assert.equal(cache.budget, 16);
  });
});

Deno.test("a method's cache runs the model: streaming at density 1 equals dense", async () => {
  const ids = Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % config.vocabSize);
  const logits = async (method: "dense" | "streaming") => {
    const cache = cacheFactory(cpu, { method, density: 1, sink: 4 })(ids.length);
    return (await cpu.step([{ cache, tokens: ids }], "last"))[0]!;
  };
  const dense = await logits("dense"), streaming = await logits("streaming");
  for (let i = 0; i < dense.length; i++) {
    assert.ok(Math.abs(dense[i]! - streaming[i]!) < 1e-5, `logit ${i}`);
  }
});
