/**
 * The MoA optimisation (DESIGN.md §3.6) as plain data. A {@link Problem} assigns exactly one of
 * `choices` rules to each of `groups` heads (binary x[h, r], Σ_r x[h, r] = 1). Each objective k
 * is Σ x[h, r]·objectives[k][h][r]; each constraint bounds Σ x[h, r]·coef[h][r]; optionally each
 * layer uses at most `limit` distinct rules.
 *
 * - {@link densityProblem} / {@link densityProblemFromRules}: the MoA problem from profiled
 *   losses and rule densities, with the budget's feasibility checked up front.
 * - {@link checkProblem}, {@link evaluate}, {@link checkEachConstraint}: what every solver
 *   (`highs.ts`, `lagrange.ts`, `milp.ts`, `pareto.ts`) checks and scores with.
 *
 * @module
 */
import { InputError } from "../runtime/errors.ts";
import { type Rule, ruleDensity } from "./rules.ts";
import type { SpanSemantics } from "../runtime/spans.ts";

/** One linear constraint lower ≤ Σ_h Σ_r x[h, r]·coef[h][r] ≤ upper. */
export interface Constraint {
  /** Coefficients [head][rule]. */
  coef: number[][];
  /** Lower bound; `-Infinity` for none. */
  lower: number;
  /** Upper bound; `Infinity` for none. */
  upper: number;
  /** Human-readable name, used in error messages (e.g. `density@4096`). */
  name: string;
}

/** A rule-assignment MILP as plain data. */
export interface Problem {
  /** Number of heads (groups that each pick one rule). */
  groups: number;
  /** Number of rules (choices per head). */
  choices: number;
  /** Objective k → [head][rule] loss; every objective is minimised. */
  objectives: number[][][];
  /** Linear constraints over the assignment. */
  constraints: Constraint[];
  /** At most `limit` distinct rules among the heads of each layer. */
  maxDistinctPerLayer?: { layerOfHead: number[]; limit: number };
  /** [head][rule] → whether the head may take the rule; absent means every rule is allowed. */
  allowed?: boolean[][];
}

/** A solved assignment. */
export interface Solution {
  /** The rule index each head takes (indices of the problem passed in). */
  choice: number[];
  /** Value of every objective at `choice`, computed exactly from the problem data. */
  objectives: number[];
  /** Value Σ x·coef of every constraint at `choice`. */
  constraintValues: number[];
  /** Value of the minimised (weighted) objective. */
  objective: number;
  /** Relative gap proved (HiGHS's MIP gap, or the Lagrangian bound's; 0 when optimal). */
  gap: number;
  /** `optimal`: within the requested gap; `time limit`: best plan found in time. */
  status: "optimal" | "time limit";
  /** Wall-clock seconds of the HiGHS run (LP text parse included). */
  seconds: number;
}

function checkMatrix(m: number[][], groups: number, choices: number, what: string): void {
  if (m.length !== groups) {
    throw new RangeError(`${what}: expected ${groups} heads, got ${m.length}`);
  }
  m.forEach((row, h) => {
    if (row.length !== choices) {
      throw new RangeError(`${what}[${h}]: expected ${choices} rules, got ${row.length}`);
    }
    row.forEach((v, r) => {
      if (!Number.isFinite(v)) throw new RangeError(`${what}[${h}][${r}]: not finite: ${v}`);
    });
  });
}

/**
 * Checks a problem's shapes.
 *
 * @param p the problem
 * @throws {RangeError} naming the first malformed field
 */
export function checkProblem(p: Problem): void {
  if (!(Number.isInteger(p.groups) && p.groups > 0)) {
    throw new RangeError(`groups: expected a positive integer, got ${p.groups}`);
  }
  if (!(Number.isInteger(p.choices) && p.choices > 0)) {
    throw new RangeError(`choices: expected a positive integer, got ${p.choices}`);
  }
  if (p.objectives.length === 0) throw new RangeError("objectives: expected at least one");
  p.objectives.forEach((o, k) => checkMatrix(o, p.groups, p.choices, `objectives[${k}]`));
  p.constraints.forEach((c, i) => {
    checkMatrix(c.coef, p.groups, p.choices, `constraints[${i}] (${c.name}).coef`);
    if (Number.isNaN(c.lower) || Number.isNaN(c.upper) || c.lower > c.upper) {
      throw new RangeError(`constraints[${i}] (${c.name}): bad bounds [${c.lower}, ${c.upper}]`);
    }
  });
  if (p.allowed) {
    if (p.allowed.length !== p.groups) throw new RangeError("allowed: one row per head expected");
    p.allowed.forEach((row, h) => {
      if (row.length !== p.choices) throw new RangeError(`allowed[${h}]: wrong length`);
      if (!row.some((a) => a)) throw new RangeError(`allowed[${h}]: no rule allowed`);
    });
  }
  const d = p.maxDistinctPerLayer;
  if (d) {
    if (d.layerOfHead.length !== p.groups) {
      throw new RangeError(`maxDistinctPerLayer.layerOfHead: expected ${p.groups} entries`);
    }
    if (!d.layerOfHead.every((l) => Number.isInteger(l) && l >= 0)) {
      throw new RangeError("maxDistinctPerLayer.layerOfHead: expected non-negative integers");
    }
    if (!(Number.isInteger(d.limit) && d.limit >= 1)) {
      throw new RangeError(`maxDistinctPerLayer.limit: expected an integer ≥ 1, got ${d.limit}`);
    }
  }
}

