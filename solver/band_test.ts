/**
 * The profiler's band against the cache: for a rule, the (query, key) entries profiling charges
 * as dropped (`droppedBlocks` with the band of a span semantics) must be exactly the entries the
 * cache running that semantics does not attend to. The cache's entries are read off
 * `MoaKvCache.attend` itself: with zero queries and keys every visible key gets the same weight,
 * and value t is the one-hot vector e_t, so output row i is nonzero exactly at i's visible keys.
 */
import assert from "node:assert/strict";
import { tinyConfig } from "../runtime/random_model.ts";
import { tsEngine } from "../runtime/cpu/engine_ts.ts";
import { MoaKvCache } from "../runtime/cpu/sparse_cache.ts";
import type { SpanSemantics } from "../runtime/spans.ts";
import { type BandMode, bandModeOf, droppedBlocks, type Rule, ruleKeeps } from "./rules.ts";

const N = 96;

/** What the cache drops, as a row-major (N, N) 0/1 mask of causal entries, prefilled in steps. */
async function cacheDrops(
  rule: Rule,
  sink: number,
  spans: SpanSemantics,
  block: number,
  steps: number[],
): Promise<Uint8Array> {
  const config = tinyConfig({ numLayers: 1, numHeads: 1, numKvHeads: 1, headDim: N });
  const cache = new MoaKvCache(
    config,
    { sink, alphas: [[rule.alpha]], betas: [[rule.beta]], spans, block },
    N,
  );
  const dropped = new Uint8Array(N * N);
  let at = 0;
  for (const T of steps) {
    const q = new Float32Array(T * N), k = new Float32Array(T * N), v = new Float32Array(T * N);
    for (let t = 0; t < T; t++) v[t * N + at + t] = 1; // value of position at + t is e_(at+t)
    const out = new Float32Array(T * N);
    await cache.attend(0, out, q, k, v, T, tsEngine);
    cache.commit(T);
    for (let t = 0; t < T; t++) {
      const i = at + t;
      for (let j = 0; j <= i; j++) dropped[i * N + j] = out[t * N + j]! > 0 ? 0 : 1;
    }
    at += T;
  }
  assert.equal(at, N);
  return dropped;
}

/** What profiling charges, expanded from (query block, key block) tiles to causal entries. */
function charged(rule: Rule, sink: number, block: number, mode: BandMode): Uint8Array {
  const m = droppedBlocks(rule, N, sink, block, mode);
  const out = new Uint8Array(N * N);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j <= i; j++) {
      out[i * N + j] = m.dropped[Math.floor(i / block) * m.numBlocks + Math.floor(j / block)]!;
    }
  }
  return out;
}

function firstDifference(a: Uint8Array, b: Uint8Array): string | null {
  for (let k = 0; k < a.length; k++) {
    if (a[k] !== b[k]) {
      return `query ${Math.floor(k / N)}, key ${k % N}: profiler ${a[k] ? "drops" : "keeps"}, ` +
        `cache ${b[k] ? "drops" : "keeps"}`;
    }
  }
  return null;
}

const RULES: Rule[] = [
  { alpha: 6, beta: 0 }, // a short static window
  { alpha: -40, beta: 0.75 }, // early queries see only the sink (per-query)
  { alpha: 20.5, beta: 0.25 }, // fractional spans
  { alpha: 3, beta: 0.125 },
  { alpha: 0, beta: 1 }, // dense
  { alpha: 200, beta: 0 }, // wider than the sequence
  { alpha: -500, beta: 0.5 }, // never more than the sink (per-query), the minimum (reference)
];

Deno.test("the profiler charges exactly the entries the cache drops, under each span semantics", async (t) => {
  // per-query: exact at block 1 (a tile is an entry); reference: exact at its own block
  const cases: { spans: SpanSemantics; sink: number; block: number }[] = [
    { spans: "per-query", sink: 3, block: 1 },
    { spans: "reference", sink: 8, block: 8 },
    { spans: "reference", sink: 16, block: 8 },
  ];
  for (const { spans, sink, block } of cases) {
    for (const rule of RULES) {
      await t.step(
        `${spans}, sink ${sink}, block ${block}, rule (${rule.alpha}, ${rule.beta})`,
        async () => {
          const profiler = charged(rule, sink, block, bandModeOf(spans));
          const cache = await cacheDrops(rule, sink, spans, block, [N]);
          const diff = firstDifference(profiler, cache);
          assert.equal(diff, null, diff ?? "");
          // and the token-level mask says the same
          for (let i = 0; i < N; i++) {
            for (let j = 0; j <= i; j++) {
              const keeps = ruleKeeps(rule, N, sink, i, j, spans, block);
              assert.equal(keeps, !cache[i * N + j], `ruleKeeps at query ${i}, key ${j}`);
            }
          }
        },
      );
    }
  }

  await t.step("reference: prefill in uneven steps drops the same entries", async () => {
    for (const rule of RULES) {
      const whole = await cacheDrops(rule, 8, "reference", 8, [N]);
      const steps = await cacheDrops(rule, 8, "reference", 8, [37, 2, 43, 14]);
      assert.equal(firstDifference(steps, whole), null, `rule (${rule.alpha}, ${rule.beta})`);
    }
  });

  await t.step("the static band agrees with neither cache for a rule with α < 0", async () => {
    const rule = { alpha: -40, beta: 0.75 };
    for (
      const { spans, sink, block } of [
        { spans: "per-query" as const, sink: 3, block: 1 },
        { spans: "reference" as const, sink: 8, block: 8 },
      ]
    ) {
      const cache = await cacheDrops(rule, sink, spans, block, [N]);
      assert.notEqual(firstDifference(charged(rule, sink, block, "static"), cache), null, spans);
    }
  });
});
