import assert from "node:assert/strict";
import type { Array as JaxArray } from "@jax-js/jax";
import type { Model, ModelConfig } from "../model.ts";
import { randomModel, tinyConfig } from "../random_model.ts";
import { Rng } from "../rng.ts";
import { forwardLogits } from "../cpu/forward.ts";
import { referenceLogits } from "../cpu/_reference.ts";
import {
  attentionGrads,
  type Batch,
  disposeParams,
  initJax,
  jaxLogits,
  lossAndGrad,
  lossAndGradByLayer,
  modelFromParams,
  needsLayerwise,
  type Params,
  paramsFromModel,
  queryBlocks,
  readF32,
} from "./jax_model.ts";
import { assertAllClose, maxAbsDiff } from "../_testing.ts";

await initJax("wasm");

const ids = (n: number, V: number, seed: number) => {
  const r = new Rng(seed);
  return Int32Array.from({ length: n }, () => r.int(0, V - 1));
};

/** The tiny model of the gradient checks: C=32, 2 layers, GQA 4/2, T=16. */
const small = (over: Partial<ModelConfig> = {}) =>
  tinyConfig({
    hiddenSize: 32,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 8,
    intermediateSize: 48,
    vocabSize: 64,
    ...over,
  });

/** A response-only batch: the loss counts positions 9.. of 16 (weights 1, 1, 0.5, …). */
function batchOf(config: ModelConfig, T: number, seed: number): Batch {
  const tokens = ids(T, config.vocabSize, seed);
  const targets = ids(T, config.vocabSize, seed + 1);
  const mask = Float32Array.from({ length: T }, (_, i) => (i < 9 ? 0 : i % 3 === 0 ? 0.5 : 1));
  return { tokens, targets, mask };
}

/** Σ mask·(−log softmax(logits)[target]) / Σ mask, in float64. */
function maskedNll(logits: ArrayLike<number>, batch: Batch, V: number): number {
  let s = 0, w = 0;
  for (let t = 0; t < batch.tokens.length; t++) {
    const m = batch.mask[t]!;
    if (m === 0) continue;
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, logits[t * V + v]!);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(logits[t * V + v]! - mx);
    s += m * -(logits[t * V + batch.targets[t]!]! - mx - Math.log(z));
    w += m;
  }
  return s / w;
}

Deno.test("jaxLogits() matches the CPU runtime within 1e-4", async (t) => {
  const cases: Record<string, ModelConfig> = {
    "llama with GQA": tinyConfig({ numHeads: 4, numKvHeads: 2 }),
    "tied embeddings": tinyConfig({ tieWordEmbeddings: true }),
    "qwen2 biases": tinyConfig({ modelType: "qwen2", attentionBias: true, numKvHeads: 1 }),
    "linear RoPE scaling and theta 5e5": tinyConfig({
      ropeTheta: 5e5,
      ropeScaling: { type: "linear", factor: 4 },
    }),
  };
  for (const [name, config] of Object.entries(cases)) {
    await t.step(name, async () => {
      const model = randomModel(config, 3, 8);
      const T = 24;
      const tokens = ids(T, config.vocabSize, 1);
      const want = await forwardLogits(model, tokens);
      const params = paramsFromModel(model);
      for (const embedding of ["take", "onehot"] as const) {
        const got = await jaxLogits(config, params, tokens, T, { embedding });
        assertAllClose(got, want, { atol: 1e-4 }, `${embedding}`);
      }
      // the check can fail: a changed weight moves the logits
      const p2 = paramsFromModel({
        config,
        weights: { ...model.weights, finalNorm: model.weights.finalNorm.map((x) => x * 1.01) },
      });
      assert.ok(maxAbsDiff(await jaxLogits(config, p2, tokens, T), want) > 1e-3);
      disposeParams(params);
      disposeParams(p2);
    });
  }
});