/** Whether head h may take rule r. */
export function isAllowed(p: Problem, h: number, r: number): boolean {
  return p.allowed ? p.allowed[h]![r]! : true;
}

/** Σ_h m[h][choice[h]]. */
export function valueAt(m: number[][], choice: readonly number[]): number {
  let s = 0;
  for (let h = 0; h < m.length; h++) s += m[h]![choice[h]!]!;
  return s;
}

/**
 * Evaluates every objective and constraint of a problem at an assignment.
 *
 * @param p the problem
 * @param choice the rule of each head
 * @returns objective values and constraint values (Σ x·coef)
 *
 * @example
 * ```ts
 * import { evaluate } from "./problem.ts";
 * const p = { groups: 2, choices: 2, objectives: [[[1, 2], [3, 4]]], constraints: [] };
 * console.log(evaluate(p, [1, 0]).objectives); // [5]
 * ```
 */
export function evaluate(
  p: Problem,
  choice: readonly number[],
): { objectives: number[]; constraintValues: number[] } {
  return {
    objectives: p.objectives.map((o) => valueAt(o, choice)),
    constraintValues: p.constraints.map((c) => valueAt(c.coef, choice)),
  };
}

/** The largest |value| of a [head][rule] table. */
export function maxAbs(m: number[][]): number {
  let s = 0;
  for (const row of m) for (const v of row) s = Math.max(s, Math.abs(v));
  return s;
}

/** The per-objective weights of an objective index or weight vector. */
export function weightsOf(p: Problem, objective: number | readonly number[]): number[] {
  const k = p.objectives.length;
  if (typeof objective === "number") {
    if (!(Number.isInteger(objective) && objective >= 0 && objective < k)) {
      throw new RangeError(`objective: expected an index in 0..${k - 1}, got ${objective}`);
    }
    return Array.from({ length: k }, (_, i) => (i === objective ? 1 : 0));
  }
  if (objective.length !== k || !objective.every(Number.isFinite)) {
    throw new RangeError(`objective: expected ${k} finite weights, got [${objective}]`);
  }
  return [...objective];
}

/** A value in a message: six significant digits. */
function fmt(v: number): string {
  return String(Number(v.toPrecision(6)));
}

/**
 * Checks each constraint alone against the best and worst each head can do. Exact for a
 * single constraint; a joint infeasibility is left to HiGHS.
 * @throws {InputError} naming the constraint and the value the heads can reach
 */
export function checkEachConstraint(p: Problem, extra: readonly Constraint[]): void {
  for (const c of [...p.constraints, ...extra]) {
    let lo = 0;
    let hi = 0;
    for (let h = 0; h < p.groups; h++) {
      let mn = Infinity;
      let mx = -Infinity;
      for (let r = 0; r < p.choices; r++) {
        if (!isAllowed(p, h, r)) continue;
        mn = Math.min(mn, c.coef[h]![r]!);
        mx = Math.max(mx, c.coef[h]![r]!);
      }
      lo += mn;
      hi += mx;
    }
    const tol = 1e-9 * Math.max(1, Math.abs(lo), Math.abs(hi));
    if (lo > c.upper + tol) {
      throw new InputError(
        `constraint ${c.name}: needs at most ${fmt(c.upper)}, but the smallest achievable ` +
          `value is ${fmt(lo)} (every head on its smallest-coefficient rule)`,
      );
    }
    if (hi < c.lower - tol) {
      throw new InputError(
        `constraint ${c.name}: needs at least ${fmt(c.lower)}, but the largest achievable ` +
          `value is ${fmt(hi)} (every head on its largest-coefficient rule)`,
      );
    }
  }
}

