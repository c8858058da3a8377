import assert from "node:assert/strict";
import { randomWeights } from "./random_model.ts";
import type { WeightPlace } from "./hf.ts";

function collect(chunks: Iterable<Float32Array>): Float32Array {
  const parts = [...chunks].map((c) => c.slice());
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function moments(x: Float32Array): { mean: number; std: number } {
  let s = 0, ss = 0;
  for (const v of x) s += v;
  const mean = s / x.length;
  for (const v of x) ss += (v - mean) ** 2;
  return { mean, std: Math.sqrt(ss / x.length) };
}

Deno.test("randomWeights() gives each weight its own stream, whatever the order asked", () => {
  const source = randomWeights(7);
  const a: WeightPlace = { slot: "wq", layer: 1, length: 3 * 2 ** 20 + 1 };
  const b: WeightPlace = { slot: "wq", layer: 0, length: 1000 };
  const first = collect(source(a));
  const other = collect(source(b));
  assert.equal(first.length, a.length);
  assert.deepEqual(collect(randomWeights(7)(a)), first, "same seed and place, same values");
  assert.notDeepEqual(other, first.subarray(0, 1000), "another layer, another stream");
  assert.notDeepEqual(collect(randomWeights(8)(b)), other, "another seed, other values");
});

Deno.test("randomWeights() draws randomModel()'s distributions", () => {
  // 2^16 samples: the sample mean and std are within 4 standard errors of the truth
  const n = 2 ** 16, tol = (std: number) => 4 * std / Math.sqrt(n);
  const source = randomWeights(3);
  const cases: [WeightPlace["slot"], number, number][] = [
    ["wGate", 0, 0.02],
    ["embed", 0, 1],
    ["inputNorm", 1, 0.1],
  ];
  for (const [slot, mean, std] of cases) {
    const m = moments(collect(source({ slot, layer: slot === "embed" ? null : 0, length: n })));
    assert.ok(Math.abs(m.mean - mean) < tol(std), `${slot} mean ${m.mean}`);
    assert.ok(Math.abs(m.std - std) < 2 * tol(std), `${slot} std ${m.std}`);
  }
});
