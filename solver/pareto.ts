/**
 * The ε-constraint Pareto set of the MoA problem over its objectives, one per profiled length
 * (DESIGN.md §3.7): {@link paretoSet}.
 *
 * @module
 */
import { InputError } from "../runtime/errors.ts";
import {
  checkEachConstraint,
  checkProblem,
  type Constraint,
  dropSlackLimit,
  type Problem,
  type Solution,
} from "./problem.ts";
import { pruneDominated } from "./prune.ts";
import { type SolveOptions, solveWeighted } from "./milp.ts";

/** Options of {@link paretoSet}. */
export interface ParetoOptions extends SolveOptions {
  /** Intervals each non-primary objective's range is cut into. @default 4 */
  intervals?: number;
  /** Prune dominated rules first ({@link pruneDominated}). @default true */
  prune?: boolean;
}

/** a dominates b: no worse everywhere, better somewhere (relative tolerance 1e-9). */
function paretoDominates(a: readonly number[], b: readonly number[]): boolean {
  let strict = false;
  for (let k = 0; k < a.length; k++) {
    const tol = 1e-9 * Math.max(1, Math.abs(a[k]!), Math.abs(b[k]!));
    if (a[k]! > b[k]! + tol) return false;
    if (a[k]! < b[k]! - tol) strict = true;
  }
  return strict;
}

/**
 * The ε-constraint Pareto set (DESIGN.md §3.7): minimise each objective alone to get its range
 * [best, worst over those solutions]; then for each primary objective, cut every other
 * objective's range into `intervals` equal steps and, for every combination of upper ends,
 * minimise the primary subject to those ≤ bounds. Infeasible combinations are skipped; the
 * result keeps the non-dominated plans, each assignment once, sorted by the first objective.
 * With K objectives this is K + K·(intervals^(K−1) − 1) solves.
 *
 * @param problem the MILP (one objective per profiled length)
 * @param opts gap/time limit per solve, grid size, pruning
 * @returns the non-dominated plans (choices in the original rule indices)
 * @throws {InputError} when the constraints cannot be met at all
 *
 * @example
 * ```ts
 * import { paretoSet } from "./pareto.ts";
 * const p = { groups: 1, choices: 3, objectives: [[[0, 1, 2]], [[2, 1, 0]]], constraints: [] };
 * console.log((await paretoSet(p, { gap: 0 })).map((s) => s.choice)); // [[0], [1], [2]]
 * ```
 */
export async function paretoSet(problem: Problem, opts: ParetoOptions = {}): Promise<Solution[]> {
  checkProblem(problem);
  const intervals = opts.intervals ?? 4;
  if (!(Number.isInteger(intervals) && intervals >= 1)) {
    throw new RangeError(`intervals: expected a positive integer, got ${intervals}`);
  }
  const unlimited = dropSlackLimit(problem);
  const { problem: p, rules } = (opts.prune ?? true)
    ? pruneDominated(unlimited)
    : { problem: unlimited, rules: Array.from({ length: problem.choices }, (_, r) => r) };
  checkEachConstraint(p, []);
  const K = p.objectives.length;
  const { intervals: _, prune: __, ...solveOpts } = opts;
  const oneHot = (k: number) => Array.from({ length: K }, (_, i) => (i === k ? 1 : 0));
  const found: Solution[] = [];
  for (let k = 0; k < K; k++) {
    const s = await solveWeighted(p, oneHot(k), [], solveOpts);
    if (!s) {
      throw new InputError(
        `no assignment meets every constraint at once (${p.constraints.map((c) => c.name)})`,
      );
    }
    found.push(s);
  }
  const best = Array.from({ length: K }, (_, j) => found[j]!.objectives[j]!);
  const worst = Array.from(
    { length: K },
    (_, j) => Math.max(...found.map((s) => s.objectives[j]!)),
  );
  for (let primary = 0; primary < K; primary++) {
    const others = Array.from({ length: K }, (_, j) => j).filter((j) => j !== primary);
    const combos = intervals ** others.length;
    for (let c = 0; c < combos; c++) {
      const steps = others.map((_, i) => Math.floor(c / intervals ** i) % intervals + 1);
      if (steps.every((t) => t === intervals)) continue; // the unconstrained solve, done above
      const extra: Constraint[] = others.map((j, i) => {
        const eps = best[j]! + (worst[j]! - best[j]!) * steps[i]! / intervals;
        return {
          name: `objective${j}≤${eps}`,
          coef: p.objectives[j]!,
          lower: -Infinity,
          upper: eps + 1e-9 * Math.max(1, Math.abs(eps)),
        };
      });
      const s = await solveWeighted(p, oneHot(primary), extra, solveOpts);
      if (s) found.push(s);
    }
  }
  const seen = new Set<string>();
  const front: Solution[] = [];
  for (const s of found) {
    const key = s.choice.join(",");
    if (seen.has(key)) continue;
    seen.add(key);
    if (found.some((o) => paretoDominates(o.objectives, s.objectives))) continue;
    front.push({ ...s, choice: s.choice.map((r) => rules[r]!) });
  }
  return front.sort((a, b) => a.objectives[0]! - b.objectives[0]!);
}
