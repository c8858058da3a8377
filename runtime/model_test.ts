import assert from "node:assert/strict";
import {
  type HalfWeight,
  isHalf,
  mapMatrices,
  modelBytes,
  toHalf,
  weightBytes,
  weightLength,
  widen,
  widenInto,
  widenModel,
} from "./model.ts";
import { randomModel, tinyConfig } from "./random_model.ts";
import { Rng } from "./rng.ts";

/** Values that exercise both formats: normals, subnormals, zeros of both signs, infinities. */
function awkwardValues(): Float32Array {
  const rng = new Rng(5);
  const xs = [0, -0, 1, -2, 65504, 1e-7, -3e-8, 6e-5, Infinity, -Infinity, 1e30, -1e-30];
  for (let i = 0; i < 500; i++) xs.push(rng.normal() * 10 ** rng.int(-6, 4));
  return Float32Array.from(xs);
}

Deno.test("widenInto() decodes F16 patterns as the engine's Float16Array does", () => {
  const bits = new Uint16Array(65536).map((_, i) => i);
  const out = new Float32Array(65536);
  widenInto(out, { dtype: "F16", bits });
  const ref = new Float16Array(bits.buffer);
  for (let i = 0; i < 65536; i++) {
    if (!(Object.is(out[i], ref[i]) || (Number.isNaN(out[i]) && Number.isNaN(ref[i])))) {
      assert.fail(`pattern ${i.toString(16)}: ${out[i]} vs ${ref[i]}`);
    }
  }
});

Deno.test("widenInto() decodes BF16 as the upper half of a float32", () => {
  const rng = new Rng(2);
  const f32 = Float32Array.from({ length: 1000 }, () => rng.normal() * 100);
  const u32 = new Uint32Array(f32.buffer);
  const bits = Uint16Array.from(u32, (b) => b >>> 16);
  const out = new Float32Array(1000);
  widenInto(out, { dtype: "BF16", bits });
  for (let i = 0; i < 1000; i++) {
    const truncated = new Float32Array(new Uint32Array([u32[i]! & 0xffff0000]).buffer)[0]!;
    assert.equal(out[i], truncated, `element ${i}`);
  }
});

Deno.test("widenInto() copies a range and refuses ranges outside the weight", () => {
  const w = Float32Array.from([1, 2, 3, 4, 5]);
  const out = new Float32Array(3);
  widenInto(out, w, 2, 3);
  assert.deepEqual([...out], [3, 4, 5]);
  const h: HalfWeight = toHalf(w, "BF16");
  widenInto(out, h, 1, 2);
  assert.deepEqual([...out.subarray(0, 2)], [2, 3]);
  assert.throws(() => widenInto(out, w, 3, 3), /elements \[3, 6\) of a 5-element weight/);
  assert.throws(() => widenInto(new Float32Array(1), w, 0, 2), /into 1 values/);
});

Deno.test("toHalf() rounds as the engine's Float16Array and keeps BF16 within half an ulp", () => {
  const xs = awkwardValues();
  const f16 = toHalf(xs, "F16");
  const ref = new Uint16Array(new Float16Array(xs).buffer);
  assert.deepEqual([...f16.bits], [...ref]);
  const bf = widen(toHalf(xs, "BF16"));
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i]!;
    if (!Number.isFinite(x)) assert.equal(bf[i], x);
    else assert.ok(Math.abs(bf[i]! - x) <= 2 ** -8 * Math.abs(x), `${x} → ${bf[i]}`);
  }
});

Deno.test("weightLength(), weightBytes() and isHalf() tell the storage apart", () => {
  const f = new Float32Array(6);
  const h = toHalf(f, "F16");
  assert.deepEqual([weightLength(f), weightBytes(f), isHalf(f)], [6, 24, false]);
  assert.deepEqual([weightLength(h), weightBytes(h), isHalf(h)], [6, 12, true]);
  assert.equal(widen(f), f, "a float32 weight is not copied");
});

Deno.test("mapMatrices() keeps tied embeddings tied; modelBytes() counts each array once", () => {
  const c = tinyConfig({ tieWordEmbeddings: true, attentionBias: true });
  const m = randomModel(c, 3);
  const half = mapMatrices(m, (w) => toHalf(w, "BF16"));
  assert.equal(half.weights.lmHead, half.weights.embed);
  assert.ok(isHalf(half.weights.layers[1]!.wDown));
  assert.equal(half.weights.layers[0]!.inputNorm, m.weights.layers[0]!.inputNorm);
  const { vocabSize: V, hiddenSize: C, intermediateSize: F, numLayers: L } = c;
  const qd = c.numHeads * c.headDim, kd = c.numKvHeads * c.headDim;
  const matrices = V * C + L * (2 * C * qd + 2 * C * kd + 3 * C * F);
  const vectors = C + L * (2 * C + qd + 2 * kd);
  assert.equal(modelBytes(m), 4 * (matrices + vectors));
  assert.equal(modelBytes(half), 2 * matrices + 4 * vectors);
  const back = widenModel(half);
  assert.equal(back.weights.lmHead, back.weights.embed);
  assert.deepEqual(back.weights.layers[0]!.wq, widen(toHalf(m.weights.layers[0]!.wq, "BF16")));
});
