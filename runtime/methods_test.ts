import assert from "node:assert/strict";
import {
  cacheOf,
  hasGpuCache,
  isMoa,
  METHOD_TABLE,
  METHODS,
  planRecipe,
  scoringChunk,
  streamingRules,
  windowRules,
} from "./methods.ts";
import { tinyConfig } from "./random_model.ts";
import type { SparsePlan } from "./spans.ts";

Deno.test("the method registry: names in order, MoA variants with their recipes", () => {
  assert.deepEqual(METHODS, [
    "dense",
    "moa",
    "streaming",
    "h2o",
    "moa-uniform",
    "moa-layer",
    "moa-head",
    "moa-ref",
    "moa-ctx",
    "snapkv",
    "adakv",
    "duo",
  ]);
  assert.equal(new Set(METHODS).size, METHODS.length, "names are unique");
  const moa = METHODS.filter(isMoa);
  assert.deepEqual(moa, ["moa", "moa-uniform", "moa-layer", "moa-head", "moa-ref", "moa-ctx"]);
  for (const m of moa) assert.equal(cacheOf(m), "moa", m);
  assert.deepEqual(
    moa.map((m) => `${m}: ${planRecipe(m).search}/${planRecipe(m).calibration}`),
    [
      "moa: elastic/model",
      "moa-uniform: uniform/model",
      "moa-layer: layer/model",
      "moa-head: head/model",
      "moa-ref: elastic/reference",
      "moa-ctx: elastic/context",
    ],
  );
  assert.deepEqual(
    (["dense", "streaming", "h2o", "snapkv", "adakv", "duo"] as const).map(cacheOf),
    ["dense", "streaming", "h2o", "snapkv", "adakv", "duo"],
  );
  assert.deepEqual(METHODS.filter((m) => !hasGpuCache(m)), ["h2o", "snapkv", "adakv"]);
  // every entry of the table is reachable by its name
  for (const e of METHOD_TABLE) assert.equal(cacheOf(e.name), e.cache);
});

Deno.test("scoringChunk() feeds the evicting caches a block at a time and the others whole windows", () => {
  const evicting = ["h2o", "snapkv", "adakv"];
  for (const m of evicting) assert.equal(scoringChunk(m as "h2o"), 32, m);
  for (const m of METHODS.filter((m) => !evicting.includes(m))) {
    assert.equal(scoringChunk(m), 1024, m);
  }
});

Deno.test("streamingRules() keeps density·n tokens with the sink inside", () => {
  const c = tinyConfig({ numLayers: 3, numKvHeads: 2 });
  const p = streamingRules(c, 0.25, 8);
  assert.equal(p.sink, 8);
  assert.deepEqual(p.alphas, [[-8, -8], [-8, -8], [-8, -8]]);
  assert.deepEqual(p.betas, [[0.25, 0.25], [0.25, 0.25], [0.25, 0.25]]);
  // at n = 1024 a head keeps the sink plus α + β·n = 248 window keys: 256 = 0.25·n
  assert.equal(p.sink + p.alphas[0]![0]! + p.betas[0]![0]! * 1024, 256);
  assert.throws(() => streamingRules(c, 0, 8), /density is 0; expected a number in \(0, 1\]/);
  assert.throws(() => streamingRules(c, 1.5, 8), /density is 1\.5/);
});

Deno.test("windowRules() gives the rules of the windowed methods and null for the others", () => {
  const c = tinyConfig({ numLayers: 2, numKvHeads: 2 });
  const plan: SparsePlan = { sink: 4, alphas: [[8, 0], [0, 16]], betas: [[0, 0.5], [1, 0]] };
  assert.equal(windowRules(c, { method: "dense", density: 1, sink: 0 }), null);
  for (const m of ["h2o", "snapkv", "adakv"] as const) {
    assert.equal(windowRules(c, { method: m, density: 0.5, sink: 0 }), null, m);
  }
  const s = windowRules(c, {
    method: "streaming",
    density: 0.5,
    sink: 4,
    spans: "reference",
    block: 4,
  });
  assert.deepEqual(s, { ...streamingRules(c, 0.5, 4), spans: "reference", block: 4 });
  for (const m of ["moa", "moa-layer", "duo"] as const) {
    assert.equal(windowRules(c, { method: m, density: 0.5, sink: 4, plan }), plan);
    assert.throws(
      () => windowRules(c, { method: m, density: 0.5, sink: 4 }),
      new RegExp(`method ${m} needs (a plan|its rules)`),
    );
  }
});