Deno.test("modelFromParams() returns the weights paramsFromModel() was given", async (t) => {
  for (const tied of [false, true]) {
    await t.step(tied ? "tied embeddings" : "untied, with biases", async () => {
      const config = small({ tieWordEmbeddings: tied, attentionBias: !tied });
      const model = randomModel(config, 11);
      const params = paramsFromModel(model);
      const back = await modelFromParams(config, params);
      const flat = (m: Model) => [
        m.weights.embed,
        m.weights.finalNorm,
        m.weights.lmHead,
        ...m.weights.layers.flatMap((l) => Object.values(l).filter((x) => x !== null)),
      ];
      const a = flat(model), b = flat(back);
      assert.equal(b.length, a.length);
      for (const [i, x] of a.entries()) assert.deepEqual(b[i], x, `array ${i}`);
      assert.equal(back.weights.lmHead === back.weights.embed, tied);
      assert.equal(back.weights.layers[0]!.bq === null, tied);
      await assert.rejects(modelFromParams({ ...config, tieWordEmbeddings: !tied }, params), {
        name: "RangeError",
        message: `params ${tied ? "lack" : "have"} lmHead but tieWordEmbeddings is ${!tied}`,
      });
      disposeParams(params);
    });
  }
});

/** Float32 weight arrays of a model by kind, paired with their gradient leaves. */
function weightKinds(model: Model, grads: Params): [string, Float32Array, JaxArray][] {
  const w = model.weights;
  const out: [string, Float32Array, JaxArray][] = [["embed", w.embed, grads.embed]];
  for (const [l, lw] of w.layers.entries()) {
    const lg = grads.layers[l]!;
    for (
      const k of ["inputNorm", "wq", "wk", "wv", "wo", "postNorm", "wGate", "wUp", "wDown"] as const
    ) {
      out.push([`layers[${l}].${k}`, lw[k], lg[k]]);
    }
    for (const k of ["bq", "bk", "bv"] as const) {
      if (lw[k]) out.push([`layers[${l}].${k}`, lw[k], lg[k]!]);
    }
  }
  out.push(["finalNorm", w.finalNorm, grads.finalNorm]);
  if (grads.lmHead) out.push(["lmHead", w.lmHead, grads.lmHead]);
  return out;
}

/**
 * Central differences of the masked loss, each from two runs of the float32 CPU runtime with the
 * loss taken in float64 from its logits. The step divides by the perturbation actually stored,
 * fl32(w+h) − fl32(w−h).
 */
async function centralDiff(
  model: Model,
  batch: Batch,
  w: Float32Array,
  i: number,
  h: number,
): Promise<number> {
  const V = model.config.vocabSize, w0 = w[i]!;
  w[i] = w0 + h;
  const up = w[i]!;
  const lp = maskedNll(await forwardLogits(model, batch.tokens), batch, V);
  w[i] = w0 - h;
  const down = w[i]!;
  const lm = maskedNll(await forwardLogits(model, batch.tokens), batch, V);
  w[i] = w0;
  return (lp - lm) / (up - down);
}

// Finite-difference step h = 1e-2: the CPU runtime is float32, so its loss carries rounding
// noise of about 1e-7 (relative), which a central difference divides by 2h; h = 1e-2 keeps that
// below 1e-5 while the O(h²) truncation error stays below 1e-4 relative on these weights
// (measured: h = 1e-3 gave relative errors up to 7e-4 from noise alone, h = 1e-2 at most 1.4e-4).
const FD_STEP = 1e-2;
const RTOL = 1e-3;
const ATOL = 2e-5;

