import assert from "node:assert/strict";
import type { Model, ModelConfig } from "../model.ts";
import { randomModel, tinyConfig } from "../random_model.ts";
import { Rng } from "../rng.ts";
import { tsEngine } from "./engine_ts.ts";
import { CpuModel, forwardLogits } from "./forward.ts";
import type { KvCache } from "./kv_cache.ts";
import { cacheFactory } from "./method_cache.ts";
import { H2oKvCache, MoaKvCache } from "./sparse_cache.ts";
import type { SparsePlan } from "../spans.ts";
import { assertAllClose, maxAbsDiff } from "../_testing.ts";

const tokens = (n: number, V: number, seed: number) => {
  const r = new Rng(seed);
  return Array.from({ length: n }, () => r.int(0, V - 1));
};

/** Which keys a query sees: layer, kv head, query position i, key position j ≤ i. */
type Visible = (layer: number, kvHead: number, i: number, j: number) => boolean;

/**
 * A naive float64 forward where query i of kv head g attends only to the keys j ≤ i that
 * `visible` allows (no visible key: zero attention output). Straight loops, written apart from
 * the runtime's ops.
 */
function maskedLogits(model: Model, ids: number[], visible: Visible): Float64Array {
  const c = model.config, w = model.weights;
  const C = c.hiddenSize, NH = c.numHeads, NKV = c.numKvHeads, HS = c.headDim;
  const F = c.intermediateSize, V = c.vocabSize, T = ids.length, G = NH / NKV;
  const linear = (x: Float64Array, W: Float32Array, b: Float32Array | null, n: number) => {
    const y = new Float64Array(n);
    for (let o = 0; o < n; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < x.length; i++) s += x[i]! * W[o * x.length + i]!;
      y[o] = s;
    }
    return y;
  };
  const norm = (x: Float64Array, g: Float32Array) => {
    let ms = 0;
    for (const y of x) ms += y * y;
    const r = 1 / Math.sqrt(ms / x.length + c.rmsNormEps);
    return x.map((y, i) => y * r * g[i]!);
  };
  const rotate = (m: Float64Array, heads: number, pos: number) => {
    const half = HS / 2;
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const a = pos * Math.pow(c.ropeTheta, (-2 * i) / HS);
        const x0 = m[h * HS + i]!, x1 = m[h * HS + i + half]!;
        m[h * HS + i] = x0 * Math.cos(a) - x1 * Math.sin(a);
        m[h * HS + i + half] = x1 * Math.cos(a) + x0 * Math.sin(a);
      }
    }
  };
  let xs = ids.map((id) => Float64Array.from(w.embed.subarray(id * C, id * C + C)));
  for (const [l, L] of w.layers.entries()) {
    const hs = xs.map((x) => norm(x, L.inputNorm));
    const qs = hs.map((h, t) => {
      const q = linear(h, L.wq, L.bq, NH * HS);
      rotate(q, NH, t);
      return q;
    });
    const ks = hs.map((h, t) => {
      const k = linear(h, L.wk, L.bk, NKV * HS);
      rotate(k, NKV, t);
      return k;
    });
    const vs = hs.map((h) => linear(h, L.wv, L.bv, NKV * HS));
    xs = xs.map((x, i) => {
      const att = new Float64Array(NH * HS);
      for (let h = 0; h < NH; h++) {
        const g = Math.floor(h / G);
        const seen: number[] = [];
        for (let j = 0; j <= i; j++) if (visible(l, g, i, j)) seen.push(j);
        if (seen.length === 0) continue;
        const logit = seen.map((j) => {
          let s = 0;
          for (let d = 0; d < HS; d++) s += qs[i]![h * HS + d]! * ks[j]![g * HS + d]!;
          return s / Math.sqrt(HS);
        });
        const top = Math.max(...logit);
        const e = logit.map((s) => Math.exp(s - top));
        const z = e.reduce((a, b) => a + b, 0);
        seen.forEach((j, n) => {
          for (let d = 0; d < HS; d++) att[h * HS + d]! += (e[n]! / z) * vs[j]![g * HS + d]!;
        });
      }
      const o = linear(att, L.wo, null, C);
      const x1 = x.map((y, d) => y + o[d]!);
      const hn = norm(x1, L.postNorm);
      const gate = linear(hn, L.wGate, null, F), up = linear(hn, L.wUp, null, F);
      const act = gate.map((g, d) => (g / (1 + Math.exp(-g))) * up[d]!);
      const down = linear(act, L.wDown, null, C);
      return x1.map((y, d) => y + down[d]!);
    });
  }
  const out = new Float64Array(T * V);
  xs.forEach((x, t) => out.set(linear(norm(x, w.finalNorm), w.lmHead, null, V), t * V));
  return out;
}

