import assert from "node:assert/strict";
import { randomModel, tinyConfig } from "../random_model.ts";
import { Rng } from "../rng.ts";
import { AutoEngine, type Engine, JaxEngine, OrtEngine, TsEngine, tsEngine } from "./engine.ts";
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
    await t.step(name, async () => {
      const model = randomModel(config, 3, 8);
      const ids = tokens(40, config.vocabSize, 1);
      const want = referenceLogits(model, ids);
      const d = maxAbsDiff(await forwardLogits(model, ids), want);
      assert.ok(d <= 1e-4, `max |diff| ${d}`);
      // the check must be able to fail: a changed weight moves the logits
      model.weights.layers[0]!.wk[0]! += 0.5;
      assert.ok(maxAbsDiff(await forwardLogits(model, ids), want) > 1e-3);
    });
  }
});

Deno.test("CpuModel.step() gives the same logits incrementally as in one pass", async (t) => {
  const config = tinyConfig({ numHeads: 4, numKvHeads: 2 });
  const model = randomModel(config, 5, 8);
  const runner = new CpuModel(model);
  const ids = tokens(700, config.vocabSize, 2);
  const full = await forwardLogits(model, ids);
  const V = config.vocabSize;
  await t.step("prefill in chunks on top of an existing cache, then decode", async () => {
    const cache = runner.newCache(8);
    let at = 0;
    for (const n of [300, 1, 250, 149]) {
      const out = (await runner.step([{ cache, tokens: ids.slice(at, at + n) }], "all"))[0]!;
      const d = maxAbsDiff(out, full.subarray(at * V, (at + n) * V));
      assert.ok(d <= 1e-5, `chunk at ${at}: ${d}`);
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
    const out = await runner.step(
      seqs.map((s) => ({ cache: runner.newCache(), tokens: s })),
      "last",
    );
    for (const [i, s] of seqs.entries()) {
      const alone = await forwardLogits(model, s);
      assert.ok(maxAbsDiff(out[i]!, alone.subarray((s.length - 1) * V)) <= 1e-5);
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
  for (const e of engines) {
    await t.step(e.name, async () => {
      const d = maxAbsDiff(await forwardLogits(model, ids, e), want);
      assert.ok(d <= 1e-4, `max |diff| ${d}`);
    });
  }
});

Deno.test("engine products and attention agree with float64 loops", async (t) => {
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
  // attention: T=5 queries at positions 3..7 over S=8 keys, NH=4, NKV=2, HS=6
  const dims = { T: 5, S: 8, NH: 4, NKV: 2, HS: 6, first: 3 };
  const q = Float32Array.from({ length: 5 * 4 * 6 }, () => r.normal());
  const kk = Float32Array.from({ length: 2 * 8 * 6 }, () => r.normal());
  const vv = Float32Array.from({ length: 2 * 8 * 6 }, () => r.normal());
  const wantA = new Float64Array(5 * 4 * 6);
  for (let t = 0; t < 5; t++) {
    for (let h = 0; h < 4; h++) {
      const g = Math.floor(h / 2);
      const sc = Array.from({ length: 3 + t + 1 }, (_, j) => {
        let s = 0;
        for (let d = 0; d < 6; d++) s += q[(t * 4 + h) * 6 + d]! * kk[(g * 8 + j) * 6 + d]!;
        return s / Math.sqrt(6);
      });
      const mx = Math.max(...sc);
      const e = sc.map((s) => Math.exp(s - mx));
      const z = e.reduce((a, y) => a + y, 0);
      for (let d = 0; d < 6; d++) {
        wantA[(t * 4 + h) * 6 + d] = e.reduce(
          (a, p, j) => a + (p / z) * vv[(g * 8 + j) * 6 + d]!,
          0,
        );
      }
    }
  }
  for (const e of [new TsEngine(), await OrtEngine.create(2), await JaxEngine.create()]) {
    await t.step(e.name, async () => {
      const out = new Float32Array(M * N);
      await e.matmulT(out, x, w, M, K, N, true);
      assert.ok(maxAbsDiff(out, wantT) <= 1e-4);
      await e.matmulT(out, x, w, M, K, N, true); // cached weight path
      assert.ok(maxAbsDiff(out, wantT) <= 1e-4);
      await e.matmul(out, x, b, M, K, N);
      assert.ok(maxAbsDiff(out, want) <= 1e-4);
      const att = new Float32Array(5 * 4 * 6);
      await e.attention(att, q, kk, vv, dims);
      assert.ok(maxAbsDiff(att, wantA) <= 1e-5, `attention ${maxAbsDiff(att, wantA)}`);
    });
  }
});