Deno.test("lossAndGrad() agrees with central differences of the CPU runtime", async (t) => {
  const T = 16;
  await t.step("untied qwen2-style model: two weights of every kind", async () => {
    const config = small({ modelType: "qwen2", attentionBias: true });
    const model = randomModel(config, 7, 8);
    const batch = batchOf(config, T, 5);
    const params = paramsFromModel(model);
    const { loss, grads } = await lossAndGrad(config, params, batch, 1, T);
    const want = maskedNll(await forwardLogits(model, batch.tokens), batch, config.vocabSize);
    assert.ok(Math.abs(loss - want) <= 1e-5 * want, `loss ${loss} vs ${want}`);
    const r = new Rng(21);
    let checked = 0, large = 0;
    for (const [name, w, gLeaf] of weightKinds(model, grads)) {
      const g = await readF32(gLeaf);
      // the largest |g| of 8 random entries, and one more random entry
      const picks = Array.from({ length: 8 }, () => r.int(0, w.length - 1));
      picks.sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!));
      for (const i of [picks[0]!, r.int(0, w.length - 1)]) {
        const fd = await centralDiff(model, batch, w, i, FD_STEP);
        const err = Math.abs(g[i]! - fd);
        const tol = RTOL * Math.max(Math.abs(g[i]!), Math.abs(fd)) + ATOL;
        assert.ok(err <= tol, `${name}[${i}]: jax ${g[i]} vs finite difference ${fd}`);
        checked++;
        if (Math.abs(fd) > 100 * ATOL) large++;
      }
    }
    assert.ok(checked >= 40 && large >= 20, `${checked} checked, ${large} with |grad| > 2e-3`);
    disposeParams(params);
  });
  await t.step("tied embeddings: the lookup and the output head both reach embed", async () => {
    const config = small({ tieWordEmbeddings: true });
    const model = randomModel(config, 8, 8);
    const batch = batchOf(config, T, 6);
    const params = paramsFromModel(model);
    const take = await lossAndGrad(config, params, batch, 1, T, { embedding: "take" });
    const oneHot = await lossAndGrad(config, params, batch, 1, T, { embedding: "onehot" });
    assert.equal(take.grads.lmHead, undefined);
    const g = await readF32(take.grads.embed.ref);
    assertAllClose(await readF32(oneHot.grads.embed.ref), g, { atol: 1e-6 });
    const C = config.hiddenSize;
    const unused = [...Array(config.vocabSize).keys()].find((v) => !batch.tokens.includes(v))!;
    const entries: [number, number][] = [[batch.tokens[12]!, 3], [batch.tokens[2]!, 17], [
      unused,
      5,
    ]];
    for (const [row, col] of entries) {
      const i = row * C + col;
      const fd = await centralDiff(model, batch, model.weights.embed, i, FD_STEP);
      const err = Math.abs(g[i]! - fd);
      assert.ok(err <= RTOL * Math.max(Math.abs(g[i]!), Math.abs(fd)) + ATOL, `embed[${i}]`);
    }
    disposeParams(take.grads);
    disposeParams(oneHot.grads);
    disposeParams(params);
  });
});

/**
 * An independent float64 forward of one sequence whose attention probabilities can be nudged:
 * A'[layer, head, i, j] = A + delta after the softmax (the row is not renormalised).
 * Returns the logits (T, V) and the unperturbed probabilities per layer (NH, T, T).
 */
function forward64(
  model: Model,
  tokens: Int32Array,
  nudge?: { layer: number; head: number; i: number; j: number; delta: number },
): { logits: Float64Array; probs: Float64Array[] } {
  const c = model.config, W = model.weights;
  const C = c.hiddenSize, NH = c.numHeads, NKV = c.numKvHeads, HS = c.headDim;
  const F = c.intermediateSize, V = c.vocabSize, T = tokens.length, half = HS / 2;
  const matvec = (x: Float64Array, w: Float32Array, n: number, b: Float32Array | null) => {
    const y = new Float64Array(n), k = x.length;
    for (let o = 0; o < n; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < k; i++) s += x[i]! * w[o * k + i]!;
      y[o] = s;
    }
    return y;
  };
  const norm = (x: Float64Array, g: Float32Array) => {
    let ms = 0;
    for (const v of x) ms += v * v;
    const r = 1 / Math.sqrt(ms / x.length + c.rmsNormEps);
    return x.map((v, i) => v * r * g[i]!);
  };
  const factor = c.ropeScaling?.type === "linear" ? c.ropeScaling.factor : 1;
  const rotate = (x: Float64Array, heads: number, pos: number) => {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const a = pos * Math.pow(c.ropeTheta, -2 * i / HS) / factor;
        const o = h * HS, x0 = x[o + i]!, x1 = x[o + i + half]!;
        x[o + i] = x0 * Math.cos(a) - x1 * Math.sin(a);
        x[o + i + half] = x1 * Math.cos(a) + x0 * Math.sin(a);
      }
    }
    return x;
  };
  let xs = Array.from(tokens, (id) => Float64Array.from(W.embed.subarray(id * C, (id + 1) * C)));
  const probs: Float64Array[] = [];
  for (const [l, L] of W.layers.entries()) {
    const hs = xs.map((x) => norm(x, L.inputNorm));
    const q = hs.map((h, t) => rotate(matvec(h, L.wq, NH * HS, L.bq), NH, t));
    const k = hs.map((h, t) => rotate(matvec(h, L.wk, NKV * HS, L.bk), NKV, t));
    const v = hs.map((h) => matvec(h, L.wv, NKV * HS, L.bv));
    const A = new Float64Array(NH * T * T);
    const att = xs.map(() => new Float64Array(NH * HS));
    for (let h = 0; h < NH; h++) {
      const g = Math.floor(h / (NH / NKV));
      for (let i = 0; i < T; i++) {
        const s = new Float64Array(i + 1);
        for (let j = 0; j <= i; j++) {
          for (let d = 0; d < HS; d++) s[j]! += q[i]![h * HS + d]! * k[j]![g * HS + d]!;
          s[j]! /= Math.sqrt(HS);
        }
        const mx = Math.max(...s);
        let z = 0;
        for (let j = 0; j <= i; j++) z += Math.exp(s[j]! - mx);
        for (let j = 0; j <= i; j++) {
          const a = Math.exp(s[j]! - mx) / z;
          A[(h * T + i) * T + j] = a;
          const n = nudge;
          const a2 = n && n.layer === l && n.head === h && n.i === i && n.j === j ? a + n.delta : a;
          for (let d = 0; d < HS; d++) att[i]![h * HS + d]! += a2 * v[j]![g * HS + d]!;
        }
      }
    }
    probs.push(A);
    xs = xs.map((x, t) => {
      const x1 = x.map((y, i) => y + matvec(att[t]!, L.wo, C, null)[i]!);
      const h2 = norm(x1, L.postNorm);
      const gate = matvec(h2, L.wGate, F, null), up = matvec(h2, L.wUp, F, null);
      const act = gate.map((gv, i) => gv / (1 + Math.exp(-gv)) * up[i]!);
      const down = matvec(act, L.wDown, C, null);
      return x1.map((y, i) => y + down[i]!);
    });
  }
  const logits = new Float64Array(T * V);
  xs.forEach((x, t) => logits.set(matvec(norm(x, W.finalNorm), W.lmHead, V, null), t * V));
  return { logits, probs };
}

