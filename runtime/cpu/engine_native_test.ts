import assert from "node:assert/strict";
import { assertAllClose } from "../_testing.ts";
import { Rng } from "../rng.ts";
import { checkEngine, referenceAttention } from "./_engine_contract.ts";
import type { NativeEngine } from "./engine_native.ts";
import { CpuModel } from "./forward.ts";
import { tsEngine } from "./engine_ts.ts";
import { randomModel, tinyConfig } from "../random_model.ts";

/** The native engine, or the reason it does not load here (the test is then ignored). */
const native: NativeEngine | string = await import("./engine_native.ts")
  .then((m) => m.NativeEngine.create(2))
  .catch((e) => `onnxruntime-node does not load here: ${e}`);
const ignore = typeof native === "string";
const suffix = ignore ? ` (ignored: ${native})` : "";

Deno.test({
  name: `NativeEngine keeps the engine contract against float64 loops${suffix}`,
  ignore,
  fn: async () => {
    const e = native as NativeEngine;
    assert.equal(e.name, "ort-native×2");
    await checkEngine(e);
  },
});

Deno.test({
  name: `NativeEngine.attention continues a capacity-strided cache in query chunks${suffix}`,
  ignore,
  fn: async () => {
    const e = native as NativeEngine;
    // 300 queries (two GroupQueryAttention chunks) after 40 cached keys, 400 slots per kv head
    const T = 300, first = 40, S = first + T, cap = 400, NH = 4, NKV = 2, HS = 16;
    const r = new Rng(3);
    const normal = (n: number) => Float32Array.from({ length: n }, () => r.normal());
    const q = normal(T * NH * HS), K = normal(NKV * cap * HS), V = normal(NKV * cap * HS);
    const keep = (a: Float32Array) => a.slice(); // the engine must leave the cache as it was
    const K0 = keep(K), V0 = keep(V);
    const out = new Float32Array(T * NH * HS);
    await e.attention(out, q, K, V, { T, S, NH, NKV, HS, first, cap });
    const compact = (a: Float32Array) =>
      Array.from({ length: NKV }, (_, g) => [...a.subarray(g * cap * HS, (g * cap + S) * HS)])
        .flat();
    const want = referenceAttention(q, compact(K), compact(V), { T, S, NH, NKV, HS, first });
    assertAllClose(out, want, { atol: 1e-5 }, "attention");
    assert.deepEqual(K, K0);
    assert.deepEqual(V, V0);
  },
});

Deno.test({
  name: `NativeEngine's prepared layers give the TypeScript engine's logits within 1e-4${suffix}`,
  ignore,
  fn: async (t) => {
    const e = native as NativeEngine;
    const cases = {
      "llama, grouped-query": tinyConfig({
        hiddenSize: 64,
        headDim: 32,
        numHeads: 4,
        numKvHeads: 2,
      }),
      "qwen2 biases, tied embeddings": tinyConfig({
        modelType: "qwen2",
        attentionBias: true,
        tieWordEmbeddings: true,
        numKvHeads: 1,
      }),
    };
    for (const [name, config] of Object.entries(cases)) {
      await t.step(name, async () => {
        const model = randomModel(config, 11, 8);
        const cpu = new CpuModel(model, e), ref = new CpuModel(model, tsEngine);
        const r = new Rng(5);
        const ids = (n: number) => Array.from({ length: n }, () => r.int(0, config.vocabSize - 1));
        // a ragged batch: 600 tokens (two row blocks of a run), 1 and 37; then decode all three
        const prompts = [ids(600), ids(1), ids(37)];
        const caches = [prompts.map(() => cpu.newCache()), prompts.map(() => ref.newCache())];
        for (
          const [step, wanted] of [[prompts, "all"], [prompts.map(() => ids(1)), "last"]] as const
        ) {
          const got = await cpu.step(
            step.map((tokens, b) => ({ cache: caches[0]![b]!, tokens })),
            wanted,
          );
          const want = await ref.step(
            step.map((tokens, b) => ({ cache: caches[1]![b]!, tokens })),
            wanted,
          );
          got.forEach((g, b) =>
            assertAllClose(g, want[b]!, { atol: 1e-4 }, `${wanted}, sequence ${b}`)
          );
        }
        // no logits asked for: the caches still advance
        await cpu.step([{ cache: caches[0]![0]!, tokens: ids(3) }], "none");
        assert.equal(caches[0]![0]!.length, 604);
      });
    }
  },
});