/** MoA's rule as a mask: j < sink or i − j < clamp(α + β(i+1), 0, i+1), capped at `cap`. */
function ruleMask(plan: SparsePlan, cap: (l: number, g: number) => number = () => Infinity) {
  return (l: number, g: number, i: number, j: number) => {
    const n = i + 1;
    const span = Math.min(n, Math.max(0, plan.alphas[l]![g]! + plan.betas[l]![g]! * n));
    return j < plan.sink || i - j < Math.min(span, cap(l, g));
  };
}

/** Runs chunks then single-token decodes; returns all logits, (ΣT, V). */
async function run(
  cpu: CpuModel,
  cache: KvCache,
  ids: number[],
  chunks: number[],
): Promise<Float32Array> {
  const V = cpu.model.config.vocabSize;
  const out = new Float32Array(ids.length * V);
  let at = 0;
  const sizes = [...chunks];
  while (at < ids.length) {
    const n = sizes.shift() ?? 1;
    const logits = (await cpu.step([{ cache, tokens: ids.slice(at, at + n) }], "all"))[0]!;
    out.set(logits, at * V);
    at += n;
  }
  assert.equal(cache.length, ids.length);
  return out;
}

const uniform = (config: ModelConfig, x: number) =>
  Array.from({ length: config.numLayers }, () => new Array<number>(config.numKvHeads).fill(x));

// head size 32: decode attention runs the SIMD kernel of engine_simd.ts (other head sizes take
// its scalar loops, which engine_simd_test.ts and the caches of method_cache_test.ts cover)
const config = tinyConfig({ numHeads: 4, numKvHeads: 2, headDim: 32 });
const model = randomModel(config, 5, 8);
const cpu = new CpuModel(model, tsEngine);

Deno.test("MoaKvCache with rules spanning the whole length reproduces dense logits", async (t) => {
  const N = 200;
  const ids = tokens(N, config.vocabSize, 1);
  const dense = await forwardLogits(model, ids);
  const plans: Record<string, SparsePlan> = {
    "β = 1": { sink: 4, alphas: uniform(config, 0), betas: uniform(config, 1) },
    "α ≥ maxLength": { sink: 0, alphas: uniform(config, N), betas: uniform(config, 0) },
  };
  for (const [name, plan] of Object.entries(plans)) {
    for (const chunks of [[N], [90, 1, 5, 64]]) {
      await t.step(`${name}, chunks ${chunks.join("+")} then decode`, async () => {
        const got = await run(cpu, new MoaKvCache(config, plan, N), ids, chunks);
        assertAllClose(got, dense, { atol: 1e-5 }, "logits");
      });
    }
  }
});

