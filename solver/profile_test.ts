import assert from "node:assert/strict";
import { attentionGrads, initJax, paramsFromModel } from "../runtime/autodiff/jax_model.ts";
import { referenceLogits } from "../runtime/cpu/_reference.ts";
import { randomModel, tinyConfig } from "../runtime/random_model.ts";
import { Rng } from "../runtime/rng.ts";
import {
  type BlockInfluence,
  layerBlockInfluence,
  profileInfluence,
  ruleLosses,
} from "./profile.ts";
import type { CalibrationSample } from "../data/calibration.ts";
import { spearman } from "./validity.ts";

const config = tinyConfig({
  hiddenSize: 32,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 8,
  intermediateSize: 48,
  vocabSize: 64,
});
const T = 24;
const rng = new Rng(5);
const sample: CalibrationSample = {
  tokens: Int32Array.from({ length: T }, () => rng.int(0, 63)),
  targets: Int32Array.from({ length: T }, () => rng.int(0, 63)),
  mask: Float32Array.from({ length: T }, (_, i) => (i >= 16 ? 1 : 0)), // response-only loss
};

/** The masked loss in float64 from the independent reference, with some entries dropped. */
function loss(
  model: ReturnType<typeof randomModel>,
  drop?: (l: number, h: number, i: number, j: number) => boolean,
) {
  const V = config.vocabSize;
  const logits = referenceLogits(model, Array.from(sample.tokens), drop);
  let s = 0, w = 0;
  for (let t = 0; t < T; t++) {
    const m = sample.mask[t]!;
    if (!m) continue;
    const row = logits.subarray(t * V, (t + 1) * V);
    const mx = Math.max(...row);
    const z = row.reduce((a, x) => a + Math.exp(x - mx), 0);
    s += m * -(row[sample.targets[t]!]! - mx - Math.log(z));
    w += m;
  }
  return s / w;
}

Deno.test("E_ij predicts the loss change of dropping one attention entry", async () => {
  await initJax("wasm");
  const model = randomModel(config, 9, 6);
  const params = paramsFromModel(model);
  const { probs, grads } = await attentionGrads(config, params, sample, T);
  const base = loss(model);
  const predicted: number[] = [], measured: number[] = [];
  const r = new Rng(11);
  for (let k = 0; k < 40; k++) {
    const l = r.int(0, 1), h = r.int(0, 3), i = r.int(12, T - 1), j = r.int(0, i);
    const row = (h * T + i) * T;
    const A = probs[l]!, G = grads[l]!;
    const dot = Array.from({ length: i + 1 }, (_, n) => G[row + n]! * A[row + n]!).reduce(
      (a, x) => a + x,
      0,
    );
    const a = A[row + j]!;
    predicted.push((-a / (1 - a)) * (G[row + j]! - dot));
    measured.push(
      loss(model, (ll, hh, ii, jj) => ll === l && hh === h && ii === i && jj === j) - base,
    );
  }
  const rho = spearman(predicted, measured);
  assert.ok(rho > 0.9, `Spearman ${rho.toFixed(3)}`);
  // the profiler's signed E (block 1) is this first-order change, sign included
  const r2 = new Rng(11);
  for (let k = 0; k < 40; k++) {
    const l = r2.int(0, 1), h = r2.int(0, 3), i = r2.int(12, T - 1), j = r2.int(0, i);
    const signed = layerBlockInfluence(probs[l]!, grads[l]!, T, 4, config.numKvHeads, 1, true);
    const G = 4 / config.numKvHeads;
    // the tile also holds the other query heads of the kv head: subtract theirs
    let others = 0;
    for (let hh = Math.floor(h / G) * G; hh < (Math.floor(h / G) + 1) * G; hh++) {
      if (hh === h) continue;
      const row = (hh * T + i) * T, A = probs[l]!, Gr = grads[l]!;
      let dot = 0;
      for (let n = 0; n <= i; n++) dot += Gr[row + n]! * A[row + n]!;
      const a = A[row + j]!;
      if (a !== 0) others += (-a / Math.max(1e-6, 1 - a)) * (Gr[row + j]! - dot);
    }
    const mine = signed[Math.floor(h / G)]![i * T + j]! - others;
    assert.ok(
      Math.abs(mine - predicted[k]!) <= 1e-5 * Math.max(1, Math.abs(predicted[k]!)) + 1e-9,
      `signed E of entry ${k}: ${mine} vs ${predicted[k]}`,
    );
    assert.ok(Math.sign(mine) === Math.sign(measured[k]!) || Math.abs(measured[k]!) < 2e-4);
  }
  // first order: close in value where the change is not tiny
  predicted.forEach((p, k) => {
    const m = measured[k]!;
    assert.ok(
      Math.abs(p - m) <= 0.2 * Math.abs(m) + 2e-4,
      `entry ${k}: predicted ${p}, measured ${m}`,
    );
  });
});

Deno.test("layerBlockInfluence() sums |E| into tiles and over the query heads of a kv head", () => {
  // 2 query heads sharing 1 kv head, T = 4, block 2: hand-made A and G
  const T4 = 4, A = new Float32Array(2 * 16), G = new Float32Array(2 * 16);
  const rows = [[1], [0.5, 0.5], [0.2, 0.3, 0.5], [0.1, 0.2, 0.3, 0.4]];
  for (let h = 0; h < 2; h++) {
    rows.forEach((row, i) => row.forEach((a, j) => (A[(h * 4 + i) * 4 + j] = a)));
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j <= i; j++) G[(h * 4 + i) * 4 + j] = (h + 1) * (i - j + 1);
    }
  }
  const [tiles] = layerBlockInfluence(A, G, T4, 2, 1, 2);
  const E = (h: number, i: number, j: number) => {
    const a = A[(h * 4 + i) * 4 + j]!, g = (n: number) => G[(h * 4 + i) * 4 + n]!;
    const dot = Array.from({ length: i + 1 }, (_, n) => g(n) * A[(h * 4 + i) * 4 + n]!).reduce(
      (x, y) => x + y,
      0,
    );
    return Math.abs((a / Math.max(1e-6, 1 - a)) * (g(j) - dot));
  };
  const want = new Float64Array(4);
  for (let h = 0; h < 2; h++) {
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j <= i; j++) want[Math.floor(i / 2) * 2 + Math.floor(j / 2)]! += E(h, i, j);
    }
  }
  want.forEach((w, k) => assert.ok(Math.abs(tiles![k]! - w) < 1e-6, `tile ${k}`));
  assert.equal(tiles![1], 0, "no influence above the diagonal");
});

Deno.test("profileInfluence() and ruleLosses(): wider rules lose less, full rules lose nothing", async () => {
  const inf: BlockInfluence = await profileInfluence(
    randomModel(config, 9, 6),
    [sample, sample],
    4,
  );
  assert.equal(inf.values.length, 2);
  assert.equal(inf.values[0]!.length, 2, "one tile grid per kv head");
  const rules = [{ alpha: 4, beta: 0 }, { alpha: 8, beta: 0 }, { alpha: 0, beta: 1 }];
  for (const losses of ruleLosses(inf, rules, 4)) {
    assert.ok(losses[0]! >= losses[1]! && losses[1]! >= losses[2]!, `${losses}`);
    assert.equal(losses[2], 0);
    assert.ok(losses[0]! > 0);
  }
});