/** The combined cost [head][rule] = Σ_k weight_k · objectives[k][head][rule]. */
export function combinedCost(p: Problem, weights: readonly number[]): number[][] {
  return Array.from(
    { length: p.groups },
    (_, h) =>
      Array.from({ length: p.choices }, (_, r) => {
        let s = 0;
        weights.forEach((w, k) => (s += w === 0 ? 0 : w * p.objectives[k]![h]![r]!));
        return s;
      }),
  );
}

/**
 * A solver's assignment with what it scores: every objective and constraint value, and the
 * weighted objective.
 *
 * @param p the problem
 * @param choice the rule of each head
 * @param weights one weight per objective
 * @returns the assignment's values (the rest of a {@link Solution} is the solver's)
 */
export function solutionAt(
  p: Problem,
  choice: number[],
  weights: readonly number[],
): Pick<Solution, "choice" | "objectives" | "constraintValues" | "objective"> {
  const { objectives, constraintValues } = evaluate(p, choice);
  const objective = weights.reduce((s, w, k) => s + w * objectives[k]!, 0);
  return { choice, objectives, constraintValues, objective };
}

/**
 * The problem without its distinct-rules limit when no layer has more heads than the limit
 * allows distinct rules (moa-tiny: 2 kv heads per layer, limit 2): such a limit constrains
 * nothing, yet it would add y variables to the MILP and send every solve through the
 * Lagrangian solver, which spent 23 s on a 8-head problem HiGHS solves alone in 0.4 s.
 */
export function dropSlackLimit(p: Problem): Problem {
  const d = p.maxDistinctPerLayer;
  if (!d) return p;
  const heads = new Map<number, number>();
  for (const l of d.layerOfHead) heads.set(l, (heads.get(l) ?? 0) + 1);
  if (Math.max(...heads.values()) > d.limit) return p;
  const { maxDistinctPerLayer: _, ...rest } = p;
  return rest;
}

/** Inputs of {@link densityProblem}. */
export interface DensityProblemInput {
  /** Loss [profiled length k][head][rule]; one objective per profiled length. */
  losses: number[][][];
  /** Rule density [constrained length m][rule] (every head's cache holds the same share). */
  densities: number[][];
  /** The length of each `densities` row (profiled lengths and the serving length). */
  densityLengths: number[];
  /** The density budget: the plan's mean density at each constrained length, in (0, 1]. */
  budget: number;
  /** The plan must use at least this share of the budget. @default 0.9 */
  lowerFraction?: number;
  /** Layer of each head, for the distinct-rules limit. */
  layerOfHead?: number[];
  /** At most this many distinct rules per layer (needs `layerOfHead`). */
  maxDistinctPerLayer?: number;
}

/**
 * Builds the MoA problem: one objective per profiled length, and at every constrained length
 * lowerFraction·budget·H ≤ Σ_h x·density_r(N) ≤ budget·H.
 *
 * The budget is checked first, exactly: at each length the smallest mean density any plan can
 * reach is that of the sparsest rule (every head on it), and the largest that of the densest.
 *
 * @param input losses, densities, budget and the distinct-rules limit
 * @returns the problem (constraints named `density@<length>`)
 * @throws {InputError} when the budget is outside (0, 1] or unreachable at some length
 *
 * @example
 * ```ts
 * import { densityProblem } from "./problem.ts";
 * const p = densityProblem({
 *   losses: [[[3, 1, 0], [5, 2, 0]]], // one length, two heads, three rules
 *   densities: [[0.25, 0.5, 1]],
 *   densityLengths: [4096],
 *   budget: 0.5,
 * });
 * console.log(p.constraints[0]); // density@4096: 0.9 ≤ Σ ≤ 1
 * ```
 */
