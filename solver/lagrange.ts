/**
 * A Lagrangian solver for the MoA rule-assignment problem ({@link Problem}), used before HiGHS
 * when each layer may use only a few distinct rules. The coupling constraints (one density
 * bound per length, and any ε-constraints) are priced by multipliers μ; what remains splits into
 * one small problem per layer, solved exactly: every set of at most `limit` rules is tried and
 * each head takes its cheapest rule in the set. So for every μ,
 *
 *   g(μ) = Σ_layers min_{set, assignment} Σ_h (cost_h(r) + μ·a_h(r)) − Σ_k (μ_k⁺·U_k − μ_k⁻·L_k)
 *
 * is a lower bound on the optimum (weak duality), and it is at least as tight as the LP bound
 * HiGHS starts from (the per-layer problems keep their integrality). g is concave and piecewise
 * linear in a handful of variables, so it is maximised by a trust-region cutting-plane (bundle)
 * method: every evaluation adds the cut g(μ') ≤ g(μ) + s·(μ' − μ) with s the subgradient, and the
 * next μ maximises the cuts within a box around the best point (a 5-variable LP, solved by
 * HiGHS). Plans come from the per-layer solutions: feasible ones directly, infeasible ones by
 * pricing the violated constraints up until they hold; each is then improved by cost-lowering
 * moves that keep every constraint and the distinct limit. The solver stops when the best plan is
 * within the requested gap of the best bound, and otherwise reports the gap it reached.
 *
 * @module
 */
import { loadHighs } from "./highs.ts";
import type { Problem } from "./problem.ts";
import { Rng } from "../runtime/rng.ts";

/** Options of {@link solveLagrange}. */
export interface LagrangeOptions {
  /** Relative gap (best plan − best bound) / |best plan| at which to stop. @default 1e-3 */
  gap?: number;
  /** Most subgradient iterations. @default 3000 */
  maxIterations?: number;
  /** Wall-clock limit in seconds. @default 30 */
  timeLimit?: number;
}

/** What {@link solveLagrange} found. */
export interface LagrangeResult {
  /** the best feasible plan's rule per head, or null when none was found */
  choice: number[] | null;
  /** its cost (the weighted objective), Infinity when none */
  primal: number;
  /** the best lower bound g(μ) proved */
  bound: number;
  /** (primal − bound) / max(|primal|, tiny) */
  gap: number;
  /** subgradient iterations run */
  iterations: number;
  /** wall-clock seconds */
  seconds: number;
}

interface Layer {
  heads: number[];
  /** rule sets tried: each a list of rule indices (size ≤ limit) */
  sets: number[][];
}

/** Every subset of {0..n−1} of size 1..k, in lexicographic order (n choose ≤ k of them). */
function subsets(n: number, k: number): number[][] {
  const out: number[][] = [];
  const cur: number[] = [];
  const rec = (start: number) => {
    if (cur.length > 0) out.push([...cur]);
    if (cur.length === k) return;
    for (let i = start; i < n; i++) {
      cur.push(i);
      rec(i + 1);
      cur.pop();
    }
  };
  rec(0);
  return out;
}

/** Multipliers beyond this many times their natural scale mean the dual has diverged. */
const DIVERGED = 1e12;

/**
 * Solves the problem for one objective weighting by Lagrangian relaxation of its constraints.
 *
 * @param p the problem (distinct-rules limit optional; `allowed` respected)
 * @param cost the combined cost [head][rule] to minimise
 * @param opts gap, iteration and time limits
 * @returns the best plan, the best bound and their gap
 *
 * @example
 * ```ts
 * import { solveLagrange } from "./lagrange.ts";
 * const p = {
 *   groups: 2, choices: 2, objectives: [[[0, 5], [0, 1]]],
 *   constraints: [{ name: "budget", coef: [[2, 1], [2, 1]], lower: -Infinity, upper: 3 }],
 * };
 * const r = await solveLagrange(p, p.objectives[0]!, { gap: 0 });
 * console.log(r.choice, r.primal); // [0, 1] 1
 * ```
 */
