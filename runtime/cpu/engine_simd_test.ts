import assert from "node:assert/strict";
import { assertAllClose } from "../_testing.ts";
import { Rng } from "../rng.ts";
import { KvMemory, simdModule } from "./engine_simd.ts";
import { ENGINE_SIMD_WASM } from "./engine_simd_wasm.ts";
import { assembleSimd, wasmSource } from "./engine_simd_build.ts";

Deno.test("the embedded kernel is simdWat() assembled (rerun engine_simd_build.ts if not)", async () => {
  const bytes = await assembleSimd();
  assert.equal(
    wasmSource(bytes),
    await Deno.readTextFile(new URL("./engine_simd_wasm.ts", import.meta.url)),
  );
  assert.equal(btoa(String.fromCharCode(...bytes)), ENGINE_SIMD_WASM);
});

/**
 * Attention of G queries over the listed rows in float64, written apart from the kernel; also
 * returns each listed key's probability summed over the queries.
 */
function reference(
  K: Float32Array,
  V: Float32Array,
  q: Float32Array,
  rows: number[],
  G: number,
  HS: number,
): { out: Float64Array; probs: Float64Array } {
  const out = new Float64Array(G * HS), probs = new Float64Array(rows.length);
  for (let i = 0; i < G; i++) {
    const s = rows.map((r) => {
      let x = 0;
      for (let d = 0; d < HS; d++) x += q[i * HS + d]! * K[r * HS + d]!;
      return x / Math.sqrt(HS);
    });
    if (s.length === 0) continue;
    const m = Math.max(...s), e = s.map((x) => Math.exp(x - m)), z = e.reduce((a, b) => a + b);
    e.forEach((x, j) => {
      probs[j]! += x / z;
      for (let d = 0; d < HS; d++) out[i * HS + d]! += (x / z) * V[rows[j]! * HS + d]!;
    });
  }
  return { out, probs };
}

/** Runs KvMemory.attend on random rows and checks it against {@link reference}. */
function check(G: number, HS: number, runs: [number, number][], expectSimd: boolean) {
  const r = new Rng(G * 100 + HS + runs.length);
  const floats = 64 * HS;
  const m = new KvMemory({ layers: 2, floats, group: G, headDim: HS, maxKeys: 64, maxRuns: 3 });
  assert.equal(m.simd, expectSimd);
  for (const a of [m.k[1]!, m.v[1]!]) {
    a.set(Float32Array.from({ length: floats }, () => r.normal()));
  }
  const q = Float32Array.from({ length: G * HS + 5 }, () => r.normal());
  const flat = Int32Array.from(runs.flat());
  const out = new Float32Array(G * HS + 5).fill(7);
  const probs = new Float64Array(64);
  m.attend(1, out, 5, q, 5, flat, runs.length, probs);
  const rows = runs.flatMap(([a, n]) => Array.from({ length: n }, (_, j) => a + j));
  const want = reference(m.k[1]!, m.v[1]!, q.subarray(5), rows, G, HS);
  assertAllClose(out.subarray(5), want.out, { atol: 1e-5 }, `G ${G}, HS ${HS}, output`);
  assertAllClose(probs.subarray(0, rows.length), want.probs, { atol: 1e-5 }, "probabilities");
  assert.deepEqual([...out.subarray(0, 5)], [7, 7, 7, 7, 7]); // nothing outside the G rows
}

Deno.test("KvMemory.attend() matches float64 attention over runs of rows", async (t) => {
  const runs: [number, number][][] = [
    [[3, 1]],
    [[0, 37]], // an octet tail of 5
    [[40, 9], [0, 13], [20, 0]], // a wrapped ring with an empty run
    [[10, 16], [50, 14]],
  ];
  for (const HS of [32, 64]) {
    for (const G of [1, 2, 3, 4]) {
      await t.step(`SIMD kernel, head size ${HS}, ${G} queries`, () => {
        for (const rs of runs) check(G, HS, rs, simdModule() !== null);
      });
    }
  }
  await t.step("scalar loops (head size 8, not a multiple of 32)", () => {
    for (const rs of runs) check(2, 8, rs, false);
  });
});

Deno.test("KvMemory.attend() writes zeros when no row is listed", () => {
  for (const HS of [8, 32]) {
    const m = new KvMemory({ layers: 1, floats: 4 * HS, group: 2, headDim: HS, maxKeys: 4 });
    const out = new Float32Array(2 * HS).fill(3);
    m.attend(0, out, 0, new Float32Array(2 * HS).fill(1), 0, Int32Array.of(0, 0), 1);
    assert.deepEqual([...out], new Array(2 * HS).fill(0));
  }
});

Deno.test("the SIMD kernel is what runs here (Deno's WebAssembly has relaxed SIMD)", () => {
  assert.notEqual(simdModule(), null);
  const m = new KvMemory({ layers: 1, floats: 32, group: 1, headDim: 32, maxKeys: 1 });
  assert.ok(m.simd);
});

Deno.test("KvMemory refuses more runs or keys than it was sized for", () => {
  const m = new KvMemory({
    layers: 1,
    floats: 8 * 32,
    group: 1,
    headDim: 32,
    maxKeys: 8,
    maxRuns: 2,
  });
  const q = new Float32Array(32), out = new Float32Array(32);
  assert.throws(
    () => m.attend(0, out, 0, q, 0, Int32Array.of(0, 1, 1, 1, 2, 1), 3),
    /3 runs; at most 2/,
  );
  assert.throws(() => m.attend(0, out, 0, q, 0, Int32Array.of(0, 9), 1), /9 keys; at most 8/);
});
