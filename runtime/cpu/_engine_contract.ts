/**
 * The contract every engine (`runtime/cpu/engine.ts`) keeps, checked against float64 loops
 * written here apart from the engines: `matmulT`, `matmul` (with shapes no kernel tiles evenly)
 * and causal grouped-query `attention` queried from the middle of the keys. Each engine's test
 * runs it.
 *
 * @module
 */
import { assertAllClose } from "../_testing.ts";
import { Rng } from "../rng.ts";
import type { AttentionDims, Engine } from "./engine.ts";

const M = 37, K = 53, N = 29;
/** T=5 queries at positions 3..7 over S=8 keys, NH=4, NKV=2, HS=6. */
const DIMS: AttentionDims = { T: 5, S: 8, NH: 4, NKV: 2, HS: 6, first: 3 };

/** Random inputs and their float64 results. */
function cases() {
  const r = new Rng(9);
  const normal = (n: number) => Float32Array.from({ length: n }, () => r.normal());
  const x = normal(M * K), w = normal(N * K), b = normal(K * N);
  const wantT = new Float64Array(M * N), want = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0, u = 0;
      for (let k = 0; k < K; k++) {
        s += x[m * K + k]! * w[n * K + k]!;
        u += x[m * K + k]! * b[k * N + n]!;
      }
      wantT[m * N + n] = s;
      want[m * N + n] = u;
    }
  }
  const { T, S, NH, NKV, HS } = DIMS;
  const q = normal(T * NH * HS), k = normal(NKV * S * HS), v = normal(NKV * S * HS);
  const wantA = referenceAttention(q, k, v, DIMS);
  return { x, w, b, wantT, want, q, k, v, wantA };
}

/**
 * Causal grouped-query attention in float64 loops, as `Engine.attention` defines it: query t (at
 * position first + t) of head h sees keys 0 … first + t of kv head ⌊h / (NH/NKV)⌋, softmax scaled
 * by 1/√HS.
 *
 * @param q (T, NH, HS)
 * @param k (NKV, S, HS), head-major
 * @param v (NKV, S, HS), head-major
 * @param dims sizes and the first query's position
 * @returns (T, NH, HS)
 */
export function referenceAttention(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  { T, S, NH, NKV, HS, first }: AttentionDims,
): Float64Array {
  const out = new Float64Array(T * NH * HS);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < NH; h++) {
      const g = Math.floor(h / (NH / NKV));
      const sc = Array.from({ length: first + t + 1 }, (_, j) => {
        let s = 0;
        for (let d = 0; d < HS; d++) s += q[(t * NH + h) * HS + d]! * k[(g * S + j) * HS + d]!;
        return s / Math.sqrt(HS);
      });
      const mx = Math.max(...sc);
      const e = sc.map((s) => Math.exp(s - mx));
      const z = e.reduce((a, y) => a + y, 0);
      for (let d = 0; d < HS; d++) {
        out[(t * NH + h) * HS + d] = e.reduce(
          (a, p, j) => a + (p / z) * v[(g * S + j) * HS + d]!,
          0,
        );
      }
    }
  }
  return out;
}

/**
 * Checks an engine's products and attention against float64 loops (the weight path twice, so an
 * engine that keeps constant weights is checked on its cached copy too).
 *
 * @param e the engine
 */
export async function checkEngine(e: Engine): Promise<void> {
  const c = cases();
  const out = new Float32Array(M * N);
  await e.matmulT(out, c.x, c.w, M, K, N, true);
  assertAllClose(out, c.wantT, { atol: 1e-4 }, `${e.name} matmulT`);
  out.fill(0);
  await e.matmulT(out, c.x, c.w, M, K, N, true); // a cached weight
  assertAllClose(out, c.wantT, { atol: 1e-4 }, `${e.name} matmulT, again`);
  await e.matmul(out, c.x, c.b, M, K, N);
  assertAllClose(out, c.want, { atol: 1e-4 }, `${e.name} matmul`);
  const att = new Float32Array(c.wantA.length);
  await e.attention(att, c.q, c.k, c.v, DIMS);
  assertAllClose(att, c.wantA, { atol: 1e-5 }, `${e.name} attention`);
  await checkRangeAttention(e);
}

/**
 * `rangeAttention` against float64 loops: 2 heads × 4 queries over 7 keys, query t seeing
 * [0, a) ∪ [b, e): a sink and a band, a band alone, nothing (a zero row), everything; with and
 * without the probability sums (without the empty query, which the sums cannot divide).
 */
async function checkRangeAttention(e: Engine): Promise<void> {
  const r = new Rng(10);
  const G = 2, nk = 7, HS = 8;
  const ranges = [[2, 4, 6], [0, 3, 7], [0, 5, 5], [7, 7, 7]];
  for (const withSums of [false, true]) {
    const rs = withSums ? ranges.filter(([a, b, end]) => a! > 0 || end! > b!) : ranges;
    const T = rs.length;
    const q = Float32Array.from({ length: G * T * HS }, () => r.normal());
    const keys = Float32Array.from({ length: nk * HS }, () => r.normal());
    const values = Float32Array.from({ length: nk * HS }, () => r.normal());
    const want = new Float64Array(G * T * HS), wantSums = new Float64Array(nk);
    for (let i = 0; i < G; i++) {
      rs.forEach(([a, b, end], t) => {
        const seen = [...Array(nk).keys()].filter((c) => c < a! || (c >= b! && c < end!));
        const s = seen.map((c) => {
          let x = 0;
          for (let d = 0; d < HS; d++) x += q[(i * T + t) * HS + d]! * keys[c * HS + d]!;
          return x / Math.sqrt(HS);
        });
        if (seen.length === 0) return;
        const m = Math.max(...s), w = s.map((x) => Math.exp(x - m));
        const z = w.reduce((x, y) => x + y);
        seen.forEach((c, j) => {
          wantSums[c]! += w[j]! / z;
          for (let d = 0; d < HS; d++) {
            want[(i * T + t) * HS + d]! += (w[j]! / z) * values[c * HS + d]!;
          }
        });
      });
    }
    const out = new Float32Array(G * T * HS).fill(5);
    const sums = withSums ? new Float64Array(nk).fill(1) : null;
    await e.rangeAttention(out, q, keys, values, Int32Array.from(rs.flat()), sums, {
      G,
      T,
      nk,
      HS,
    });
    assertAllClose(out, want, { atol: 1e-5 }, `${e.name} rangeAttention`);
    if (sums) assertAllClose(sums, wantSums.map((x) => x + 1), { atol: 1e-5 }, "sums");
  }
}
