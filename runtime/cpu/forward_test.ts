import assert from "node:assert/strict";
import { randomModel, tinyConfig } from "../random_model.ts";
import { Rng } from "../rng.ts";
import { AutoGemm, JaxGemm, TsGemm, tsGemm } from "./gemm.ts";
import { CpuModel, forwardLogits } from "./forward.ts";
import { maxAbsDiff, referenceLogits } from "./_reference.ts";

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
    await t.step(name, () => {
      const model = randomModel(config, 3, 8);
      const ids = tokens(40, config.vocabSize, 1);
      const got = forwardLogits(model, ids);
      const want = referenceLogits(model, ids);
      const d = maxAbsDiff(got, want);
      assert.ok(d <= 1e-4, `max |diff| ${d}`);
      // the check must be able to fail: a changed weight moves the logits
      model.weights.layers[0]!.wk[0]! += 0.5;
      assert.ok(maxAbsDiff(forwardLogits(model, ids), want) > 1e-3);
    });
  }
});

Deno.test("CpuModel.step() gives the same logits incrementally as in one pass", async (t) => {
  const config = tinyConfig({ numHeads: 4, numKvHeads: 2 });
  const model = randomModel(config, 5, 8);
  const runner = new CpuModel(model);
  const ids = tokens(700, config.vocabSize, 2);
  const full = forwardLogits(model, ids);
  const V = config.vocabSize;
  await t.step("prefill in chunks on top of an existing cache, then decode", () => {
    const cache = runner.newCache(8);
    const chunks = [300, 1, 250, 149];
    let at = 0;
    for (const n of chunks) {
      const out = runner.step([{ cache, tokens: ids.slice(at, at + n) }], "all")[0]!;
      const want = full.subarray(at * V, (at + n) * V);
      assert.ok(maxAbsDiff(out, want) <= 1e-5, `chunk at ${at}: ${maxAbsDiff(out, want)}`);
      at += n;
    }
    assert.equal(cache.length, 700);
    assert.equal(
      cache.bytes(),
      config.numLayers * 2 * config.numKvHeads * 700 * config.headDim * 4,
    );
  });
  await t.step("a ragged batch equals each sequence run alone", () => {
    const a = ids.slice(0, 37), b = ids.slice(100, 101), c = ids.slice(200, 290);
    const caches = [runner.newCache(), runner.newCache(), runner.newCache()];
    const out = runner.step(
      [{ cache: caches[0]!, tokens: a }, { cache: caches[1]!, tokens: b }, {
        cache: caches[2]!,
        tokens: c,
      }],
      "last",
    );
    [a, b, c].forEach((s, i) => {
      const alone = forwardLogits(model, s);
      const last = alone.subarray((s.length - 1) * V);
      assert.ok(maxAbsDiff(out[i]!, last) <= 1e-5);
    });
  });
});

Deno.test("the jax-js engine gives the logits of the TypeScript engine within 1e-4", async () => {
  const config = tinyConfig({ hiddenSize: 128, headDim: 32, intermediateSize: 344 });
  const model = randomModel(config, 7, 8);
  const ids = tokens(300, config.vocabSize, 3);
  const fast = new AutoGemm(tsGemm, await JaxGemm.create(), 1);
  const d = maxAbsDiff(forwardLogits(model, ids, fast), forwardLogits(model, ids, tsGemm));
  assert.ok(d <= 1e-4, `max |diff| ${d}`);
});

Deno.test("gemm engines agree with a float64 triple loop", async (t) => {
  const r = new Rng(9);
  const M = 37, K = 53, N = 29;
  const x = Float32Array.from({ length: M * K }, () => r.normal());
  const w = Float32Array.from({ length: N * K }, () => r.normal());
  const b = Float32Array.from({ length: K * N }, () => r.normal());
  const wantT = new Float64Array(M * N), want = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0, u = 0;
      for (let k = 0; k < K; k++) {
        s += x[m * K + k]! * w[n * K + k]!;
        u += x[m * K + k]! * b[k * N + n]!;
      }
      wantT[m * N + n] = s;
      want[m * N + n] = u;
    }
  }
  for (const e of [new TsGemm(), await JaxGemm.create()]) {
    await t.step(e.name, () => {
      const out = new Float32Array(M * N);
      e.matmulT(out, x, w, M, K, N, true);
      assert.ok(maxAbsDiff(out, wantT) <= 1e-4);
      e.matmulT(out, x, w, M, K, N, true); // cached weight path
      assert.ok(maxAbsDiff(out, wantT) <= 1e-4);
      e.matmul(out, x, b, M, K, N);
      assert.ok(maxAbsDiff(out, want) <= 1e-4);
    });
  }
});
