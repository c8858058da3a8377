/**
 * Solving the MoA problem (`problem.ts`, DESIGN.md §3.6): {@link solveMilp} minimises one
 * objective or a weighted sum of them. Without a distinct-rules limit HiGHS (`highs.ts`) solves
 * it alone; with one, the Lagrangian solver (`lagrange.ts`) runs first and HiGHS continues with
 * its plan as a cutoff. The Pareto set over the objectives is `pareto.ts`.
 *
 * @module
 */
import { InputError } from "../runtime/errors.ts";
import {
  checkEachConstraint,
  checkProblem,
  combinedCost,
  type Constraint,
  dropSlackLimit,
  type Problem,
  type Solution,
  solutionAt,
  weightsOf,
} from "./problem.ts";
import { type HighsOptions, solveHighs } from "./highs.ts";
import { solveLagrange } from "./lagrange.ts";

/** Options of {@link solveMilp} and `paretoSet` (pareto.ts). */
export interface SolveOptions extends HighsOptions {
  /**
   * Run the Lagrangian solver first when the problem limits distinct rules per layer.
   * @default true
   */
  lagrange?: boolean;
}

/**
 * One solve of the weighted objectives with `extra` constraints. With a distinct-rules limit
 * (where HiGHS's LP bound is weak), the Lagrangian solver (`lagrange.ts`) runs first: when its
 * plan is within the gap of its bound it is the answer; otherwise HiGHS continues with that
 * plan's cost as a cutoff, within the time limit (60 s when none is given), and the better plan
 * wins, with the tighter of the two gaps.
 *
 * @param p the problem
 * @param weights one weight per objective
 * @param extra constraints added to the problem's own (ε-constraints)
 * @param opts gap, time limit, Lagrangian first or not
 * @returns the best assignment, or null when the constraints cannot all be met
 */
export async function solveWeighted(
  p: Problem,
  weights: readonly number[],
  extra: readonly Constraint[],
  opts: SolveOptions,
): Promise<Solution | null> {
  if (!p.maxDistinctPerLayer || opts.lagrange === false) {
    return await solveHighs(p, weights, extra, opts);
  }
  const t0 = performance.now();
  const gap = opts.gap ?? 1e-4;
  const full: Problem = { ...p, constraints: [...p.constraints, ...extra] };
  const cost = combinedCost(p, weights);
  const limit = opts.timeLimit ?? 60;
  const lag = await solveLagrange(full, cost, { gap, timeLimit: Math.min(limit, 30) });
  const fromLag = (): Solution => ({
    ...solutionAt(p, lag.choice!, weights),
    gap: Math.max(0, lag.gap),
    status: lag.gap <= gap ? "optimal" : "time limit",
    seconds: (performance.now() - t0) / 1000,
  });
  if (lag.choice && lag.gap <= gap) return fromLag();
  const left = limit - (performance.now() - t0) / 1000;
  if (left <= 1) return lag.choice ? fromLag() : null;
  const cutoff = lag.choice ? { objective_bound: lag.primal * (1 + 1e-9) + 1e-12 } : {};
  let h: Solution | null = null;
  try {
    h = await solveHighs(p, weights, extra, {
      ...opts,
      timeLimit: left,
      highs: { ...cutoff, ...opts.highs },
    });
  } catch (e) {
    // HiGHS found nothing better than the cutoff in time: the Lagrangian plan stands
    if (!lag.choice) throw e;
  }
  if (!h) return lag.choice ? fromLag() : null;
  if (lag.choice && lag.primal < h.objective) return fromLag();
  const bound = Number.isFinite(lag.bound) ? lag.bound : -Infinity;
  const lagGap = (h.objective - bound) / Math.max(Math.abs(h.objective), 1e-12);
  return {
    ...h,
    gap: Math.max(0, Math.min(h.gap, lagGap)),
    seconds: (performance.now() - t0) / 1000,
  };
}

/**
 * Minimises one objective (by index) or a weighted sum of objectives ({@link solveWeighted}).
 *
 * Each constraint is first checked alone against what the heads can reach at best; an
 * unreachable bound throws an `InputError` naming the constraint and the reachable value.
 *
 * @param problem the MILP
 * @param objective an objective index, or one weight per objective
 * @param opts MIP gap and time limit
 * @returns the best assignment found, with its exact objective and constraint values
 * @throws {InputError} when a constraint cannot be met, or HiGHS proves the whole set infeasible
 *
 * @example
 * ```ts
 * import { solveMilp } from "./milp.ts";
 * const p = {
 *   groups: 2,
 *   choices: 2,
 *   objectives: [[[0, 5], [0, 1]]],
 *   constraints: [{ name: "budget", coef: [[2, 1], [2, 1]], lower: -Infinity, upper: 3 }],
 * };
 * const s = await solveMilp(p, 0, { gap: 0 });
 * console.log(s.choice, s.objective); // [0, 1] 1
 * ```
 */
export async function solveMilp(
  problem: Problem,
  objective: number | readonly number[],
  opts: SolveOptions = {},
): Promise<Solution> {
  checkProblem(problem);
  const weights = weightsOf(problem, objective);
  checkEachConstraint(problem, []);
  const s = await solveWeighted(dropSlackLimit(problem), weights, [], opts);
  if (!s) {
    throw new InputError(
      `no assignment meets every constraint at once (${
        problem.constraints.map((c) => c.name).join(", ")
      }${problem.maxDistinctPerLayer ? ", distinct rules per layer" : ""})`,
    );
  }
  return s;
}
