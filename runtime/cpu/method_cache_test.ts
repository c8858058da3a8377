import assert from "node:assert/strict";
import { randomModel, tinyConfig } from "../random_model.ts";
import { Rng } from "../rng.ts";
import { CpuModel } from "./forward.ts";
import { DenseKvCache } from "./kv_cache.ts";
import { cacheFactory, promptDensity } from "./method_cache.ts";
import { H2oKvCache, MoaKvCache } from "./sparse_cache.ts";
import { SnapKvCache } from "./snapkv_cache.ts";
import type { SparsePlan } from "../spans.ts";
import { duoRules } from "../duo.ts";
import { METHODS } from "../methods.ts";

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
  await t.step("h2o: round(density·n) keys per head, n the prompt's length when known", () => {
    const cache = cacheFactory(cpu, { method: "h2o", density: 0.25, sink: 0 })(64);
    assert.ok(cache instanceof H2oKvCache);
    assert.equal(cache.budget, 16);
    const prompted = cacheFactory(cpu, { method: "h2o", density: 0.25, sink: 0 })(64 + 48, 64);
    assert.equal((prompted as H2oKvCache).budget, 16);
  });
  await t.step("snapkv and adakv: the prompt-compressing cache", () => {
    for (const method of ["snapkv", "adakv"] as const) {
      assert.ok(
        cacheFactory(cpu, { method, density: 0.5, sink: 4 })(64, 32) instanceof SnapKvCache,
      );
    }
  });
  await t.step("duo: the MoA cache with DuoAttention's rules", () => {
    const plan = duoRules([[0.9, 0.1], [0.2, 0.3]], 0.5, 64, 4);
    const cache = cacheFactory(cpu, { method: "duo", density: 0.5, sink: 4, plan })(64);
    assert.ok(cache instanceof MoaKvCache);
    assert.deepEqual([cache.capacity(0, 0), cache.capacity(0, 1)], [64, 4 + plan.alphas[0]![1]!]);
    assert.throws(
      () => cacheFactory(cpu, { method: "duo", density: 0.5, sink: 4 }),
      /duo needs its rules/,
    );
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

Deno.test("every method keeps its density of the prompt's KV entries, within 1/64", async (t) => {
  const sink = 16;
  /** MoA: rules of different shapes, each keeping density·n tokens of n */
  const moaPlan = (d: number, n: number): SparsePlan => ({
    sink,
    alphas: [[-sink, d * n - sink], [-sink - n / 4, 0]],
    betas: [[d, 0], [d + 0.25, d - sink / n]],
  });
  for (const n of [256, 700]) {
    const r = new Rng(n);
    const prompt = Array.from({ length: n }, () => r.int(0, config.vocabSize - 1));
    for (const d of [0.25, 0.5]) {
      await t.step(`${n} tokens at ${d}`, async () => {
        const got: string[] = [];
        for (const method of METHODS) {
          const plan = method === "duo"
            ? duoRules([[0.9, 0.1], [0.2, 0.3]], d, n, sink)
            : method.startsWith("moa")
            ? moaPlan(d, n)
            : undefined;
          const spec = { method, density: d, sink, ...(plan ? { plan } : {}) };
          const kept = await promptDensity(cpu, cacheFactory(cpu, spec), prompt);
          const want = method === "dense" ? 1 : d;
          if (Math.abs(kept - want) > 1 / 64) got.push(`${method}: ${kept.toFixed(4)}`);
        }
        assert.deepEqual(got, [], `methods off their density ${d} at ${n} tokens`);
      });
    }
  }
});
