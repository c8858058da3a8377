import assert from "node:assert/strict";
import type { Model } from "../model.ts";
import { randomModel, tinyConfig } from "../random_model.ts";
import { Rng } from "../rng.ts";
import { referenceLogits } from "../cpu/_reference.ts";
import { disposeParams, duoDistillGrad, initJax, paramsFromModel } from "./jax_model.ts";
import { assertAllClose } from "../_testing.ts";

await initJax("wasm");

// V = C and an identity output head: the reference's logits are the final hidden states
const C = 32;
const config = tinyConfig({
  hiddenSize: C,
  vocabSize: C,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 8,
  intermediateSize: 48,
});
const model: Model = randomModel(config, 3, 6);
model.weights.lmHead = Float32Array.from({ length: C * C }, (_, i) => (i % (C + 1) === 0 ? 1 : 0));
const T = 24, sink = 2, recent = 5, G = 2;
const r = new Rng(8);
const tokens = Int32Array.from({ length: T }, () => r.int(0, C - 1));
const mask = Float32Array.from({ length: T }, (_, t) => (t >= 16 ? (t % 2 ? 1 : 0.5) : 0));
const params = paramsFromModel(model);

/** Σ_t w_t · mean_c (a − b)², w = mask / Σ mask, in float64. */
function distill(a: Float64Array, b: Float64Array): number {
  const wsum = mask.reduce((x, y) => x + y, 0);
  let s = 0;
  for (let t = 0; t < T; t++) {
    let e = 0;
    for (let c = 0; c < C; c++) e += (a[t * C + c]! - b[t * C + c]!) ** 2;
    s += (mask[t]! / wsum) * (e / C);
  }
  return s;
}

const target = referenceLogits(model, [...tokens]);
/** The float64 hidden states when the kv heads marked streaming see only the sink and window. */
const streamingHidden = (streaming: boolean[][]) =>
  referenceLogits(
    model,
    [...tokens],
    (l, h, i, j) => streaming[l]![Math.floor(h / G)]! && !(j < sink || i - j < recent),
  );

Deno.test("duoDistillGrad(): binary gates give the loss of the masked float64 forward", async () => {
  const cases: [string, number[], boolean[][]][] = [
    ["all full", [1, 1, 1, 1], [[false, false], [false, false]]],
    ["all streaming", [0, 0, 0, 0], [[true, true], [true, true]]],
    ["mixed, layer-major", [1, 0, 0, 1], [[false, true], [true, false]]],
  ];
  for (const [name, gates, streaming] of cases) {
    const { loss } = await duoDistillGrad(
      config,
      params,
      Float32Array.from(gates),
      tokens,
      mask,
      { sink, recent },
    );
    const want = distill(streamingHidden(streaming), target);
    assert.ok(Math.abs(loss - want) <= 1e-5 + 1e-3 * want, `${name}: ${loss} vs ${want}`);
    if (name !== "all full") assert.ok(want > 1e-3, `${name}: the streaming heads matter`);
  }
});

Deno.test("duoDistillGrad(): the gradient matches central differences of the loss", async () => {
  const gates = Float32Array.from([0.7, 0.3, 0.55, 0.2]);
  const at = async (g: Float32Array) =>
    (await duoDistillGrad(config, params, g, tokens, mask, { sink, recent })).loss;
  const { grad } = await duoDistillGrad(config, params, gates, tokens, mask, { sink, recent });
  const eps = 0.02;
  const fd = await Promise.all([0, 1, 2, 3].map(async (i) => {
    const up = gates.slice(), down = gates.slice();
    up[i]! += eps;
    down[i]! -= eps;
    return ((await at(up)) - (await at(down))) / (2 * eps);
  }));
  const scale = Math.max(...fd.map(Math.abs));
  assert.ok(scale > 1e-3, "a gradient worth checking");
  assertAllClose(grad, fd, { atol: 0.02 * scale }, "∂loss/∂gates");
});

Deno.test("duoDistillGrad() refuses gates of the wrong shape", async () => {
  await assert.rejects(
    () => duoDistillGrad(config, params, new Float32Array(3), tokens, mask, { sink, recent }),
    /gates has length 3, expected 4/,
  );
});

globalThis.addEventListener("unload", () => disposeParams(params));
