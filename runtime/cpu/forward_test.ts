import assert from "node:assert/strict";
import { randomModel, tinyConfig } from "../random_model.ts";
import { Rng } from "../rng.ts";
import type { Engine } from "./engine.ts";
import { tsEngine } from "./engine_ts.ts";
import { OrtEngine } from "./engine_ort.ts";
import { JaxEngine } from "./engine_jax.ts";
import { AutoEngine } from "./engine_auto.ts";
import { CpuModel, forwardLogits } from "./forward.ts";
import { referenceLogits } from "./_reference.ts";
import { assertAllClose, maxAbsDiff } from "../_testing.ts";

const tokens = (n: number, V: number, seed: number) => {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => r.int(0, V - 1));
};

Deno.test("forwardLogits() matches the naive float64 reference within 1e-4", async (t) => {
  const cases = {
    "llama with GQA": tinyConfig({ numHeads: 4, numKvHeads: 2 }),
    "multi-head, tied embeddings": tinyConfig({ numKvHeads: 4, tieWordEmbeddings: true }),
    "qwen2 biases": tinyConfig({ modelType: "qwen2", attentionBias: true, numKvHeads: 1 }),
    "linear RoPE scaling": tinyConfig({ ropeScaling: { type: "linear", factor: 4 } }),
  };
  for (const [name, config] of Object.entries(cases)) {
    await t.step(name, async () => {
      const model = randomModel(config, 3, 8);
      const ids = tokens(40, config.vocabSize, 1);
      const want = referenceLogits(model, ids);
      assertAllClose(await forwardLogits(model, ids), want, { atol: 1e-4 }, "logits");
      // the check must be able to fail: a changed weight moves the logits
      model.weights.layers[0]!.wk[0]! += 0.5;
      assert.ok(maxAbsDiff(await forwardLogits(model, ids), want) > 1e-3);
    });
  }
});

Deno.test("CpuModel.step() gives the same logits incrementally as in one pass", async (t) => {
  const config = tinyConfig({ numHeads: 4, numKvHeads: 2 });
  const model = randomModel(config, 5, 8);
  const cpu = new CpuModel(model);
  const ids = tokens(700, config.vocabSize, 2);
  const full = await forwardLogits(model, ids);
  const V = config.vocabSize;
  await t.step("prefill in chunks on top of an existing cache, then decode", async () => {
    const cache = cpu.newCache(8);
    let at = 0;
    for (const n of [300, 1, 250, 149]) {
      const out = (await cpu.step([{ cache, tokens: ids.slice(at, at + n) }], "all"))[0]!;
      assertAllClose(out, full.subarray(at * V, (at + n) * V), { atol: 1e-5 }, `chunk at ${at}`);
      at += n;
    }
    assert.equal(cache.length, 700);
    assert.equal(
      cache.bytes(),
      config.numLayers * 2 * config.numKvHeads * 700 * config.headDim * 4,
    );
  });
  await t.step("a ragged batch equals each sequence run alone", async () => {
    const seqs = [ids.slice(0, 37), ids.slice(100, 101), ids.slice(200, 290)];
    const out = await cpu.step(
      seqs.map((s) => ({ cache: cpu.newCache(), tokens: s })),
      "last",
    );
    for (const [i, s] of seqs.entries()) {
      const alone = await forwardLogits(model, s);
      assertAllClose(out[i]!, alone.subarray((s.length - 1) * V), { atol: 1e-5 });
    }
  });
});

Deno.test("every engine gives the logits of the TypeScript engine within 1e-4", async (t) => {
  const config = tinyConfig({ hiddenSize: 128, headDim: 32, intermediateSize: 344 });
  const model = randomModel(config, 7, 8);
  const ids = tokens(600, config.vocabSize, 3); // > one 512-query attention block
  const want = await forwardLogits(model, ids, tsEngine);
  const engines: Engine[] = [
    new AutoEngine(tsEngine, await OrtEngine.create(2), 1),
    new AutoEngine(tsEngine, await JaxEngine.create(), 1),
  ];
  // onnxruntime-node where it loads (engine_native_test.ts says so when it does not)
  const native = await import("./engine_native.ts").then(
    (m) => m.NativeEngine.create(2),
    () => null,
  );
  if (native) engines.push(new AutoEngine(tsEngine, native, 1));
  for (const e of engines) {
    await t.step(e.name, async () => {
      assertAllClose(await forwardLogits(model, ids, e), want, { atol: 1e-4 }, "logits");
    });
  }
});