export async function solveLagrange(
  p: Problem,
  cost: number[][],
  opts: LagrangeOptions = {},
): Promise<LagrangeResult> {
  const highs = await loadHighs();
  const t0 = performance.now();
  const target = opts.gap ?? 1e-3;
  const maxIt = opts.maxIterations ?? 3000;
  const deadline = t0 + 1000 * (opts.timeLimit ?? 30);
  const H = p.groups, R = p.choices, m = p.constraints.length;
  const allowed = (h: number, r: number) => p.allowed?.[h]?.[r] ?? true;
  // layers and their candidate rule sets
  const d = p.maxDistinctPerLayer;
  const layerOf = d ? d.layerOfHead : Array.from({ length: H }, (_, h) => h);
  const byLayer = new Map<number, number[]>();
  layerOf.forEach((l, h) => {
    if (!byLayer.has(l)) byLayer.set(l, []);
    byLayer.get(l)!.push(h);
  });
  const limit = d ? d.limit : 1;
  const layers: Layer[] = [...byLayer.values()].map((heads) => {
    if (!d) return { heads, sets: [] }; // no limit: every head free
    const usable = [...Array(R).keys()].filter((r) => heads.some((h) => allowed(h, r)));
    return { heads, sets: subsets(usable.length, limit).map((s) => s.map((i) => usable[i]!)) };
  });
  // constraint data as flat arrays
  const coef = p.constraints.map((c) => c.coef);
  const lo = p.constraints.map((c) => c.lower), hi = p.constraints.map((c) => c.upper);
  const scale = p.constraints.map((c) => {
    let s = 0;
    for (const row of c.coef) for (const v of row) s = Math.max(s, Math.abs(v));
    return s || 1;
  });
  const mu = new Float64Array(m);
  const price = new Float64Array(H * R);
  const choice = new Int32Array(H);

  const rowValue = (ch: ArrayLike<number>) => {
    const v = new Float64Array(m);
    for (let k = 0; k < m; k++) {
      let s = 0;
      for (let h = 0; h < H; h++) s += coef[k]![h]![ch[h]!]!;
      v[k] = s;
    }
    return v;
  };
  const costOf = (ch: ArrayLike<number>) => {
    let s = 0;
    for (let h = 0; h < H; h++) s += cost[h]![ch[h]!]!;
    return s;
  };
  const violation = (v: Float64Array) => {
    let s = 0;
    for (let k = 0; k < m; k++) {
      s += Math.max(0, v[k]! - hi[k]!) / scale[k]! + Math.max(0, lo[k]! - v[k]!) / scale[k]!;
    }
    return s;
  };

  /** Solves every layer at the current μ into `choice`; returns Σ of the priced costs. */
  const relax = (): number => {
    for (let h = 0; h < H; h++) {
      for (let r = 0; r < R; r++) {
        let c = allowed(h, r) ? cost[h]![r]! : Infinity;
        for (let k = 0; k < m; k++) c += mu[k]! * coef[k]![h]![r]!;
        price[h * R + r] = c;
      }
    }
    let total = 0;
    for (const layer of layers) {
      if (!d) {
        for (const h of layer.heads) {
          let best = 0;
          for (let r = 1; r < R; r++) if (price[h * R + r]! < price[h * R + best]!) best = r;
          choice[h] = best;
          total += price[h * R + best]!;
        }
        continue;
      }
      let bestSet = 0, bestVal = Infinity;
      for (let s = 0; s < layer.sets.length; s++) {
        const set = layer.sets[s]!;
        let v = 0;
        for (const h of layer.heads) {
          let b = Infinity;
          for (const r of set) b = Math.min(b, price[h * R + r]!);
          v += b;
        }
        if (v < bestVal) {
          bestVal = v;
          bestSet = s;
        }
      }
      const set = layer.sets[bestSet]!;
      for (const h of layer.heads) {
        let b = set[0]!;
        for (const r of set) if (price[h * R + r]! < price[h * R + b]!) b = r;
        choice[h] = b;
      }
      total += bestVal;
    }
    for (let k = 0; k < m; k++) {
      total -= mu[k]! >= 0 ? mu[k]! * hi[k]! : mu[k]! * lo[k]!;
    }
    return total;
  };

  const layerIndex = new Int32Array(H);
  layers.forEach((layer, i) => layer.heads.forEach((h) => (layerIndex[h] = i)));

  /**
   * Cost-lowering moves that keep every constraint, in passes over the heads (each head takes
   * its best such move; with a distinct limit a head may only move within its layer's rules,
   * or anywhere when it is its rule's only user or the layer has a free slot).
   */
  const improve = (ch: Int32Array): void => {
    const v = rowValue(ch);
    const uses = layers.map(() => new Map<number, number>());
    for (let h = 0; h < H; h++) {
      const u = uses[layerIndex[h]!]!;
      u.set(ch[h]!, (u.get(ch[h]!) ?? 0) + 1);
    }
    for (let pass = 0; pass < 20; pass++) {
      let moved = false;
      for (let h = 0; h < H; h++) {
        const u = uses[layerIndex[h]!]!;
        const a = ch[h]!;
        const free = !d || u.size < limit || u.get(a) === 1;
        let best = -1, bestDrop = 1e-15;
        for (let r = 0; r < R; r++) {
          if (r === a || !allowed(h, r) || (!free && !u.has(r))) continue;
          const drop = cost[h]![a]! - cost[h]![r]!;
          if (drop <= bestDrop) continue;
          let ok = true;
          for (let k = 0; k < m && ok; k++) {
            const nv = v[k]! + coef[k]![h]![r]! - coef[k]![h]![a]!;
            const tol = 1e-9 * scale[k]!;
            if (nv > hi[k]! + tol || nv < lo[k]! - tol) ok = false;
          }
          if (ok) {
            best = r;
            bestDrop = drop;
          }
        }
        if (best < 0) continue;
        for (let k = 0; k < m; k++) v[k] = v[k]! + coef[k]![h]![best]! - coef[k]![h]![a]!;
        ch[h] = best;
        if (u.get(a) === 1) u.delete(a);
        else u.set(a, u.get(a)! - 1);
        u.set(best, (u.get(best) ?? 0) + 1);
        moved = true;
      }
      if (!moved) break;
    }
  };

  /**
   * Pair moves: one head moves to a cheaper rule that alone would break a constraint, another
   * (in a different layer) moves to a dearer one that makes room; the best pair that lowers the
   * cost and keeps every constraint and the distinct limit is applied, until none is left.
   */
  const exchange = (ch: Int32Array): boolean => {
    let changed = false;
    const v = rowValue(ch);
    for (let round = 0; round < 200; round++) {
      const uses = layers.map(() => new Map<number, number>());
      for (let h = 0; h < H; h++) {
        const u = uses[layerIndex[h]!]!;
        u.set(ch[h]!, (u.get(ch[h]!) ?? 0) + 1);
      }
      type Move = { h: number; r: number; dc: number; da: Float64Array };
      const gains: Move[] = [], pays: Move[] = [];
      for (let h = 0; h < H; h++) {
        const u = uses[layerIndex[h]!]!;
        const a = ch[h]!;
        const free = !d || u.size < limit || u.get(a) === 1;
        for (let r = 0; r < R; r++) {
          if (r === a || !allowed(h, r) || (!free && !u.has(r))) continue;
          const dc = cost[h]![r]! - cost[h]![a]!;
          const da = new Float64Array(m);
          for (let k = 0; k < m; k++) da[k] = coef[k]![h]![r]! - coef[k]![h]![a]!;
          (dc < 0 ? gains : pays).push({ h, r, dc, da });
        }
      }
      gains.sort((x, y) => x.dc - y.dc);
      pays.sort((x, y) => x.dc - y.dc);
      const G = gains.slice(0, 300), P = pays.slice(0, 600);
      let best: [Move, Move] | null = null, bestDc = -1e-12;
      for (const g of G) {
        if (g.dc >= bestDc) break;
        for (const q of P) {
          if (g.dc + q.dc >= bestDc) break;
          if (layerIndex[g.h] === layerIndex[q.h]) continue;
          let ok = true;
          for (let k = 0; k < m && ok; k++) {
            const nv = v[k]! + g.da[k]! + q.da[k]!;
            const tol = 1e-9 * scale[k]!;
            if (nv > hi[k]! + tol || nv < lo[k]! - tol) ok = false;
          }
          if (ok) {
            best = [g, q];
            bestDc = g.dc + q.dc;
          }
        }
      }
      if (!best) break;
      for (const mv of best) {
        for (let k = 0; k < m; k++) v[k] = v[k]! + mv.da[k]!;
        ch[mv.h] = mv.r;
      }
      changed = true;
    }
    return changed;
  };

  /**
   * Layer moves (with a distinct limit): re-plan one whole layer, trying every rule set with
   * each head on its cheapest rule in the set at prices cost + t·μ·a for a few t, and keep the
   * best change that lowers the cost and keeps every constraint.
   */
  const relayer = (ch: Int32Array): boolean => {
    if (!d) return false;
    let changed = false;
    const v = rowValue(ch);
    for (let round = 0; round < 50; round++) {
      let best: { layer: number; assign: Int32Array; dc: number; dv: Float64Array } | null = null;
      for (const t of [0, 0.5, 1, 1.5]) {
        for (let li = 0; li < layers.length; li++) {
          const layer = layers[li]!;
          let oldCost = 0;
          const oldA = new Float64Array(m);
          for (const h of layer.heads) {
            oldCost += cost[h]![ch[h]!]!;
            for (let k = 0; k < m; k++) oldA[k] = oldA[k]! + coef[k]![h]![ch[h]!]!;
          }
          for (const set of layer.sets) {
            let newCost = 0;
            const dv = new Float64Array(m);
            const assign = new Int32Array(layer.heads.length);
            let okAllowed = true;
            layer.heads.forEach((h, i) => {
              let b = -1, bp = Infinity;
              for (const r of set) {
                if (!allowed(h, r)) continue;
                let pr = cost[h]![r]!;
                for (let k = 0; k < m; k++) pr += t * mu[k]! * coef[k]![h]![r]!;
                if (pr < bp) {
                  bp = pr;
                  b = r;
                }
              }
              if (b < 0) okAllowed = false;
              assign[i] = b;
              if (b >= 0) {
                newCost += cost[h]![b]!;
                for (let k = 0; k < m; k++) dv[k] = dv[k]! + coef[k]![h]![b]!;
              }
            });
            if (!okAllowed) continue;
            const dc = newCost - oldCost;
            if (dc >= -1e-12 || (best && dc >= best.dc)) continue;
            let ok = true;
            for (let k = 0; k < m && ok; k++) {
              dv[k] = dv[k]! - oldA[k]!;
              const nv = v[k]! + dv[k]!;
              const tol = 1e-9 * scale[k]!;
              if (nv > hi[k]! + tol || nv < lo[k]! - tol) ok = false;
            }
            if (ok) best = { layer: li, assign, dc, dv };
          }
        }
      }
      if (!best) break;
      layers[best.layer]!.heads.forEach((h, i) => (ch[h] = best!.assign[i]!));
      for (let k = 0; k < m; k++) v[k] = v[k]! + best.dv[k]!;
      changed = true;
    }
    return changed;
  };

  /** Single moves, then pair moves, until neither finds anything. */
  const polish = (ch: Int32Array): void => {
    for (let i = 0; i < 10; i++) {
      improve(ch);
      const a = exchange(ch);
      const b = relayer(ch);
      if (!a && !b) break;
    }
  };

  /** A feasible plan from the relaxation along μ + θ·dir, smallest θ ≥ 0 that satisfies. */
  const along = (
    base: Float64Array,
    dir: Float64Array,
    onTheta?: (theta: number) => void,
  ): Int32Array | null => {
    // the upper sides: satisfied from some θ on when dir prices them (monotone enough to bisect)
    const at = (theta: number): Int32Array | null => {
      for (let k = 0; k < m; k++) mu[k] = base[k]! + theta * dir[k]!;
      relax();
      const v = rowValue(choice);
      for (let k = 0; k < m; k++) if (v[k]! > hi[k]! + 1e-9 * scale[k]!) return null;
      return Int32Array.from(choice);
    };
    let found = at(0);
    let lastTheta = 0;
    if (!found) {
      let loT = 0, hiT = 1;
      for (let i = 0; i < 60 && !(found = at(hiT)); i++) {
        loT = hiT;
        hiT *= 2;
      }
      if (!found) return null;
      lastTheta = hiT;
      for (let i = 0; i < 25; i++) {
        const mid = (loT + hiT) / 2;
        const f = at(mid);
        if (f) {
          found = f;
          hiT = mid;
          lastTheta = mid;
        } else {
          loT = mid;
        }
      }
    }
    mu.set(base);
    onTheta?.(lastTheta);
    if (violation(rowValue(found)) > 1e-12) return null; // a lower side broke
    polish(found);
    return found;
  };

  let bestBound = -Infinity, bestPrimal = Infinity;
  let bestChoice: Int32Array | null = null;
  const consider = (ch: Int32Array | null) => {
    if (!ch) return;
    const c = costOf(ch);
    if (c < bestPrimal) {
      bestPrimal = c;
      bestChoice = ch;
    }
  };
  // a first plan: price every constraint's upper side alike, just enough to satisfy them
  const up = new Float64Array(m);
  for (let k = 0; k < m; k++) up[k] = Number.isFinite(hi[k]!) ? 1 / scale[k]! : 0;
  const meanCost = cost.reduce((a, row) => a + Math.max(...row.filter(Number.isFinite)), 0) / H;
  for (let k = 0; k < m; k++) up[k] = up[k]! * Math.max(meanCost, 1e-12);
  let startMu = new Float64Array(m);
  {
    const first = along(new Float64Array(m), up, (theta) => {
      startMu = Float64Array.from(up.map((x) => x * theta));
    });
    consider(first);
  }
  const gapOf = () =>
    bestChoice ? (bestPrimal - bestBound) / Math.max(Math.abs(bestPrimal), 1e-12) : Infinity;
  // the bundle: cuts g(μ') ≤ value + slope·(μ' − at), and a trust region around the best μ
  const cuts: { at: Float64Array; value: number; slope: Float64Array }[] = [];
  const evaluate = (at: Float64Array): { value: number; v: Float64Array } => {
    mu.set(at);
    const value = relax();
    const v = rowValue(choice);
    const slope = new Float64Array(m);
    for (let k = 0; k < m; k++) {
      const over = v[k]! - hi[k]!, under = v[k]! - lo[k]!;
      const sk = at[k]! > 0 ? over : at[k]! < 0 ? under : over > 0 ? over : under < 0 ? under : 0;
      slope[k] = Number.isFinite(sk) ? sk : 0;
    }
    cuts.push({ at: Float64Array.from(at), value, slope });
    if (value > bestBound) bestBound = value;
    if (violation(v) <= 1e-12) {
      const ch = Int32Array.from(choice);
      polish(ch);
      consider(ch);
    }
    return { value, v };
  };
  /** The μ maximising the cuts within center ± radius (per coordinate, in units of up[k]). */
  const master = (c0: Float64Array, radius: number): { at: Float64Array; value: number } => {
    const f = (x: number) => (Number.isFinite(x) ? String(x) : x > 0 ? "+inf" : "-inf");
    const lines = ["Maximize", " obj: t", "Subject To"];
    cuts.forEach((c, i) => {
      // t − Σ slope_k μ_k ≤ value − Σ slope_k at_k
      let rhs = c.value;
      let row = ` c${i}: t`;
      for (let k = 0; k < m; k++) {
        rhs -= c.slope[k]! * c.at[k]!;
        if (c.slope[k] !== 0) {
          row += ` ${c.slope[k]! > 0 ? "-" : "+"} ${Math.abs(c.slope[k]!)} u${k}`;
        }
      }
      lines.push(`${row} <= ${rhs}`);
    });
    lines.push("Bounds", " -inf <= t <= +inf");
    for (let k = 0; k < m; k++) {
      const w = radius * (up[k]! || 1 / scale[k]!);
      let a = c0[k]! - w, b = c0[k]! + w;
      if (!Number.isFinite(hi[k]!)) b = Math.min(b, 0);
      if (!Number.isFinite(lo[k]!)) a = Math.max(a, 0);
      // multipliers this far out mean the dual is unbounded: the constraints cannot all be met
      // at once. Stop here (value NaN ends the bundle loop); the exact solver then says so.
      if (Math.max(Math.abs(a), Math.abs(b)) > DIVERGED * Math.max(up[k]!, 1)) {
        return { at: c0, value: NaN };
      }
      lines.push(` ${f(a)} <= u${k} <= ${f(b)}`);
    }
    lines.push("End", "");
    let model: ReturnType<typeof highs.createModel>;
    try {
      model = highs.createModel({ format: "lp", data: lines.join("\n") });
    } catch {
      return { at: c0, value: NaN }; // numbers HiGHS cannot read: treat as diverged
    }
    try {
      model.options.set({ output_flag: false });
      model.run();
      const x = model.getSolution().colValue;
      const at = new Float64Array(m);
      let value = NaN;
      for (let i = 0; i < x.length; i++) {
        const name = model.getColName(i);
        if (name === "t") value = x[i]!;
        else at[Number(name.slice(1))] = x[i]!;
      }
      return { at, value };
    } finally {
      model.dispose();
    }
  };

  let it = 0;
  let center: Float64Array = Float64Array.from(startMu);
  let centerValue = evaluate(center).value;
  let radius = 1;
  for (; it < maxIt && performance.now() < deadline; it++) {
    if (gapOf() <= target) break;
    const next = master(center, radius);
    if (!Number.isFinite(next.value)) break;
    const predicted = next.value - centerValue;
    if (predicted <= 1e-12 * Math.max(1, Math.abs(centerValue))) {
      // the model says the center is optimal within the box: the dual has converged there
      if (radius < 1e-6) break;
      radius /= 4;
      continue;
    }
    const { value, v } = evaluate(next.at);
    if (value >= centerValue + 0.1 * predicted) {
      center = next.at;
      centerValue = value;
      radius *= 2;
    } else {
      radius = Math.max(radius / 2, 1e-9);
    }
    if (violation(v) > 1e-12 && it % 5 === 4) {
      // a plan near these prices: push along the violated constraints until feasible
      const dir = new Float64Array(m);
      for (let k = 0; k < m; k++) {
        dir[k] = v[k]! > hi[k]! ? up[k]! : v[k]! < lo[k]! ? -(up[k]! || 1 / scale[k]!) : 0;
      }
      consider(along(next.at, dir));
    }
    if (cuts.length > 400) cuts.splice(0, cuts.length - 300);
  }
  // the bound has converged; keep looking for plans near the best prices (perturbed by a few
  // percent, then priced into feasibility and polished) until the gap or the time is reached
  const rng = new Rng(1);
  for (let tries = 0; gapOf() > target && performance.now() < deadline && tries < 10; tries++) {
    const at = Float64Array.from(center, (x) => x * (1 + 0.05 * (2 * rng.next() - 1)));
    const { v } = evaluate(at);
    if (violation(v) > 1e-12) {
      const dir = new Float64Array(m);
      for (let k = 0; k < m; k++) {
        dir[k] = v[k]! > hi[k]! ? up[k]! : v[k]! < lo[k]! ? -(up[k]! || 1 / scale[k]!) : 0;
      }
      consider(along(at, dir));
    }
    it++;
  }
  return {
    choice: bestChoice ? [...bestChoice] : null,
    primal: bestPrimal,
    bound: bestBound,
    gap: gapOf(),
    iterations: it,
    seconds: (performance.now() - t0) / 1000,
  };
}
