import assert from "node:assert/strict";
import { cacheLayout, headTable, MAX_GPU_LENGTH, Q, windowStartQ15 } from "./attention.ts";
import { MoaKvCache } from "../../cpu/sparse_cache.ts";
import { tinyConfig } from "../../random_model.ts";
import { elasticSpan, referenceWindow, type SparsePlan } from "../../spans.ts";

const config = tinyConfig({ numLayers: 2, numKvHeads: 2 });
const L = config.numLayers, NKV = config.numKvHeads;
/** Rules on the solver's grid (multiples of 2⁻¹⁵), one of them negative. */
const plan: SparsePlan = { sink: 4, alphas: [[8, -16], [0, 100]], betas: [[0, 0.5], [0.25, 0]] };

Deno.test("cacheLayout() gives a plan the CPU cache's rings, back to back per layer", () => {
  const maxLength = 200;
  const layout = cacheLayout(plan, L, NKV, maxLength);
  const cpu = new MoaKvCache(config, plan, maxLength);
  const windows = [0, 1, 2, 3].map((i) => cpu.capacity(Math.floor(i / NKV), i % NKV) - plan.sink);
  assert.deepEqual([...layout.window], windows);
  assert.deepEqual([...layout.window], [8, 84, 50, 100]); // ⌈α + β·200⌉, at most 196
  assert.deepEqual([...layout.start], [0, 4 + 8, 0, 4 + 50]);
  assert.deepEqual(layout.slotsPerSeq, [4 + 8 + 4 + 84, 4 + 50 + 4 + 100]);
  assert.equal(layout.maxSlots, 158);
  assert.deepEqual([...layout.alphaQ], [8 * Q, -16 * Q, 0, 100 * Q]);
  assert.deepEqual([...layout.betaQ], [0, Q / 2, Q / 4, 0]);
  assert.equal(layout.band, 0);
});

Deno.test("cacheLayout(null) is dense: one full-length window per head, no sink", () => {
  const layout = cacheLayout(null, L, NKV, 64);
  assert.equal(layout.sink, 0);
  assert.deepEqual([...layout.window], [64, 64, 64, 64]);
  assert.deepEqual(layout.slotsPerSeq, [128, 128]);
  assert.deepEqual([...layout.alphaQ], [64 * Q, 64 * Q, 64 * Q, 64 * Q]);
});

Deno.test("cacheLayout() under the reference semantics: the reference window and block prefill", () => {
  const ref: SparsePlan = { ...plan, sink: 8, spans: "reference", block: 8 };
  const layout = cacheLayout(ref, L, NKV, 200);
  for (let i = 0; i < 4; i++) {
    const [l, g] = [Math.floor(i / NKV), i % NKV];
    assert.equal(
      layout.window[i],
      referenceWindow(ref.alphas[l]![g]!, ref.betas[l]![g]!, 200, 8, 8),
    );
  }
  assert.deepEqual([...layout.alphaQ], [0, 0, 0, 0]); // (0, 1): decode sees the whole ring
  assert.deepEqual([...layout.betaQ], [Q, Q, Q, Q]);
  assert.equal(layout.band, 8);
});

Deno.test("cacheLayout() refuses what the kernels cannot run, naming it", () => {
  assert.throws(
    () => cacheLayout({ ...plan, betas: [[0, 1.5], [0, 0]] }, L, NKV, 64),
    /cacheLayout\(\): plan: betas\[0\]\[1\]: expected a number in \[0, 1\], got 1\.5/,
  );
  assert.throws(
    () => cacheLayout(plan, L, 3, 64),
    /cacheLayout\(\): plan: alphas\[0\]: expected 3 heads \(one per kv head\)/,
  );
  assert.throws(
    () => cacheLayout({ ...plan, alphas: [[70000, 0], [0, 0]] }, L, NKV, 64),
    /layer 0 kv head 0 has α=70000; the GPU's Q15 arithmetic holds \|α\| ≤ 65535/,
  );
  assert.throws(() => cacheLayout(plan, L, NKV, MAX_GPU_LENGTH + 1), /maxLength is 131073/);
});

Deno.test("headTable() packs (start, window, α bits, β) per head", () => {
  const layout = cacheLayout(plan, L, NKV, 200);
  const t = headTable(layout);
  assert.deepEqual([...t.subarray(4, 8)], [12, 84, (-16 * Q) >>> 0, Q / 2]);
  assert.equal(t.length, 16);
});

Deno.test("windowStartQ15() is the per-query window start of the float rule on the Q15 grid", () => {
  const layout = cacheLayout(plan, L, NKV, 200);
  for (let i = 0; i < 4; i++) {
    const [l, g] = [Math.floor(i / NKV), i % NKV];
    for (let pos = 0; pos < 200; pos++) {
      const n = pos + 1;
      const span = Math.ceil(elasticSpan(plan.alphas[l]![g]!, plan.betas[l]![g]!, n));
      const want = Math.max(plan.sink, n - Math.min(span, layout.window[i]!));
      assert.equal(windowStartQ15(layout, i, pos), want, `head ${i} at ${pos}`);
    }
  }
});