Deno.test("MoaKvCache matches a naive masked float64 forward within 1e-4", async (t) => {
  const N = 180;
  const ids = tokens(N, config.vocabSize, 2);
  // layer 0: a local window of 6 and a head blind until n > 53 (α < 0);
  // layer 1: α > 0 with a fractional span, and a full head
  const plan: SparsePlan = { sink: 3, alphas: [[6, -40], [20, 0]], betas: [[0, 0.75], [0.25, 1]] };
  const want = maskedLogits(model, ids, ruleMask(plan));
  const dense = await forwardLogits(model, ids);
  for (const chunks of [[160], [37, 5, 1, 90, 27]]) {
    await t.step(`prefill ${chunks.join("+")}, then decode to ${N}`, async () => {
      const got = await run(cpu, new MoaKvCache(config, plan, N), ids, chunks);
      assertAllClose(got, want, { atol: 1e-4 }, "logits");
      // the plan really is sparse: dense logits are far from these
      assert.ok(maxAbsDiff(got, dense) > 1e-2);
    });
  }
  await t.step("without sink tokens, where early queries of a head see no key", async () => {
    const noSink = { ...plan, sink: 0 };
    const got = await run(cpu, new MoaKvCache(config, noSink, N), ids, [60, 7]);
    assertAllClose(got, maskedLogits(model, ids, ruleMask(noSink)), { atol: 1e-4 }, "logits");
  });
  await t.step("past maxLength, each window is capped at its ring's capacity", async () => {
    const M = 120;
    const cache = new MoaKvCache(config, plan, M);
    const got = await run(cpu, cache, ids, [100]);
    assertAllClose(
      got,
      maskedLogits(model, ids, ruleMask(plan, (l, g) => cache.capacity(l, g) - plan.sink)),
      { atol: 1e-4 },
      "logits",
    );
    assert.deepEqual([cache.capacity(0, 0), cache.capacity(0, 1)], [3 + 6, 3 + 50]);
    assert.deepEqual([cache.capacity(1, 0), cache.capacity(1, 1)], [3 + 50, 120]);
  });
  await t.step(
    "StreamingLLM as runs build it keeps density · n tokens: the sink inside",
    async () => {
      const density = 0.25, sink = 4;
      const cache = cacheFactory(cpu, { method: "streaming", density, sink })(N);
      const got = await run(cpu, cache, ids, [150]);
      // written out here: the sink, then a window of density·n − sink recent keys
      const visible = (_l: number, _g: number, i: number, j: number) =>
        j < sink || i - j < Math.min(i + 1, Math.max(0, density * (i + 1) - sink));
      assertAllClose(got, maskedLogits(model, ids, visible), { atol: 1e-4 }, "logits");
      const heads = config.numLayers * config.numKvHeads;
      assert.equal(cache.bytes(), heads * density * N * 2 * config.headDim * 4);
    },
  );
});

Deno.test("MoaKvCache.bytes() counts the slots each head fills", async (t) => {
  const N = 100, sink = 4, HS = config.headDim;
  // spans at N: 10, 30, 25 and N (all of the N − sink window slots)
  const plan: SparsePlan = { sink, alphas: [[10, -20], [0, 0]], betas: [[0, 0.5], [0.25, 1]] };
  const windows = [10, 30, 25, N - sink];
  const expected = (n: number) =>
    windows.reduce((a, w) => a + Math.min(n, sink) + Math.min(Math.max(0, n - sink), w), 0) *
    2 * HS * 4;
  const ids = tokens(N, config.vocabSize, 3);
  const moa = new MoaKvCache(config, plan, N);
  const dense = cpu.newCache(N);
  assert.equal(moa.bytes(), 0);
  assert.equal(moa.capacityBytes(), windows.reduce((a, w) => a + sink + w, 0) * 2 * HS * 4);
  await t.step("after prefill", async () => {
    await cpu.step([{ cache: moa, tokens: ids.slice(0, 3) }], "none");
    assert.equal(moa.bytes(), expected(3));
    await cpu.step([{ cache: moa, tokens: ids.slice(3, 30) }], "none");
    assert.equal(moa.bytes(), expected(30));
    assert.equal(moa.bytes(), (14 + 30 + 29 + 30) * 2 * HS * 4);
  });
  await t.step("after decoding to maxLength, at the plan's density", async () => {
    for (let i = 30; i < N; i++) await cpu.step([{ cache: moa, tokens: [ids[i]!] }], "none");
    await cpu.step([{ cache: dense, tokens: ids }], "none");
    assert.equal(moa.bytes(), expected(N));
    assert.equal(moa.bytes(), moa.capacityBytes());
    // density min(1, (sink + S(N)) / N) per head, averaged over heads
    const density = ((4 + 10) + (4 + 30) + (4 + 25) + 100) / (4 * N);
    assert.equal(moa.bytes() / dense.bytes(), density);
  });
});

