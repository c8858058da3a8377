/**
 * Pruning of rules no optimum needs (optimum-preserving, for every objective weighting), so the
 * solvers and the Pareto set (`pareto.ts`) work on smaller problems.
 *
 * @module
 */
import { checkProblem, type Constraint, isAllowed, type Problem } from "./problem.ts";

/** How a constraint's bounds let a dominating rule differ: "le" (smaller is safe) etc. */
function direction(c: Constraint): "le" | "ge" | "eq" | "free" {
  const lo = Number.isFinite(c.lower);
  const hi = Number.isFinite(c.upper);
  return lo && hi ? "eq" : hi ? "le" : lo ? "ge" : "free";
}

/**
 * Whether rule a dominates rule b for head h: no worse at every objective, and in every
 * constraint's coefficient no worse in the direction its bounds allow (≤ for an upper bound, ≥
 * for a lower bound, equal for both); strictly better somewhere, or identical with a < b.
 */
function dominates(
  p: Problem,
  dirs: readonly string[],
  h: number,
  a: number,
  b: number,
): boolean {
  if (!isAllowed(p, h, a) || !isAllowed(p, h, b)) return false;
  let strict = false;
  for (const o of p.objectives) {
    const va = o[h]![a]!;
    const vb = o[h]![b]!;
    if (va > vb) return false;
    if (va < vb) strict = true;
  }
  for (let i = 0; i < p.constraints.length; i++) {
    const ca = p.constraints[i]!.coef[h]![a]!;
    const cb = p.constraints[i]!.coef[h]![b]!;
    const d = dirs[i];
    if (d === "free") continue;
    if (d === "eq" && ca !== cb) return false;
    if (d === "le") {
      if (ca > cb) return false;
      if (ca < cb) strict = true;
    }
    if (d === "ge") {
      if (ca < cb) return false;
      if (ca > cb) strict = true;
    }
  }
  return strict || a < b;
}

/** A pruned problem and the way back to the original rule indices. */
export interface Pruned {
  /** The problem over the kept rules (with `allowed` set where heads differ). */
  problem: Problem;
  /** rules[i] = the original index of the pruned problem's rule i. */
  rules: number[];
}

/**
 * Removes rules that no optimal assignment needs, for every objective weighting and every
 * extra ≤ bound on the objectives (so `paretoSet` in pareto.ts may use the pruned problem).
 *
 * Rule b is removed for head h when another rule a dominates it there: a is no worse at every
 * objective and, for each constraint, its coefficient is no larger under an upper bound, no
 * smaller under a lower bound and equal under both (a two-sided constraint such as the density
 * band ≤ budget and ≥ 0.9·budget therefore only lets exact ties go). With a distinct-rules-per-
 * layer limit, b is removed from a layer only when one rule a dominates it for every head of
 * that layer, since swapping b for a then never adds a distinct rule. Rules left for no head
 * are dropped and the rest renumbered.
 *
 * @param problem the MILP
 * @returns the smaller problem and the map back to original rule indices
 *
 * @example
 * ```ts
 * import { pruneDominated } from "./prune.ts";
 * const p = {
 *   groups: 1,
 *   choices: 3,
 *   objectives: [[[1, 2, 0]]],
 *   constraints: [{ name: "d", coef: [[1, 1, 2]], lower: -Infinity, upper: 2 }],
 * };
 * console.log(pruneDominated(p).rules); // [0, 2]: rule 1 costs more at the same density as 0
 * ```
 */
export function pruneDominated(problem: Problem): Pruned {
  checkProblem(problem);
  const p = problem;
  const dirs = p.constraints.map(direction);
  const allowed = Array.from(
    { length: p.groups },
    (_, h) => Array.from({ length: p.choices }, (_, r) => isAllowed(p, h, r)),
  );
  const d = p.maxDistinctPerLayer;
  // the groups of heads that must share a dominator: one per layer, or each head alone
  const blocks: number[][] = d
    ? [...new Set(d.layerOfHead)].map((l) => d.layerOfHead.flatMap((x, h) => (x === l ? [h] : [])))
    : Array.from({ length: p.groups }, (_, h) => [h]);
  for (const heads of blocks) {
    const drop: number[] = [];
    for (let b = 0; b < p.choices; b++) {
      const users = heads.filter((h) => isAllowed(p, h, b));
      if (users.length === 0) continue;
      for (let a = 0; a < p.choices; a++) {
        if (a !== b && users.every((h) => dominates(p, dirs, h, a, b))) {
          drop.push(b);
          break;
        }
      }
    }
    for (const b of drop) for (const h of heads) allowed[h]![b] = false;
  }
  const rules: number[] = [];
  for (let r = 0; r < p.choices; r++) if (allowed.some((row) => row[r])) rules.push(r);
  const pick = (m: number[][]) => m.map((row) => rules.map((r) => row[r]!));
  const kept = allowed.map((row) => rules.map((r) => row[r]!));
  const out: Problem = {
    groups: p.groups,
    choices: rules.length,
    objectives: p.objectives.map(pick),
    constraints: p.constraints.map((c) => ({ ...c, coef: pick(c.coef) })),
  };
  if (d) out.maxDistinctPerLayer = { layerOfHead: [...d.layerOfHead], limit: d.limit };
  if (kept.some((row) => row.some((a) => !a))) out.allowed = kept;
  return { problem: out, rules };
}
