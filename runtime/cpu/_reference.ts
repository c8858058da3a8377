/**
 * A deliberately naive float64 forward pass, written independently of ops.ts, engine.ts and
 * kv_cache.ts so that tests can check the fast path against it. Not for use outside tests.
 *
 * @module
 */
import type { Model } from "../model.ts";

/**
 * (T, V) logits of one sequence, every sum in float64, attention recomputed per query.
 * @param drop when given, attention entries (layer, query head, i, j) for which it returns true
 *   are removed and the row's softmax renormalised over the rest
 * @param positions the RoPE position of each token (default `0..T-1`)
 */
export function referenceLogits(
  model: Model,
  tokens: number[],
  drop?: (layer: number, head: number, i: number, j: number) => boolean,
  positions?: readonly number[],
): Float64Array {
  const c = model.config, w = model.weights;
  const C = c.hiddenSize, NH = c.numHeads, NKV = c.numKvHeads, HS = c.headDim;
  const F = c.intermediateSize, V = c.vocabSize, T = tokens.length;
  const lin = (x: number[], W: Float32Array, b: Float32Array | null, out: number) =>
    Array.from({ length: out }, (_, o) => {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < x.length; i++) s += x[i]! * W[o * x.length + i]!;
      return s;
    });
  const norm = (x: number[], g: Float32Array) => {
    const ms = x.reduce((a, y) => a + y * y, 0) / x.length;
    return x.map((y, i) => (y / Math.sqrt(ms + c.rmsNormEps)) * g[i]!);
  };
  const rope = (vec: number[], pos: number) => {
    const half = HS / 2;
    const r = vec.slice();
    for (let i = 0; i < half; i++) {
      let f = Math.pow(c.ropeTheta, (-2 * i) / HS);
      if (c.ropeScaling?.type === "linear") f /= c.ropeScaling.factor;
      const a = pos * f;
      r[i] = vec[i]! * Math.cos(a) - vec[i + half]! * Math.sin(a);
      r[i + half] = vec[i + half]! * Math.cos(a) + vec[i]! * Math.sin(a);
    }
    return r;
  };
  let xs: number[][] = tokens.map((id) => Array.from(w.embed.subarray(id * C, id * C + C)));
  for (const [layer, L] of w.layers.entries()) {
    const h = xs.map((x) => norm(x, L.inputNorm));
    const qs = h.map((x) => lin(x, L.wq, L.bq, NH * HS));
    const ks = h.map((x) => lin(x, L.wk, L.bk, NKV * HS));
    const vs = h.map((x) => lin(x, L.wv, L.bv, NKV * HS));
    const headOf = (m: number[], t: number, j: number) =>
      rope(m.slice(j * HS, j * HS + HS), positions ? positions[t]! : t);
    const kr = ks.map((k, t) => Array.from({ length: NKV }, (_, j) => headOf(k, t, j)));
    xs = xs.map((x, t) => {
      const att: number[] = [];
      for (let hh = 0; hh < NH; hh++) {
        const g = Math.floor(hh / (NH / NKV));
        const qv = headOf(qs[t]!, t, hh);
        const sc = Array.from(
          { length: t + 1 },
          (_, j) =>
            drop?.(layer, hh, t, j)
              ? -Infinity
              : qv.reduce((a, y, d) => a + y * kr[j]![g]![d]!, 0) / Math.sqrt(HS),
        );
        const m = Math.max(...sc);
        const e = sc.map((s) => (s === -Infinity ? 0 : Math.exp(s - m)));
        const z = e.reduce((a, y) => a + y, 0);
        for (let d = 0; d < HS; d++) {
          let s = 0;
          for (let j = 0; j <= t; j++) s += (e[j]! / z) * vs[j]![g * HS + d]!;
          att.push(s);
        }
      }
      const o = lin(att, L.wo, null, C);
      const x1 = x.map((y, i) => y + o[i]!);
      const hn = norm(x1, L.postNorm);
      const gt = lin(hn, L.wGate, null, F);
      const up = lin(hn, L.wUp, null, F);
      const act = gt.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]!);
      const dn = lin(act, L.wDown, null, C);
      return x1.map((y, i) => y + dn[i]!);
    });
  }
  const out = new Float64Array(T * V);
  xs.forEach((x, t) => out.set(lin(norm(x, w.finalNorm), w.lmHead, null, V), t * V));
  return out;
}