Deno.test("MoaKvCache rejects a plan that does not fit the model", async (t) => {
  const good = () => ({ sink: 2, alphas: uniform(config, 0), betas: uniform(config, 0.5) });
  await t.step("a layer with one entry per query head", () => {
    const plan = { ...good(), alphas: [[0, 0, 0, 0], [0, 0]] };
    assert.throws(
      () => new MoaKvCache(config, plan, 64),
      /MoaKvCache: plan: alphas\[0\]: expected 2 heads \(one per kv head\), got "4 heads"/,
    );
  });
  await t.step("a negative β", () => {
    const plan = { ...good(), betas: [[0.5, 0.5], [-0.5, 0.5]] };
    assert.throws(
      () => new MoaKvCache(config, plan, 64),
      /MoaKvCache: plan: betas\[1\]\[0\]: expected a number in \[0, 1\], got -0\.5/,
    );
  });
  await t.step("a fractional sink", () => {
    assert.throws(
      () => new MoaKvCache(config, { ...good(), sink: 1.5 }, 64),
      /MoaKvCache: plan: sink: expected an integer ≥ 0, got 1\.5/,
    );
  });
});

Deno.test("H2oKvCache with a budget of the whole length reproduces dense logits", async (t) => {
  const N = 200;
  const ids = tokens(N, config.vocabSize, 4);
  const dense = await forwardLogits(model, ids);
  for (const chunks of [[N], [90, 1, 5, 64]]) {
    await t.step(`chunks ${chunks.join("+")} then decode`, async () => {
      const cache = new H2oKvCache(config, { density: 1, length: N });
      const got = await run(cpu, cache, ids, chunks);
      assertAllClose(got, dense, { atol: 1e-5 }, "logits");
      assert.equal(
        cache.bytes(),
        config.numLayers * config.numKvHeads * N * 2 * config.headDim * 4,
      );
    });
  }
});

Deno.test("H2oKvCache fed in chunks: each query sees the keys kept before its chunk and the chunk", async () => {
  // how perplexity scores H2O (a chunk at a time, evicting in between): checked against the
  // naive masked forward with the kept sets read from the cache before each chunk
  const N = 160, chunk = 16;
  const ids = tokens(N, config.vocabSize, 11);
  const cache = new H2oKvCache(config, { density: 0.25, length: N, recent: 8 });
  const keptBefore: Set<number>[][][] = [];
  const got = new Float32Array(N * config.vocabSize);
  for (let at = 0; at < N; at += chunk) {
    keptBefore.push(
      Array.from({ length: config.numLayers }, (_, l) =>
        Array.from(
          { length: config.numKvHeads },
          (_, g) => new Set(cache.kept(l, g).map((e) => e.position)),
        )),
    );
    const logits = (await cpu.step([{ cache, tokens: ids.slice(at, at + chunk) }], "all"))[0]!;
    got.set(logits, at * config.vocabSize);
  }
  const want = maskedLogits(model, ids, (l, g, i, j) => {
    const c = Math.floor(i / chunk);
    return j >= c * chunk || keptBefore[c]![l]![g]!.has(j);
  });
  assertAllClose(got, want, { atol: 1e-4 }, "logits");
  // and it is not dense attention: past the budget the logits differ
  const dense = await forwardLogits(model, ids);
  assert.ok(maxAbsDiff(got, dense) > 1e-3, "eviction changed nothing");
});

Deno.test("H2oKvCache keeps at most its budget, always with the recent tokens", async (t) => {
  const ids = tokens(120, config.vocabSize, 5);
  const cache = new H2oKvCache(config, { density: 0.25, length: 120, recent: 10 });
  assert.equal(cache.budget, 30);
  const check = () => {
    const n = cache.length;
    let kept = 0;
    for (let l = 0; l < config.numLayers; l++) {
      for (let g = 0; g < config.numKvHeads; g++) {
        const positions = cache.kept(l, g).map((e) => e.position);
        assert.equal(positions.length, Math.min(n, 30));
        assert.equal(new Set(positions).size, positions.length);
        for (let p = Math.max(0, n - 10); p < n; p++) assert.ok(positions.includes(p), `${p}`);
        kept += positions.length;
      }
    }
    assert.equal(cache.bytes(), kept * 2 * config.headDim * 4);
  };
  await t.step("after prefill and a chunk on top", async () => {
    await cpu.step([{ cache, tokens: ids.slice(0, 70) }], "none");
    check();
    await cpu.step([{ cache, tokens: ids.slice(70, 75) }], "none");
    check();
  });
  await t.step("after each decoded token", async () => {
    for (let i = 75; i < 120; i++) {
      await cpu.step([{ cache, tokens: [ids[i]!] }], "none");
      check();
    }
  });
});

