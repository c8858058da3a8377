import assert from "node:assert/strict";
import { randomModel, tinyConfig } from "../random_model.ts";
import { Rng } from "../rng.ts";
import { tsEngine } from "./engine_ts.ts";
import { CpuModel, forwardLogits } from "./forward.ts";
import { referenceLogits } from "./_reference.ts";
import { adaptiveBudgets, poolScores, SnapKvCache, type SnapKvOptions } from "./snapkv_cache.ts";
import { assertAllClose, maxAbsDiff } from "../_testing.ts";

const config = tinyConfig({ numHeads: 4, numKvHeads: 2 });
const model = randomModel(config, 7, 8);
const cpu = new CpuModel(model, tsEngine);
const G = config.numHeads / config.numKvHeads;

const tokens = (n: number, seed: number) => {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => r.int(0, config.vocabSize - 1));
};

/** Feeds `ids` in steps of the given sizes (then one token a step); returns every logit. */
async function run(cache: SnapKvCache, ids: number[], steps: number[], before?: () => void) {
  const V = config.vocabSize, out = new Float32Array(ids.length * V);
  const sizes = [...steps];
  for (let at = 0; at < ids.length;) {
    before?.();
    const n = sizes.shift() ?? 1;
    out.set((await cpu.step([{ cache, tokens: ids.slice(at, at + n) }], "all"))[0]!, at * V);
    at += n;
  }
  return out;
}

/** [layer][kv head] → the positions the cache keeps now. */
const keptSets = (cache: SnapKvCache) =>
  Array.from(
    { length: config.numLayers },
    (_, l) => Array.from({ length: config.numKvHeads }, (_, g) => new Set(cache.kept(l, g))),
  );

for (const allocation of ["uniform", "adaptive"] as const) {
  const name = allocation === "uniform" ? "SnapKV" : "Ada-KV";
  Deno.test(`${name}: after the prompt, decoding attends over the kept keys (naive float64 forward)`, async (t) => {
    const N = 150, prompt = 120, density = 0.3;
    const ids = tokens(N, 1);
    const options: SnapKvOptions = { density, allocation, window: 8, promptLength: prompt };
    let kept: Set<number>[][] = [];
    let first: Float32Array | null = null;
    for (const steps of [[prompt], [37, 5, 1, 77]]) {
      await t.step(`prompt in steps ${steps.join("+")}, then decode`, async () => {
        const cache = new SnapKvCache(config, options, N);
        const got = await run(cache, ids, steps, () => {
          if (cache.length === prompt) kept = keptSets(cache);
        });
        // the budget: round(0.3 · 120) = 36 keys per kv head (on average over a layer's heads)
        for (const layer of kept) {
          const sizes = layer.map((s) => s.size);
          if (allocation === "uniform") assert.deepEqual(sizes, [36, 36]);
          else assert.equal(sizes[0]! + sizes[1]!, 72, `${sizes}`);
          // the observation window is always kept
          for (const s of layer) for (let p = prompt - 8; p < prompt; p++) assert.ok(s.has(p));
        }
        const want = referenceLogits(
          model,
          ids,
          (l, h, i, j) => i >= prompt && j < prompt && !kept[l]![Math.floor(h / G)]!.has(j),
        );
        assertAllClose(got, want, { atol: 1e-4 }, "logits");
        // the prompt was read whole and the same keys were kept, however it was split
        if (first) assertAllClose(got, first, { atol: 1e-5 }, "logits of the other split");
        first = got;
        assert.ok(maxAbsDiff(got, await forwardLogits(model, ids)) > 1e-2, "sparse");
        assert.equal(cache.bytes(), (2 * 72 + 2 * 2 * (N - prompt)) * 2 * config.headDim * 4);
      });
    }
  });

  Deno.test(`${name} without a prompt length compresses after every step (perplexity's way)`, async () => {
    const N = 96, chunk = 16, density = 0.25;
    const ids = tokens(N, 2);
    const cache = new SnapKvCache(config, { density, allocation, window: 8 }, N);
    const keptBefore: Set<number>[][][] = [];
    const got = await run(cache, ids, Array(N / chunk).fill(chunk), () => {
      keptBefore.push(keptSets(cache));
    });
    const want = referenceLogits(model, ids, (l, h, i, j) => {
      const c = Math.floor(i / chunk);
      return j < c * chunk && !keptBefore[c]![l]![Math.floor(h / G)]!.has(j);
    });
    assertAllClose(got, want, { atol: 1e-4 }, "logits");
    let total = 0;
    for (const layer of keptSets(cache)) for (const s of layer) total += s.size;
    assert.equal(total, config.numLayers * config.numKvHeads * Math.round(density * N));
  });
}

/**
 * One layer, two kv heads of one query head each, HS = 2, keys and queries set by hand: the kept
 * positions against the selection written out in float64.
 */
