/**
 * The whole GPU forward pass against the CPU backend: logits after prefill (random models, f32
 * and f16 weights), and greedy generation on moa-tiny token for token (dense, MoA, StreamingLLM,
 * DuoAttention; a batch of prompts of different lengths). Skipped when there is no WebGPU adapter; the f16
 * steps are ignored, saying why, on an adapter without `shader-f16` (GL llvmpipe).
 */
import assert from "node:assert/strict";
import { getGpu, hasGpu } from "./device.ts";
import { storageStep } from "./_testing.ts";
import { assertAllClose } from "../_testing.ts";
import { GpuModel } from "./model.ts";
import { GpuSession } from "./session.ts";
import { forwardLogits } from "../cpu/forward.ts";
import { CpuModel } from "../cpu/forward.ts";
import { generateGreedy } from "../cpu/generate.ts";
import { cacheFactory } from "../cpu/method_cache.ts";
import { streamingRules } from "../methods.ts";
import { duoRules } from "../duo.ts";
import { MoaKvCache } from "../cpu/sparse_cache.ts";
import type { SparsePlan } from "../spans.ts";
import { mapMatrices, type Model, toHalf, type Weight, widenModel } from "../model.ts";
import { randomModel, tinyConfig } from "../random_model.ts";
import { loadModel } from "../hf.ts";
import { loadTokenizer } from "../tokenizer.ts";
import { formatLine, formatQuestion, HEADER } from "../../data/longeval/longeval.ts";
import { tsEngine } from "../cpu/engine_ts.ts";

const ignore = !(await hasGpu());
const MOA_TINY = new URL("../../data/models/moa-tiny", import.meta.url).pathname;

Deno.test({
  name: "GpuModel prefill logits match the CPU forward (f32 within 1e-4, f16 weights within 2e-2)",
  ignore,
}, async (t) => {
  for (
    const [name, over] of [
      ["llama GQA", {}],
      ["qwen2 biases, tied embeddings", {
        modelType: "qwen2" as const,
        attentionBias: true,
        tieWordEmbeddings: true,
      }],
    ] as const
  ) {
    const model = randomModel(tinyConfig(over), 11);
    const T = 70;
    const toks = Array.from({ length: T }, (_, i) => (i * 31 + 7) % model.config.vocabSize);
    const V = model.config.vocabSize;
    const want = (await forwardLogits(model, toks)).subarray((T - 1) * V);
    for (const weights of ["f32", "f16"] as const) {
      const label = `${name}, ${weights} weights, prompt in chunks of 32`;
      await t.step(storageStep(await getGpu(), [weights], label, async () => {
        const g = await GpuModel.load(model, { weights });
        const s = await GpuSession.create(g, {
          batch: 1,
          maxLength: 96,
          plan: null,
          prefillChunk: 32,
        });
        await s.prefill(0, toks);
        const got = await s.lastLogits();
        const tol = weights === "f32" ? 1e-4 : 2e-2;
        assertAllClose(got, want, { atol: tol, rtol: tol }, "logits");
        s.destroy();
        g.destroy();
      }));
    }
  }
});

/** A moa plan on the solver's rule grid: integer α, β = k/8, different per kv head. */
function gridPlan(L: number, NKV: number): SparsePlan {
  const alphas: number[][] = [], betas: number[][] = [];
  for (let l = 0; l < L; l++) {
    alphas.push(Array.from({ length: NKV }, (_, g) => [16, -32, 64, 0][(l + g) % 4]!));
    betas.push(Array.from({ length: NKV }, (_, g) => [0.125, 0.5, 0, 0.25][(l * 3 + g) % 4]!));
  }
  return { sink: 16, alphas, betas };
}