Deno.test("H2oKvCache evicts the non-recent key with the lowest accumulated score", async (t) => {
  // one layer, 2 query heads sharing 1 kv head, HS = 2; budget round(0.5 · 4) = 2, recent 1
  const small = tinyConfig({ numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 2 });
  const cache = new H2oKvCache(small, { density: 0.5, length: 4, recent: 1 });
  const r = new Rng(6);
  const vs: number[][] = [];
  const attend = async (q: number[][], k: number[][]) => {
    const T = k.length;
    const v = k.map(() => [r.normal(), r.normal()]);
    vs.push(...v);
    const out = new Float32Array(T * 2 * 2);
    await cache.attend(
      0,
      out,
      Float32Array.from(q.flat()),
      Float32Array.from(k.flat()),
      Float32Array.from(v.flat()),
      T,
      tsEngine,
    );
    cache.commit(T);
    return out;
  };
  /** softmax of logits over the listed keys, float64 */
  const probs = (logits: number[]) => {
    const top = Math.max(...logits);
    const e = logits.map((x) => Math.exp(x - top));
    const z = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / z);
  };
  const mean = (js: number[]) =>
    [0, 1].map((d) => js.reduce((a, j) => a + vs[j]![d]!, 0) / js.length);
  const close = (a: ArrayLike<number>, b: ArrayLike<number>) => maxAbsDiff(a, b) <= 1e-6;

  await t.step("prefill: scores sum over queries and heads; 2 of 4 keys evicted", async () => {
    // head 0 scores 40 on keys (1, 0) and 0 on keys (0, 0); head 1 has q = 0: uniform
    const s = 40 * Math.SQRT2;
    const keys = [[1, 0], [0, 0], [1, 0], [0, 0]];
    const out = await attend(keys.map(() => [s, 0, 0, 0]), keys);
    const score = [0, 0, 0, 0];
    for (let i = 0; i < 4; i++) {
      const p0 = probs(keys.slice(0, i + 1).map((k) => 40 * k[0]!));
      for (let j = 0; j <= i; j++) score[j]! += p0[j]! + 1 / (i + 1);
    }
    // key 1 scores least, then key 2; key 3 is recent
    assert.ok(score[1]! < score[2]! && score[2]! < score[0]! && score[3]! < score[1]!);
    const kept = cache.kept(0, 0);
    assert.deepEqual(kept.map((e) => e.position), [0, 3]);
    assert.ok(close(kept.map((e) => e.score), [score[0]!, score[3]!]), JSON.stringify(kept));
    // head 1 of the last query attended uniformly over all four keys (prefill is dense)
    assert.ok(close(out.subarray(3 * 4 + 2, 3 * 4 + 4), mean([0, 1, 2, 3])));
  });
  await t.step("decode: attends over kept keys; the recent key stays though lowest", async () => {
    const before = cache.kept(0, 0).map((e) => e.score);
    const out = await attend([[0, 0, 0, 0]], [[5, 5]]);
    // both heads uniform over {0, 3, 4}: each key gains 2/3; key 4 (recent) is lowest,
    // key 3 is the lowest non-recent one
    assert.ok(close(out, [...mean([0, 3, 4]), ...mean([0, 3, 4])]));
    const kept = cache.kept(0, 0);
    assert.deepEqual(kept.map((e) => e.position), [0, 4]);
    assert.ok(close(kept.map((e) => e.score), [before[0]! + 2 / 3, 2 / 3]));
    assert.ok(before[1]! + 2 / 3 < before[0]! + 2 / 3 && 2 / 3 < before[1]! + 2 / 3);
  });
  await t.step("a chunk on top: attends over kept and new keys, evicts down to 2", async () => {
    const before = cache.kept(0, 0).map((e) => e.score);
    const out = await attend([[0, 0, 0, 0], [0, 0, 0, 0]], [[1, 2], [3, 4]]);
    // query 5 sees {0, 4, 5}, query 6 sees {0, 4, 5, 6}; scores: 4 → 2/3+2/3+1/2,
    // 5 → 2/3+1/2, 6 → 1/2 (recent); 5 then 4 are evicted
    assert.ok(close(out.subarray(0, 4), [...mean([0, 4, 5]), ...mean([0, 4, 5])]));
    assert.ok(close(out.subarray(4, 8), [...mean([0, 4, 5, 6]), ...mean([0, 4, 5, 6])]));
    const kept = cache.kept(0, 0);
    assert.deepEqual(kept.map((e) => e.position), [0, 6]);
    assert.ok(close(kept.map((e) => e.score), [before[0]! + 2 / 3 + 1 / 2, 1 / 2]));
    assert.equal(cache.bytes(), 2 * 2 * 2 * 4);
  });
});

