import assert from "node:assert/strict";
import { attentionGrads, initJax, paramsFromModel } from "./jax_model.ts";
import { type InfluenceDevice, layerInfluence, queryBlockFor } from "./influence.ts";
import type { Engine } from "../cpu/engine.ts";
import { tsEngine } from "../cpu/engine_ts.ts";
import { fastEngine } from "../cpu/engine_auto.ts";
import { layerBlockInfluence } from "../../solver/profile.ts";
import { mapMatrices, type Model, toHalf, type Weight, widenModel } from "../model.ts";
import { randomModel, tinyConfig } from "../random_model.ts";
import { Rng } from "../rng.ts";
import { assertAllClose } from "../_testing.ts";

const config = tinyConfig({
  hiddenSize: 32,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 8,
  intermediateSize: 48,
  vocabSize: 64,
  attentionBias: true,
});

function sampleOf(T: number, seed: number) {
  const rng = new Rng(seed);
  return {
    tokens: Int32Array.from({ length: T }, () => rng.int(0, 63)),
    targets: Int32Array.from({ length: T }, () => rng.int(0, 63)),
    // loss on the last third, with uneven weights
    mask: Float32Array.from({ length: T }, (_, i) => (i >= (2 * T) / 3 ? 1 + (i % 3) : 0)),
  };
}

/** Tiles of today's whole-attention path: A and ∂L/∂A of every head, then layerBlockInfluence. */
async function reference(model: Model, T: number, seed: number, block: number, signed: boolean) {
  const params = paramsFromModel(model);
  const r = await attentionGrads(model.config, params, sampleOf(T, seed), T);
  const { numHeads: NH, numKvHeads: NKV } = model.config;
  const tiles = r.probs.map((a, l) =>
    layerBlockInfluence(a, r.grads[l]!, T, NH, NKV, block, signed)
  );
  return { loss: r.loss, tiles };
}

async function layered(
  model: Model<Weight>,
  T: number,
  seed: number,
  block: number,
  signed: boolean,
  queryBlock?: number,
  device: InfluenceDevice = "wasm",
  engine: Engine = tsEngine,
) {
  const tiles: Float64Array[][] = [];
  const loss = await layerInfluence(model, sampleOf(T, seed), (l, t) => {
    tiles[l] = t;
  }, { block, signed, device, engine, ...(queryBlock ? { queryBlock } : {}) });
  return { loss, tiles };
}

function assertTilesClose(got: Float64Array[][], want: Float64Array[][], what: string) {
  assert.equal(got.length, want.length);
  got.forEach((heads, l) =>
    heads.forEach((t, g) => {
      // float32 on both sides, summed in another order: 1e-5 of the largest tile
      const scale = Math.max(...want[l]![g]!.map(Math.abs), 1e-12);
      assertAllClose(t, want[l]![g]!, { atol: 1e-5 * scale }, `${what} layer ${l} kv ${g}`);
    })
  );
}

Deno.test("layerInfluence() gives today's whole-attention tiles and loss", async (t) => {
  await initJax("wasm");
  // weights of std 0.12 (scale 6): peaky attention, where E's 1/(1 − A) magnifies any rounding
  const model = randomModel(config, 9, 6);
  const fast = await fastEngine();
  // T = 44 is no multiple of the tiles (8) or query blocks (16): the last ones are padded
  const cases = [
    [44, 8, 16, false],
    [44, 8, 8, true],
    [40, 4, undefined, false],
    [24, 1, 8, false],
  ] as const;
  for (const [device, engine] of [["wasm", tsEngine], ["cpu", tsEngine], ["cpu", fast]] as const) {
    for (const [T, block, queryBlock, signed] of cases) {
      const name = `${device} (${engine.name}): T=${T}, tiles of ${block}, query blocks of ` +
        `${queryBlock ?? "all"}, ${signed ? "signed" : "abs"}`;
      await t.step(name, async () => {
        const want = await reference(model, T, T + block, block, signed);
        const got = await layered(model, T, T + block, block, signed, queryBlock, device, engine);
        assert.ok(
          Math.abs(got.loss - want.loss) < 1e-5 * Math.abs(want.loss),
          `loss ${got.loss} vs ${want.loss}`,
        );
        assertTilesClose(got.tiles, want.tiles, name);
        assert.equal(got.tiles[0]![0]!.length, Math.ceil(T / block) ** 2);
      });
    }
  }
});

Deno.test("layerInfluence() on BF16 weights equals the whole-attention path on the widened model", async () => {
  await initJax("wasm");
  const compact = mapMatrices(randomModel(config, 3, 6), (w) => toHalf(w, "BF16"));
  const want = await reference(widenModel(compact), 32, 1, 8, false);
  for (const device of ["wasm", "cpu"] as const) {
    const got = await layered(compact, 32, 1, 8, false, 16, device);
    assertTilesClose(got.tiles, want.tiles, `bf16 on ${device}`);
  }
});

Deno.test("layerInfluence() refuses a query block that is not a multiple of the tiles", async () => {
  await initJax("wasm");
  await assert.rejects(
    layered(randomModel(config, 1), 16, 1, 8, false, 12),
    /queryBlock 12 is not a positive multiple of the tile size 8/,
  );
});

Deno.test("queryBlockFor() keeps one (NH, Bq, T) float32 array within its budget", () => {
  for (const [NH, T, block] of [[32, 4096, 64], [14, 8192, 32], [4, 1000, 32], [32, 65536, 64]]) {
    const bytes = 64 * 2 ** 20;
    const bq = queryBlockFor(NH!, T!, block!, bytes);
    assert.equal(bq % block!, 0);
    const Tp = Math.ceil(T! / block!) * block!;
    assert.ok(bq === block || 4 * NH! * bq * Tp <= bytes, `${NH} ${T} ${bq}`);
    assert.ok(bq <= Tp);
  }
});