Deno.test(
  { name: "moa-tiny greedy generation on the GPU matches the CPU token for token", ignore },
  async (t) => {
    const model = await loadModel(MOA_TINY);
    const tok = await loadTokenizer(MOA_TINY);
    const c = model.config;
    const keys = [
      "amber-wolf",
      "quiet-river",
      "solar-fig",
      "tidal-oak",
      "brisk-lynx",
      "hollow-pine",
    ];
    const lines = (n: number) =>
      keys.slice(0, n).map((k, i) => formatLine(k, 1000 + 37 * i)).join("");
    const prompts = [
      [1, ...tok.encode(HEADER + lines(6) + formatQuestion(keys[2]!))],
      [1, ...tok.encode(HEADER + lines(3) + formatQuestion(keys[0]!))],
      [1, ...tok.encode("The jury said it did find that many of Atlanta's registration")],
    ];
    const cpu = new CpuModel(model, tsEngine);
    const maxNew = 24;
    const maxLength = Math.max(...prompts.map((p) => p.length)) + maxNew;
    const duo = duoRules([[0.9, 0.1], [0.3, 0.8], [0.2, 0.4], [0.6, 0.5]], 0.5, maxLength, 8);
    const cases: [string, SparsePlan | null, Parameters<typeof cacheFactory>[1]][] = [
      ["dense", null, { method: "dense", density: 1, sink: 0 }],
      ["moa grid plan", gridPlan(c.numLayers, c.numKvHeads), {
        method: "moa",
        density: 0.5,
        sink: 16,
        plan: gridPlan(c.numLayers, c.numKvHeads),
      }],
      ["streaming 50%", streamingRules(c, 0.5, 8), {
        method: "streaming",
        density: 0.5,
        sink: 8,
      }],
      // DuoAttention's retrieval and streaming heads, binarised at 50% of the longest sequence
      ["duo 50%", duo, { method: "duo", density: 0.5, sink: 8, plan: duo }],
    ];
    const g = await GpuModel.load(model);
    for (const [name, plan, spec] of cases) {
      await t.step(name, async () => {
        const want = await generateGreedy(cpu, prompts, {
          maxNewTokens: maxNew,
          newCache: cacheFactory(cpu, spec),
        });
        const s = await GpuSession.create(g, {
          batch: prompts.length,
          maxLength,
          plan,
          prefillChunk: 64,
        });
        const got = await s.generate(prompts, { maxNewTokens: maxNew, stepsPerSync: 7 });
        assert.deepEqual(got, want);
        s.destroy();
      });
    }
    g.destroy();
  },
);

Deno.test(
  {
    name: "moa-tiny greedy generation with the reference span semantics matches the CPU",
    ignore,
  },
  async () => {
    // the reference runtime sizes every head's cache once for prompt + new tokens; a GPU session
    // sizes it for its longest prompt, so the CPU caches here are made for that length too
    const model = await loadModel(MOA_TINY);
    const tok = await loadTokenizer(MOA_TINY);
    const c = model.config;
    const keys = ["amber-wolf", "quiet-river", "solar-fig", "tidal-oak", "brisk-lynx"];
    const lines = keys.map((k, i) => formatLine(k, 2000 + 53 * i)).join("");
    const prompts = [
      [1, ...tok.encode(HEADER + lines + formatQuestion(keys[3]!))],
      [1, ...tok.encode(HEADER + lines + lines + formatQuestion(keys[1]!))],
    ];
    const maxNew = 20;
    const maxLength = Math.max(...prompts.map((p) => p.length)) + maxNew;
    const plan: SparsePlan = {
      ...gridPlan(c.numLayers, c.numKvHeads),
      spans: "reference",
      block: 16,
    };
    const cpu = new CpuModel(model, tsEngine);
    const want = await generateGreedy(cpu, prompts, {
      maxNewTokens: maxNew,
      newCache: () => new MoaKvCache(c, plan, maxLength),
    });
    const g = await GpuModel.load(model);
    const s = await GpuSession.create(g, {
      batch: prompts.length,
      maxLength,
      plan,
      prefillChunk: 64,
    });
    const got = await s.generate(prompts, { maxNewTokens: maxNew, stepsPerSync: 5 });
    assert.deepEqual(got, want);
    // and the semantics matters here: per-query windows generate something else
    const perQuery = await generateGreedy(cpu, prompts, {
      maxNewTokens: maxNew,
      newCache: () => new MoaKvCache(c, { ...plan, spans: "per-query" }, maxLength),
    });
    assert.notDeepEqual(perQuery, want);
    s.destroy();
    g.destroy();
  },
);