Deno.test("attentionGrads() gives A and ∂L/∂A matching a float64 perturbed forward", async (t) => {
  const config = small();
  const model = randomModel(config, 9, 8);
  const T = 16, NH = config.numHeads, V = config.vocabSize;
  const batch = batchOf(config, T, 7);
  const params = paramsFromModel(model);
  const res = await attentionGrads(config, params, batch, T);
  const base = forward64(model, batch.tokens);
  await t.step("the loss and the probabilities (zero above the diagonal) match", () => {
    const want = maskedNll(base.logits, batch, V);
    assert.ok(Math.abs(res.loss - want) <= 1e-5 * want, `loss ${res.loss} vs ${want}`);
    assert.equal(res.probs.length, config.numLayers);
    for (const [l, p] of res.probs.entries()) {
      assert.equal(p.length, NH * T * T);
      assertAllClose(p, base.probs[l]!, { atol: 1e-5 }, `layer ${l}`);
    }
  });
  await t.step("∂L/∂A agrees with central differences at 24 entries", () => {
    // float64 throughout, so a small step: truncation O(h²) ≈ 1e-8, rounding ≈ 1e-16/h
    const h = 1e-4, r = new Rng(3);
    let large = 0;
    for (let n = 0; n < 24; n++) {
      const layer = n % config.numLayers, head = r.int(0, NH - 1);
      const i = n < 4 ? T - 1 : r.int(0, T - 1), j = r.int(0, i);
      const at = (delta: number) =>
        maskedNll(forward64(model, batch.tokens, { layer, head, i, j, delta }).logits, batch, V);
      const fd = (at(h) - at(-h)) / (2 * h);
      const g = res.grads[layer]![(head * T + i) * T + j]!;
      const tol = RTOL * Math.max(Math.abs(g), Math.abs(fd)) + 1e-6;
      assert.ok(Math.abs(g - fd) <= tol, `A[${layer}, ${head}, ${i}, ${j}]: ${g} vs ${fd}`);
      if (Math.abs(fd) > 1e-3) large++;
    }
    assert.ok(large >= 12, `only ${large} entries with |∂L/∂A| > 1e-3`);
  });
  await t.step("entries above the diagonal are zero", () => {
    for (const l of [0, 1]) {
      for (const [i, j] of [[0, 1], [5, 9], [14, 15]] as const) {
        assert.equal(res.probs[l]![(2 * T + i) * T + j], 0);
        assert.equal(res.grads[l]![(2 * T + i) * T + j], 0);
      }
    }
  });
  disposeParams(params);
});

