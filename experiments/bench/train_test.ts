import assert from "node:assert/strict";
import { randomModel, tinyConfig } from "../../runtime/random_model.ts";
import { needsLayerwise } from "../../runtime/autodiff/jax_model.ts";
import { benchTrain } from "./train.ts";

Deno.test("benchTrain() times both ways at each length and they agree on the loss", async () => {
  const model = randomModel(tinyConfig({ numLayers: 2 }), 3);
  const lines: string[] = [];
  const rows = await benchTrain({
    model,
    lengths: [24, 40],
    batch: 2,
    rounds: 2,
    log: (l) => lines.push(l),
  });
  assert.deepEqual(rows.map((r) => [r.T, r.B, r.one_program_fits]), [[24, 2, true], [40, 2, true]]);
  for (const r of rows) {
    assert.ok(!needsLayerwise(model.config, r.B, r.T));
    // the same masked mean cross-entropy computed two ways (f32, ~ln V ≈ 6)
    assert.ok(r.loss_difference < 1e-4, `T = ${r.T}: losses differ by ${r.loss_difference}`);
    for (const v of [r.one_program_tokens_per_s, r.layerwise_tokens_per_s]) {
      assert.ok(Number.isFinite(v) && v > 0, `T = ${r.T}: tokens/s ${v}`);
    }
    assert.ok(
      Math.abs(r.layerwise_vs_one - r.layerwise_tokens_per_s / r.one_program_tokens_per_s) < 1e-9,
    );
  }
  // first step and two rounds, both ways, both lengths
  assert.equal(lines.length, 3 * 2 * 2);
  assert.equal(lines.filter((l) => l.includes("layer by layer")).length, 6);
});
