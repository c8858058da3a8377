/**
 * Brute force over every assignment of small problems: the independent reference the solver's
 * tests (`milp_test.ts`, `prune_test.ts`, `pareto_test.ts`) compare with, and the random
 * MoA-shaped problems they use.
 *
 * @module
 */
import { Rng } from "../runtime/rng.ts";
import { evaluate, type Problem } from "./problem.ts";

/** Every feasible assignment of a small problem, with its objective vector. */
export function feasibleAssignments(p: Problem): { choice: number[]; objectives: number[] }[] {
  const out: { choice: number[]; objectives: number[] }[] = [];
  const choice = new Array<number>(p.groups).fill(0);
  const total = p.choices ** p.groups;
  for (let code = 0; code < total; code++) {
    let c = code;
    for (let h = 0; h < p.groups; h++) {
      choice[h] = c % p.choices;
      c = Math.floor(c / p.choices);
    }
    if (p.allowed && choice.some((r, h) => !p.allowed![h]![r])) continue;
    const { objectives, constraintValues } = evaluate(p, choice);
    const ok = p.constraints.every((con, i) => {
      const v = constraintValues[i]!;
      return v >= con.lower - 1e-9 && v <= con.upper + 1e-9;
    });
    if (!ok) continue;
    const d = p.maxDistinctPerLayer;
    if (d) {
      const sets = new Map<number, Set<number>>();
      choice.forEach((r, h) => {
        const l = d.layerOfHead[h]!;
        if (!sets.has(l)) sets.set(l, new Set());
        sets.get(l)!.add(r);
      });
      if ([...sets.values()].some((s) => s.size > d.limit)) continue;
    }
    out.push({ choice: [...choice], objectives });
  }
  return out;
}

/** The least weighted objective over every feasible assignment. */
export function bruteMin(p: Problem, weights: number[]): number {
  let best = Infinity;
  for (const a of feasibleAssignments(p)) {
    best = Math.min(best, weights.reduce((s, w, k) => s + w * a.objectives[k]!, 0));
  }
  return best;
}

/** The non-dominated objective vectors of every feasible assignment. */
export function bruteFront(p: Problem): number[][] {
  const pts = feasibleAssignments(p).map((a) => a.objectives);
  const dominated = (a: number[], b: number[]) =>
    a.every((v, k) => v <= b[k]!) && a.some((v, k) => v < b[k]!);
  return pts.filter((b) => !pts.some((a) => dominated(a, b)));
}

/** Equal within a relative tolerance. */
export const close = (a: number, b: number, tol = 1e-9) =>
  Math.abs(a - b) <= tol * Math.max(1, Math.abs(a), Math.abs(b));

/**
 * A random problem shaped like MoA's: `heads` heads, `rules` rules; objectives fall with a
 * per-rule "density"; one ≤ constraint and one two-sided constraint on that density.
 */
export function randomProblem(seed: number, heads = 4, rules = 5, objectives = 2): Problem {
  const rng = new Rng(seed);
  const density = Array.from({ length: rules }, () => 0.1 + 0.9 * rng.next());
  const density2 = density.map((d) => Math.min(1, d * (0.7 + 0.6 * rng.next())));
  const obj = Array.from(
    { length: objectives },
    () =>
      Array.from(
        { length: heads },
        () => density.map((d) => (1 - d) ** (1 + 4 * rng.next()) + 0.05 * rng.next()),
      ),
  );
  const budget = heads * (0.35 + 0.3 * rng.next());
  return {
    groups: heads,
    choices: rules,
    objectives: obj,
    constraints: [
      {
        name: "d1",
        coef: Array.from({ length: heads }, () => [...density]),
        lower: -Infinity,
        upper: budget,
      },
      {
        name: "d2",
        coef: Array.from({ length: heads }, () => [...density2]),
        lower: 0.5 * budget,
        upper: 1.2 * budget,
      },
    ],
  };
}