Deno.test("SnapKV and Ada-KV keep the window and the best-pooled keys", async (t) => {
  const small = tinyConfig({ numLayers: 1, numHeads: 2, numKvHeads: 2, headDim: 2 });
  const n = 24, w = 4, density = 0.5; // budget 12: the window and 8 more per head
  const r = new Rng(3);
  // head 0 attends evenly; head 1 is sharp (large keys in a few places)
  const k = Array.from({ length: n }, (_, p) => [
    [r.normal() * 0.3, r.normal() * 0.3],
    [p % 7 === 2 ? 4 + r.next() : r.normal() * 0.3, r.normal()],
  ]);
  const q = Array.from({ length: n }, () => [[r.normal(), r.normal()], [2 + r.next(), r.normal()]]);
  const probsSum = (h: number) => {
    // mean over the window's queries of each query's softmax over the keys it sees
    const s = new Float64Array(n);
    for (let i = n - w; i < n; i++) {
      const logit = Array.from(
        { length: i + 1 },
        (_, j) => (q[i]![h]![0]! * k[j]![h]![0]! + q[i]![h]![1]! * k[j]![h]![1]!) / Math.SQRT2,
      );
      const top = Math.max(...logit), e = logit.map((x) => Math.exp(x - top));
      const z = e.reduce((a, b) => a + b, 0);
      e.forEach((x, j) => (s[j]! += x / z / w));
    }
    return s.slice(0, n - w); // candidates: before the window
  };
  /** each head's scores, max-pooled over `kernel` neighbours */
  const pool = (kernel: number) =>
    [0, 1].map((h) => {
      const s = probsSum(h), r = (kernel - 1) / 2;
      return s.map((_, c) => Math.max(...s.slice(Math.max(0, c - r), c + r + 1)));
    });
  const best = (pooled: Float64Array[], h: number, m: number) =>
    Array.from(pooled[h]!.keys()).sort((a, b) => pooled[h]![b]! - pooled[h]![a]! || b - a)
      .slice(0, m).sort((a, b) => a - b);
  const keptBy = async (allocation: "uniform" | "adaptive", kernel: number) => {
    const cache = new SnapKvCache(small, {
      density,
      allocation,
      window: w,
      kernel,
      promptLength: n,
    });
    const flat = (x: number[][][]) => Float32Array.from(x.flat(2));
    await cache.attend(
      0,
      new Float32Array(n * 4),
      flat(q),
      flat(k),
      Float32Array.from({ length: n * 4 }, () => r.normal()),
      n,
      tsEngine,
    );
    cache.commit(n);
    return [0, 1].map((g) => cache.kept(0, g));
  };
  const window = [20, 21, 22, 23];
  for (const kernel of [1, 3]) {
    await t.step(`SnapKV: 8 per head, pooled over ${kernel}`, async () => {
      const kept = await keptBy("uniform", kernel), pooled = pool(kernel);
      for (const h of [0, 1]) {
        assert.deepEqual(kept[h], [...best(pooled, h, 8), ...window], `head ${h}`);
      }
    });
  }
  await t.step(
    "Ada-KV: 16 shared by the joint top scores, half of each head's 8 as a floor",
    async () => {
      const pooled = pool(3);
      const joint = [0, 1].flatMap((h) => [...pooled[h]!].map((s) => ({ h, s })))
        .sort((a, b) => b.s - a.s).slice(0, 16);
      const wins = [0, 1].map((h) => joint.filter((x) => x.h === h).length);
      const share = wins.map((c) => 4 + c / 2); // floor 0.5 · 8 + 0.5 · c
      assert.notEqual(wins[0], wins[1], "the two heads' scores differ in kind");
      const kept = await keptBy("adaptive", 3);
      const sizes = kept.map((x) => x.length - w);
      assert.equal(sizes[0]! + sizes[1]!, 16);
      for (const h of [0, 1]) assert.ok(Math.abs(sizes[h]! - share[h]!) <= 0.5, `${sizes}`);
      for (const h of [0, 1]) {
        assert.deepEqual(kept[h], [...best(pooled, h, sizes[h]!), ...window]);
      }
    },
  );
});

Deno.test("poolScores() and adaptiveBudgets() against hand-worked values", () => {
  const s = Float64Array.from([0, 3, 0, 0, 1, 0, 6]);
  assert.deepEqual([...poolScores(s, 3, "max")], [3, 3, 3, 1, 1, 6, 6]);
  // the mean counts entries past either end as 0, as SnapKV's zero-padded average pool does
  assertAllClose(poolScores(s, 3, "mean"), [1, 1, 1, 1 / 3, 1 / 3, 7 / 3, 2], { atol: 1e-12 });
  // head 0 has every top score: it takes B·(1 − floor) more than its floor
  const a = Float64Array.from([9, 8, 7, 6, 5]), b = Float64Array.from([1, 1, 1, 1, 1]);
  assert.deepEqual(adaptiveBudgets([a, b], 2, 0.5), [3, 1]);
  assert.deepEqual(adaptiveBudgets([a, b], 2, 1), [2, 2]);
  assert.deepEqual(adaptiveBudgets([a, b], 2, 0), [4, 0]);
  // a head cannot keep more than it holds: the rest goes to the next best scores
  assert.deepEqual(adaptiveBudgets([Float64Array.from([9]), b], 3, 0), [1, 5]);
});

Deno.test("SnapKvCache rejects settings it cannot use", () => {
  assert.throws(() => new SnapKvCache(config, { density: 0 }), /density is 0; expected a number/);
  assert.throws(
    () => new SnapKvCache(config, { density: 0.5, kernel: 4 }),
    /kernel is 4; expected odd/,
  );
  assert.throws(
    () => new SnapKvCache(config, { density: 0.5, promptLength: 0 }),
    /promptLength is 0; expected an integer ≥ 1/,
  );
});