Deno.test(
  { name: "GpuSession stops at a stop token, keeps it, and drops the overshoot", ignore },
  async () => {
    const model = randomModel(tinyConfig(), 5);
    const cpu = new CpuModel(model, tsEngine);
    const prompt = [1, 40, 41, 42, 43];
    const free = (await generateGreedy(cpu, [prompt], { maxNewTokens: 12 }))[0]!;
    const stop = free[5]!;
    const want = free.slice(0, free.indexOf(stop) + 1);
    const g = await GpuModel.load(model);
    const s = await GpuSession.create(g, { batch: 1, maxLength: 32, plan: null });
    const got = await s.generate([prompt], {
      maxNewTokens: 12,
      stopTokens: [stop],
      stepsPerSync: 4,
    });
    assert.deepEqual(got, [want]);
    await assert.rejects(() => s.prefill(0, new Array(40).fill(3)), /maxLength 32/);
  },
);

Deno.test({ name: "GpuSession KV bytes follow the per-head formula", ignore }, async () => {
  const model = randomModel(tinyConfig(), 5);
  const c = model.config;
  const g = await GpuModel.load(model);
  const plan = gridPlan(c.numLayers, c.numKvHeads);
  const s = await GpuSession.create(g, { batch: 2, maxLength: 200, plan });
  let slots = 0;
  for (let l = 0; l < c.numLayers; l++) {
    for (let h = 0; h < c.numKvHeads; h++) {
      slots += plan.sink + s.layout.window[l * c.numKvHeads + h]!;
    }
  }
  assert.equal(s.kvBytesAllocated(), 2 * slots * c.headDim * 2 * 4);
  const dense = await GpuSession.create(g, { batch: 2, maxLength: 200, plan: null });
  assert.equal(dense.kvBytesAllocated(), 2 * c.numLayers * c.numKvHeads * 200 * c.headDim * 2 * 4);
  assert.ok(s.kvBytesAllocated() < dense.kvBytesAllocated());
});

Deno.test({
  name: "GpuModel.load() uploads F16 matrices as they are and converts BF16 ones",
  ignore,
}, async (t) => {
  const gpu = await getGpu();
  const model = randomModel(tinyConfig({ attentionBias: true }), 12);
  const T = 40;
  const toks = Array.from({ length: T }, (_, i) => (i * 13 + 3) % model.config.vocabSize);
  const logits = async (m: Model<Weight>, opts: { weights?: "f32" | "f16" }) => {
    const g = await GpuModel.load(m, opts);
    const s = await GpuSession.create(g, { batch: 1, maxLength: 48, plan: null, prefillChunk: 32 });
    await s.prefill(0, toks);
    const out = await s.lastLogits();
    const bytes = g.weightBytes;
    s.destroy();
    g.destroy();
    return { out, bytes, storage: g.kernels.weights };
  };
  for (const dtype of ["F16", "BF16"] as const) {
    await t.step(
      storageStep(gpu, ["f16"], `${dtype} matrices, f16 storage by default`, async () => {
        const compact = mapMatrices(model, (w) => toHalf(w, dtype));
        const got = await logits(compact, {});
        // the widened model rounded to f16 on the host: the same bits on the device
        const want = await logits(widenModel(compact), { weights: "f16" });
        assert.equal(got.storage, "f16");
        assert.equal(got.bytes, want.bytes);
        assertAllClose(got.out, want.out, { atol: 0 }, "logits");
      }),
    );
  }
  await t.step("BF16 matrices with f32 storage are widened exactly", async () => {
    const compact = mapMatrices(model, (w) => toHalf(w, "BF16"));
    const got = await logits(compact, { weights: "f32" });
    const want = await logits(widenModel(compact), { weights: "f32" });
    assertAllClose(got.out, want.out, { atol: 0 }, "logits");
  });
});
