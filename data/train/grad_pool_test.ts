import assert from "node:assert/strict";
import { combineParts, GradPool, splitBatch } from "./grad_pool.ts";
import { namedWeights } from "./train.ts";
import {
  type Batch,
  disposeParams,
  initJax,
  lossAndGrad,
  modelFromParams,
  paramsFromModel,
} from "../../runtime/autodiff/jax_model.ts";
import { randomModel, tinyConfig } from "../../runtime/random_model.ts";
import { Rng } from "../../runtime/rng.ts";

/** A batch of B rows of T tokens whose masks sum differently per row (and one row all zero). */
function batchOf(vocab: number, B: number, T: number, seed: number): Batch {
  const r = new Rng(seed);
  const n = B * T;
  const tokens = Int32Array.from({ length: n }, () => r.int(0, vocab - 1));
  const targets = Int32Array.from({ length: n }, () => r.int(0, vocab - 1));
  // row b weights its last b+1 positions by 1 + b/2 (row 0 one position, row 3 four), so an
  // unweighted mean of the rows' losses would differ from the batch's
  const mask = new Float32Array(n);
  for (let b = 0; b < B; b++) {
    for (let t = T - 1 - b; t < T; t++) mask[b * T + t] = 1 + b / 2;
  }
  // spread position ids, as training's long-distance examples have
  const positions = Int32Array.from(
    { length: n },
    (_, i) => (i % T) * 3 + (i % T > T / 2 ? 40 : 0),
  );
  return { tokens, targets, mask, positions };
}

Deno.test("splitBatch cuts contiguous rows as evenly as it can and drops all-zero parts", () => {
  const T = 2, B = 5;
  const batch: Batch = {
    tokens: Int32Array.from({ length: B * T }, (_, i) => i),
    targets: Int32Array.from({ length: B * T }, (_, i) => 100 + i),
    mask: Float32Array.from([1, 0, 0, 0, 0, 2, 1, 1, 0, 3]),
  };
  const parts = splitBatch(batch, B, T, 3);
  assert.deepEqual(parts.map((p) => p.B), [2, 2, 1]);
  assert.deepEqual(parts.map((p) => p.weight), [1, 4, 3]);
  assert.deepEqual([...parts[1]!.batch.tokens], [4, 5, 6, 7]);
  assert.deepEqual([...parts[2]!.batch.targets], [108, 109]);
  // rows 3-4 carry no weight: that part is not sent
  const zero = { ...batch, mask: Float32Array.from([0, 0, 0, 0, 1, 0, 0, 0, 0, 0]) };
  assert.deepEqual(splitBatch(zero, B, T, 2).map((p) => p.B), [3]);
  assert.equal(splitBatch(batch, B, T, 9).length, 4, "one part per row, row 1 (all zero) dropped");
  assert.throws(() => splitBatch(batch, B, T, 0), /parts: expected an integer ≥ 1/);
  assert.throws(() => splitBatch(batch, 4, T, 2), /tokens has length 10, expected B·T = 8/);
});

Deno.test("combineParts weights each part by its share of the mask", () => {
  const got = combineParts([
    { loss: 2, grads: [Float32Array.from([1, 0])], weight: 1 },
    { loss: 5, grads: [Float32Array.from([0, 4])], weight: 3 },
  ]);
  assert.equal(got.loss, 0.25 * 2 + 0.75 * 5);
  assert.deepEqual([...got.grads[0]!], [0.25, 3]);
  assert.throws(() => combineParts([]), /no part/);
  assert.throws(
    () => combineParts([{ loss: 1, grads: [new Float32Array(1)], weight: 0 }]),
    /sum to 0/,
  );
});

Deno.test("two gradient workers give the one-process gradient of the whole batch", async () => {
  await initJax("wasm");
  const config = tinyConfig({ numLayers: 2, maxPositionEmbeddings: 256 });
  const model = randomModel(config, 7);
  const B = 4, T = 12;
  const batch = batchOf(config.vocabSize, B, T, 11);
  const params = paramsFromModel(model);
  const one = await lossAndGrad(config, params, batch, B, T);
  disposeParams(params);
  const want = namedWeights(await modelFromParams(config, one.grads)).map((w) => w.data);
  disposeParams(one.grads);

  const pool = new GradPool(2);
  try {
    const weights = namedWeights(model).map((w) => w.data);
    const got = await pool.lossAndGrad(config, weights, batch, B, T);
    // float32 sums in another order: the tolerance is relative to each array's largest entry
    assert.ok(Math.abs(got.loss - one.loss) <= 1e-5 * one.loss, `${got.loss} vs ${one.loss}`);
    assert.equal(got.grads.length, want.length);
    want.forEach((w, k) => {
      let scale = 0, err = 0;
      for (let i = 0; i < w.length; i++) {
        scale = Math.max(scale, Math.abs(w[i]!));
        err = Math.max(err, Math.abs(w[i]! - got.grads[k]![i]!));
      }
      assert.ok(scale > 0, `gradient ${k} is all zero: the test would not see a wrong one`);
      assert.ok(err <= 1e-4 * scale, `gradient ${k}: max error ${err} against max ${scale}`);
    });
    // a worker's error comes back as a rejection naming it, and the pool stays usable
    const bad = { ...batch, tokens: batch.tokens.map(() => config.vocabSize + 5) };
    await assert.rejects(pool.lossAndGrad(config, weights, bad, B, T), /gradient worker \d/);
    const again = await pool.lossAndGrad(config, weights, batch, B, T);
    assert.ok(Math.abs(again.loss - one.loss) <= 1e-5 * one.loss);
  } finally {
    pool.close();
  }
});