Deno.test("lossAndGrad() rejects bad batches with the field and value", async (t) => {
  const config = small();
  const params = paramsFromModel(randomModel(config, 1));
  const T = 16;
  const good = batchOf(config, T, 1);
  await t.step("an out-of-vocabulary token", async () => {
    const tokens = good.tokens.slice();
    tokens[3] = 64;
    await assert.rejects(
      lossAndGrad(config, params, { ...good, tokens }, 1, T),
      { name: "RangeError", message: "tokens[3] = 64 is outside the vocabulary [0, 64)" },
    );
  });
  await t.step("a targets array of the wrong length", async () => {
    await assert.rejects(
      lossAndGrad(config, params, { ...good, targets: good.targets.subarray(1) }, 1, T),
      { name: "RangeError", message: "targets has length 15, expected 16" },
    );
  });
  await t.step("a sequence length that is not a positive integer", async () => {
    await assert.rejects(
      lossAndGrad(config, params, good, 1, 0),
      { name: "RangeError", message: "T = 0; expected an integer ≥ 1" },
    );
  });
  await t.step("a mask that selects nothing", async () => {
    await assert.rejects(
      lossAndGrad(config, params, { ...good, mask: new Float32Array(T) }, 1, T),
      { name: "RangeError", message: "mask selects no position (its sum is 0)" },
    );
  });
  disposeParams(params);
});

Deno.test("lossAndGrad() with position ids matches a float64 forward at those positions", async (t) => {
  const T = 16, B = 2;
  const config = small({ ropeTheta: 500 }); // a small base, so that the skips change every angle
  const model = randomModel(config, 11, 8);
  const rows = [batchOf(config, T, 31), batchOf(config, T, 41)];
  // row 0 jumps twice (PoSE-style chunks), row 1 is contiguous from 0
  const pos = [
    Array.from({ length: T }, (_, i) => i + (i >= 5 ? 37 : 0) + (i >= 11 ? 200 : 0)),
    Array.from({ length: T }, (_, i) => i),
  ];
  const batch: Batch = {
    tokens: Int32Array.from(rows.flatMap((r) => [...r.tokens])),
    targets: Int32Array.from(rows.flatMap((r) => [...r.targets])),
    mask: Float32Array.from(rows.flatMap((r) => [...r.mask])),
    positions: Int32Array.from(pos.flat()),
  };
  const params = paramsFromModel(model);
  await t.step("the loss equals the reference's masked mean over both rows", async () => {
    const { loss, grads } = await lossAndGrad(config, params, batch, B, T);
    disposeParams(grads);
    let s = 0, w = 0;
    rows.forEach((r, b) => {
      const logits = referenceLogits(model, [...r.tokens], undefined, pos[b]);
      const m = r.mask.reduce((a, x) => a + x, 0);
      s += maskedNll(logits, r, config.vocabSize) * m;
      w += m;
    });
    assert.ok(Math.abs(loss - s / w) <= 1e-5 * (s / w), `loss ${loss} vs reference ${s / w}`);
  });
  await t.step("the jumps matter: contiguous positions give another loss", async () => {
    const { tokens, targets, mask } = batch;
    const plain = await lossAndGrad(config, params, { tokens, targets, mask }, B, T);
    disposeParams(plain.grads);
    const { loss, grads } = await lossAndGrad(config, params, batch, B, T);
    disposeParams(grads);
    assert.ok(Math.abs(plain.loss - loss) > 1e-4, `${plain.loss} vs ${loss}`);
  });
  await t.step("a position outside the model's range is refused", async () => {
    const bad = Int32Array.from(pos.flat());
    bad[3] = config.maxPositionEmbeddings;
    await assert.rejects(
      () => lossAndGrad(config, params, { ...batch, positions: bad }, B, T),
      /positions\[3\] = \d+ is outside/,
    );
  });
  disposeParams(params);
});

/** Every gradient leaf of `got` against `want`, by name; error ≤ rtol × the leaf's largest |entry|. */
async function assertSameGrads(got: Params, want: Params, rtol: number): Promise<void> {
  const pairs: [string, JaxArray | undefined, JaxArray | undefined][] = [
    ["embed", got.embed, want.embed],
    ["finalNorm", got.finalNorm, want.finalNorm],
    ["lmHead", got.lmHead, want.lmHead],
  ];
  want.layers.forEach((lw, l) => {
    const gl = got.layers[l]! as Record<string, JaxArray | undefined>;
    assert.deepEqual(Object.keys(gl).sort(), Object.keys(lw).sort(), `layer ${l} leaves`);
    for (const [k, a] of Object.entries(lw)) pairs.push([`layers[${l}].${k}`, gl[k], a]);
  });
  for (const [name, g, w] of pairs) {
    if (!w) {
      assert.equal(g, undefined, name);
      continue;
    }
    assert.ok(g, `${name} is missing`);
    const a = await readF32(g.ref), b = await readF32(w.ref);
    const scale = b.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    assert.ok(scale > 0, `${name} is all zero in the reference`);
    const err = maxAbsDiff(a, b);
    assert.ok(err <= rtol * scale, `${name}: max error ${err} against largest entry ${scale}`);
  }
}

