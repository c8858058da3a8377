import assert from "node:assert/strict";
import { EngineLayers, rmsnormBackward, rmsnormSaving } from "./layer_backward.ts";
import { tsEngine } from "./engine_ts.ts";
import { randomModel, tinyConfig } from "../random_model.ts";
import { Rng } from "../rng.ts";
import { assertAllClose } from "../_testing.ts";

const rng = new Rng(2);
const normal = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

/** Σ ct ⊙ f(x) by central differences at a few coordinates (step h). */
async function centralDiffs(
  f: (x: Float32Array) => Promise<Float32Array> | Float32Array,
  x: Float32Array,
  ct: Float32Array,
  at: number[],
  h: number,
): Promise<number[]> {
  const dot = async (z: Float32Array) => (await f(z)).reduce((s, y, i) => s + y * ct[i]!, 0);
  const out: number[] = [];
  for (const i of at) {
    const p = x.slice(), m = x.slice();
    p[i]! += h;
    m[i]! -= h;
    out.push((await dot(p) - await dot(m)) / (2 * h));
  }
  return out;
}

Deno.test("rmsnormBackward() is the gradient of rmsnormSaving()", async () => {
  const rows = 3, C = 16, g = normal(C), x = normal(rows * C), dy = normal(rows * C);
  const { r } = rmsnormSaving(x, g, rows, C, 1e-5);
  const dx = new Float32Array(rows * C).fill(0.5);
  rmsnormBackward(dx, x, g, r, dy, rows, C);
  const at = [0, 7, 20, 47];
  const fd = await centralDiffs((z) => rmsnormSaving(z, g, rows, C, 1e-5).y, x, dy, at, 1e-3);
  // it adds to what out held (0.5); float32 central differences: within 2e-3
  assertAllClose(at.map((i) => dx[i]! - 0.5), fd, { atol: 2e-3, rtol: 2e-3 }, "dx");
});

Deno.test("EngineLayers.backward() is the gradient of EngineLayers.forward()", async () => {
  const config = tinyConfig({
    hiddenSize: 32,
    numLayers: 1,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 8,
    intermediateSize: 48,
    vocabSize: 64,
    attentionBias: true,
  });
  const T = 16, C = 32;
  const layers = new EngineLayers(randomModel(config, 9, 6), tsEngine, {
    T,
    Tp: T,
    queryBlock: 8,
    block: 8,
    signed: false,
  });
  const x = normal(T * C), ct = normal(T * C);
  const tiles = [new Float64Array(4), new Float64Array(4)];
  const dx = await layers.backward(0, x, ct, tiles);
  const at = [0, 5, 100, 300, 511];
  const fd = await centralDiffs((z) => layers.forward(0, z), x, ct, at, 1e-2);
  // float32 forward, step 1e-2: differences within 1e-3 of the gradient's size
  assertAllClose(at.map((i) => dx[i]!), fd, { atol: 1e-3, rtol: 1e-3 }, "dx");
  assert.equal(tiles[0]![1], 0, "no influence above the diagonal");
  assert.ok(tiles.every((t) => t[0]! > 0 && t[3]! > 0), "influence on the diagonal tiles");
});
