import { matmulTWeight, matmulWeight, WIDEN_ELEMENTS } from "./weight_matmul.ts";
import { tsEngine } from "./engine_ts.ts";
import { mapMatrices, type Model, toHalf, type Weight, widen, widenModel } from "../model.ts";
import { randomModel, tinyConfig } from "../random_model.ts";
import { CpuModel } from "./forward.ts";
import type { Engine } from "./engine.ts";
import { ENGINE_CHOICES, engineOf } from "./engine_auto.ts";
import { Rng } from "../rng.ts";
import { assertAllClose } from "../_testing.ts";

/** float64 products of the widened weight: x·wᵀ (w: N×K) and a·w (w: K×N). */
function refT(x: Float32Array, w: Float32Array, M: number, K: number, N: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
      out[m * N + n] = s;
    }
  }
  return out;
}
function ref(a: Float32Array, w: Float32Array, M: number, K: number, N: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) {
      for (let n = 0; n < N; n++) out[m * N + n]! += a[m * K + k]! * w[k * N + n]!;
    }
  }
  return out;
}

const rng = new Rng(4);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

Deno.test("matmulTWeight() and matmulWeight() agree with float64 products of the widened weight", async (t) => {
  // K·N above WIDEN_ELEMENTS: several widened blocks, the last one partial
  const K = 1536, N = Math.ceil((2.5 * WIDEN_ELEMENTS) / K);
  for (const M of [1, 3]) {
    for (const storage of ["F32", "F16", "BF16"] as const) {
      await t.step(`M=${M}, ${storage}`, async () => {
        const raw = rand(N * K);
        const w: Weight = storage === "F32" ? raw : toHalf(raw, storage);
        const wide = widen(w);
        const x = rand(M * K), out = new Float32Array(M * N);
        await matmulTWeight(tsEngine, out, x, w, M, K, N);
        // float32 sums of K = 1536 terms of size ~1: within 1e-3 absolute
        assertAllClose(out, refT(x, wide, M, K, N), { atol: 1e-3 }, "x·wᵀ");
        // the same matrix read as (K', N') = (N, K): a · w
        const a = rand(M * N), out2 = new Float32Array(M * K);
        await matmulWeight(tsEngine, out2, a, w, M, N, K);
        assertAllClose(out2, ref(a, wide, M, N, K), { atol: 1e-3 }, "a·w");
      });
    }
  }
});

Deno.test("CpuModel on F16/BF16 matrices gives the logits of the widened float32 model", async (t) => {
  const config = tinyConfig({ attentionBias: true, tieWordEmbeddings: true });
  const tokens = Array.from({ length: 40 }, (_, i) => (i * 37 + 5) % config.vocabSize);
  for (const choice of ENGINE_CHOICES) {
    let engine: Engine;
    try {
      engine = await engineOf(choice);
    } catch (e) {
      await t.step({
        name: `${choice} (ignored: ${String(e).slice(0, 80)})`,
        ignore: true,
        fn() {},
      });
      continue;
    }
    for (const dtype of ["F16", "BF16"] as const) {
      await t.step(`${choice}, ${dtype}: prefill of 40 tokens, then two decode steps`, async () => {
        const compact = mapMatrices(randomModel(config, 2), (w) => toHalf(w, dtype));
        const wide = widenModel(compact);
        const run = async (m: Model<Weight>) => {
          const cpu = new CpuModel(m, engine);
          const cache = cpu.newCache(64);
          const out = await cpu.step([{ cache, tokens: tokens.slice(0, 38) }], "all");
          for (const tok of tokens.slice(38)) {
            out.push(...await cpu.step([{ cache, tokens: [tok] }]));
          }
          return out;
        };
        const [got, want] = [await run(compact), await run(wide)];
        // the same float32 values reach the same engine: equal up to the engine's blocking
        got.forEach((g, i) => assertAllClose(g, want[i]!, { atol: 1e-4, rtol: 1e-4 }, `step ${i}`));
      });
    }
  }
});