Deno.test("H2oKvCache rejects a budget it cannot keep", async (t) => {
  await t.step("more recent tokens than the budget", () => {
    assert.throws(
      () => new H2oKvCache(config, { density: 0.1, length: 100, recent: 11 }),
      /recent is 11; expected at most the budget 10/,
    );
  });
  await t.step("a density that rounds to no keys", () => {
    assert.throws(
      () => new H2oKvCache(config, { density: 0.001, length: 100 }),
      /budget round\(0\.001 · 100\) is 0; expected an integer ≥ 1/,
    );
  });
});

Deno.test("MoaKvCache with the reference span semantics matches a naive masked forward within 1e-4", async (t) => {
  const N = 180, sink = 4, block = 4;
  const ids = tokens(N, config.vocabSize, 12);
  const plan: SparsePlan = {
    sink,
    block,
    spans: "reference",
    alphas: [[6, -40], [20, 0]],
    betas: [[0, 0.75], [0.25, 1]],
  };
  // the reference runtime's cache size for N tokens, written out: ⌊α + βN⌋, at least
  // sink + block, rounded up to whole blocks, at most N; the window is what the sink leaves
  const size = (l: number, g: number) => {
    const raw = Math.trunc(plan.alphas[l]![g]! + plan.betas[l]![g]! * N);
    return Math.min(Math.ceil(Math.max(raw, sink + block) / block) * block, N);
  };
  /** Visible keys when the step holding query i had `T` tokens. */
  const mask = (stepOf: (i: number) => number) => (l: number, g: number, i: number, j: number) => {
    const W = size(l, g) - sink;
    if (j < sink) return true;
    if (stepOf(i) === 1) return j > i - W; // decode: the ring's last W keys
    const w = Math.ceil(W / block);
    return j >= (Math.floor(i / block) - w + 1) * block && j > i - W; // whole key blocks
  };
  const dense = await forwardLogits(model, ids);
  for (const chunks of [[160], [37, 5, 1, 90, 27]]) {
    await t.step(`prefill ${chunks.join("+")}, then decode to ${N}`, async () => {
      const cache = new MoaKvCache(config, plan, N);
      assert.deepEqual(
        [[cache.capacity(0, 0), cache.capacity(0, 1)], [
          cache.capacity(1, 0),
          cache.capacity(1, 1),
        ]],
        [[8, 96], [68, 180]],
      );
      const stepOf = (i: number) => {
        let at = 0;
        for (const c of chunks) {
          if (i < at + c) return c;
          at += c;
        }
        return 1;
      };
      const got = await run(cpu, cache, ids, chunks);
      assertAllClose(got, maskedLogits(model, ids, mask(stepOf)), { atol: 1e-4 }, "logits");
      assert.ok(maxAbsDiff(got, dense) > 1e-2, "the plan is sparse");
    });
  }
  await t.step("the per-query semantics of the same rules gives other logits", async () => {
    const perQuery = await run(
      cpu,
      new MoaKvCache(config, { ...plan, spans: "per-query" }, N),
      ids,
      [160],
    );
    const reference = await run(cpu, new MoaKvCache(config, plan, N), ids, [160]);
    assert.ok(maxAbsDiff(perQuery, reference) > 1e-3);
  });
  await t.step("a sink that is not whole blocks is refused", () => {
    assert.throws(
      () => new MoaKvCache(config, { ...plan, sink: 6 }, N),
      /MoaKvCache: plan: sink: expected a multiple of block 4 \(the reference span semantics keeps whole sink blocks\), got 6/,
    );
    assert.throws(
      () => {
        const { block: _, ...noBlock } = plan;
        return new MoaKvCache(config, noBlock, N);
      },
      /MoaKvCache: plan: block: expected an integer ≥ 1 \(the reference span semantics needs it\), got nothing/,
    );
  });
});