Deno.test("queryBlocks() cuts the query rows into as few equal blocks as the budget allows", () => {
  const config = small(); // NH = 4
  assert.deepEqual(queryBlocks(config, 1, 16), [[0, 16]]);
  // B·NH·T² = 2·4·256 = 2048 scores; at most 700 per block → 3 blocks of 6, 6, 4 rows
  assert.deepEqual(queryBlocks(config, 2, 16, 700), [[0, 6], [6, 12], [12, 16]]);
  assert.deepEqual(queryBlocks(config, 1, 5, 1), [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]);
  assert.throws(() => queryBlocks(config, 1, 5, 0), /blockScores = 0/);
  // moa-tiny (4 layers, 4 heads): one program up to T = 2,048 at B = 1, layer by layer beyond
  const tiny = tinyConfig({ numLayers: 4, numHeads: 4, numKvHeads: 2 });
  assert.equal(needsLayerwise(tiny, 1, 2048), false);
  assert.equal(needsLayerwise(tiny, 1, 4096), true);
  assert.equal(needsLayerwise(tiny, 2, 2048), true);
  // a GPU's budget: 11·4·2·4·4096²·4 B = 22 GiB fits in 48 GiB, T = 8,192 (88 GiB) does not
  assert.equal(needsLayerwise(tiny, 2, 4096, 48 * 2 ** 30), false);
  assert.equal(needsLayerwise(tiny, 2, 8192, 48 * 2 ** 30), true);
});

Deno.test("lossAndGradByLayer() gives lossAndGrad()'s loss and gradients", async (t) => {
  const T = 16, B = 2;
  const two = (config: ModelConfig, spread: boolean): Batch => {
    const rows = [batchOf(config, T, 51), batchOf(config, T, 61)];
    rows[1]!.mask.fill(0.25, 3, 9); // unequal masks: row 1 also counts positions 3..8
    const pos = [0, 1].flatMap((b) =>
      Array.from({ length: T }, (_, i) => spread && b === 0 ? i * 7 + (i >= 8 ? 90 : 0) : i)
    );
    return {
      tokens: Int32Array.from(rows.flatMap((r) => [...r.tokens])),
      targets: Int32Array.from(rows.flatMap((r) => [...r.targets])),
      mask: Float32Array.from(rows.flatMap((r) => [...r.mask])),
      ...(spread ? { positions: Int32Array.from(pos) } : {}),
    };
  };
  const cases: [string, ModelConfig, boolean][] = [
    [
      "untied qwen2-style model with biases, spread positions",
      small({ modelType: "qwen2", attentionBias: true }),
      true,
    ],
    ["tied embeddings, contiguous positions", small({ tieWordEmbeddings: true }), false],
  ];
  for (const [name, config, spread] of cases) {
    await t.step(name, async () => {
      const model = randomModel(config, 13, 8);
      const batch = two(config, spread);
      const params = paramsFromModel(model);
      const want = await lossAndGrad(config, params, batch, B, T, { layerwise: false });
      // 3 blocks of query rows (6, 6, 4), so the ∂k, ∂v of earlier keys sum over blocks
      for (const blockScores of [700, 2 ** 24]) {
        const got = await lossAndGradByLayer(config, params, batch, B, T, { blockScores });
        assert.ok(
          Math.abs(got.loss - want.loss) <= 1e-6 * want.loss,
          `${got.loss} vs ${want.loss}`,
        );
        await assertSameGrads(got.grads, want.grads, 1e-5);
        disposeParams(got.grads);
      }
      // and lossAndGrad() takes this path when asked
      const routed = await lossAndGrad(config, params, batch, B, T, {
        layerwise: true,
        blockScores: 700,
      });
      await assertSameGrads(routed.grads, want.grads, 1e-5);
      disposeParams(routed.grads);
      disposeParams(want.grads);
      disposeParams(params);
    });
  }
});