export function densityProblem(input: DensityProblemInput): Problem {
  const { losses, densities, densityLengths, budget } = input;
  const lowerFraction = input.lowerFraction ?? 0.9;
  if (!(budget > 0 && budget <= 1)) {
    throw new InputError(`density: expected a number in (0, 1], got ${budget}`);
  }
  if (!(lowerFraction >= 0 && lowerFraction <= 1)) {
    throw new RangeError(`lowerFraction: expected a number in [0, 1], got ${lowerFraction}`);
  }
  if (losses.length === 0) throw new RangeError("losses: expected at least one length");
  const groups = losses[0]!.length;
  const choices = losses[0]![0]?.length ?? 0;
  if (densities.length !== densityLengths.length) {
    throw new RangeError(
      `densities: ${densities.length} rows for ${densityLengths.length} densityLengths`,
    );
  }
  const tooLow: string[] = [];
  const tooHigh: string[] = [];
  densities.forEach((row, m) => {
    if (row.length !== choices) {
      throw new RangeError(`densities[${m}]: expected ${choices} rules, got ${row.length}`);
    }
    // densities are the same for every head, so the extremes are one rule on every head
    const min = Math.min(...row);
    const max = Math.max(...row);
    // rounded up so that the stated value is itself feasible
    if (budget < min) tooLow.push(`${Math.ceil(min * 1e6) / 1e6} at length ${densityLengths[m]}`);
    if (lowerFraction * budget > max) tooHigh.push(`${fmt(max)} at length ${densityLengths[m]}`);
  });
  if (tooLow.length > 0) {
    throw new InputError(
      `density ${budget} is below the smallest achievable mean density: ` +
        `${tooLow.join(", ")} (every head on its sparsest rule)`,
    );
  }
  if (tooHigh.length > 0) {
    throw new InputError(
      `density ${budget} needs a mean density of at least ${lowerFraction}·${budget}, ` +
        `above the densest rule: ${tooHigh.join(", ")}`,
    );
  }
  const problem: Problem = {
    groups,
    choices,
    objectives: losses,
    constraints: densities.map((row, m) => ({
      name: `density@${densityLengths[m]}`,
      coef: Array.from({ length: groups }, () => [...row]),
      lower: lowerFraction * budget * groups,
      upper: budget * groups,
    })),
  };
  if (input.maxDistinctPerLayer !== undefined) {
    if (!input.layerOfHead) throw new RangeError("maxDistinctPerLayer needs layerOfHead");
    problem.maxDistinctPerLayer = {
      layerOfHead: [...input.layerOfHead],
      limit: input.maxDistinctPerLayer,
    };
  }
  checkProblem(problem);
  return problem;
}

/** Inputs of {@link densityProblemFromRules}. */
export interface RulesProblemInput {
  /** The candidate rules (see `candidateRules`). */
  rules: Rule[];
  /** Loss [profiled length k][head][rule], k in the order of `profileLengths`. */
  losses: number[][][];
  /** The profiled lengths (one objective each). */
  profileLengths: number[];
  /** The serving length (constrained too). */
  servingLength: number;
  /** Tokens every head keeps at the start. */
  sink: number;
  /** Count density in whole blocks of this size (the reference's way); omit for tokens. */
  block?: number;
  /**
   * The span semantics the plan runs with: under `reference` a rule's density is the reference
   * cache's size over the length (`ruleDensity`; needs `block`). @default "per-query"
   */
  spans?: SpanSemantics;
  /** The density budget in (0, 1]. */
  budget: number;
  /** Heads per layer; heads are numbered layer-major (h = layer·headsPerLayer + head). */
  headsPerLayer?: number;
  /** At most this many distinct rules per layer (needs `headsPerLayer`). */
  maxDistinctPerLayer?: number;
  /** The plan must use at least this share of the budget. @default 0.9 */
  lowerFraction?: number;
}

/**
 * {@link densityProblem} with densities computed by `ruleDensity` at every profiled length and
 * the serving length (each length once).
 *
 * @param input rules, losses, lengths, sink/block and budget
 * @returns the problem
 * @throws {InputError} when the budget is unreachable at some length
 *
 * @example
 * ```ts
 * import { densityProblemFromRules } from "./problem.ts";
 * const rules = [{ alpha: 0, beta: 0.25 }, { alpha: 0, beta: 1 }];
 * const p = densityProblemFromRules({
 *   rules, losses: [[[1, 0]]], profileLengths: [1024], servingLength: 2048, sink: 0, budget: 1,
 * });
 * console.log(p.constraints.map((c) => c.name)); // ["density@1024", "density@2048"]
 * ```
 */
export function densityProblemFromRules(input: RulesProblemInput): Problem {
  const lengths = [...new Set([...input.profileLengths, input.servingLength])];
  const densities = lengths.map((n) =>
    input.rules.map((r) => ruleDensity(r, n, input.sink, input.block, input.spans))
  );
  const groups = input.losses[0]?.length ?? 0;
  const base: DensityProblemInput = {
    losses: input.losses,
    densities,
    densityLengths: lengths,
    budget: input.budget,
  };
  if (input.lowerFraction !== undefined) base.lowerFraction = input.lowerFraction;
  if (input.maxDistinctPerLayer !== undefined) {
    const hpl = input.headsPerLayer;
    if (!hpl) throw new RangeError("maxDistinctPerLayer needs headsPerLayer");
    base.maxDistinctPerLayer = input.maxDistinctPerLayer;
    base.layerOfHead = Array.from({ length: groups }, (_, h) => Math.floor(h / hpl));
  }
  return densityProblem(base);
}
