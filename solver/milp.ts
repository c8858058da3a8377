/**
 * The MoA optimisation (DESIGN.md §3.6) as plain data, and its solution by HiGHS.
 *
 * A {@link Problem} assigns exactly one of `choices` rules to each of `groups` heads (binary
 * x[h, r], Σ_r x[h, r] = 1). Each objective k is Σ x[h, r]·objectives[k][h][r]; each constraint
 * bounds Σ x[h, r]·coef[h][r]; optionally each layer uses at most `limit` distinct rules
 * (auxiliary binaries y[layer, r] ≥ x[h, r], Σ_r y[layer, r] ≤ limit). The problem is written
 * as a CPLEX LP-format string and solved by the `highs` WebAssembly build.
 *
 * - {@link solveMilp}: minimise one objective, or a weighted sum of them.
 * - {@link pruneDominated}: remove rules that can never be needed (optimum-preserving).
 * - {@link densityProblem} / {@link densityProblemFromRules}: the MoA problem from profiled
 *   losses and rule densities, with the budget's feasibility checked up front.
 * - {@link paretoSet}: the ε-constraint Pareto set over the objectives (one per length).
 *
 * @module
 */
import * as highsModule from "highs";
import type { Highs } from "highs";
import { InputError } from "../runtime/errors.ts";
import { type Rule, ruleDensity } from "./rules.ts";
import type { SpanSemantics } from "../runtime/spans.ts";
import { solveLagrange } from "./lagrange.ts";

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

/** Options of {@link solveMilp} and {@link paretoSet}. */
export interface SolveOptions {
  /** Relative MIP gap at which HiGHS may stop. @default 1e-4 */
  gap?: number;
  /** Wall-clock limit per solve, in seconds. @default Infinity */
  timeLimit?: number;
  /** Print HiGHS's own log. @default false */
  log?: boolean;
  /**
   * Run the Lagrangian solver first when the problem limits distinct rules per layer.
   * @default true
   */
  lagrange?: boolean;
  /**
   * Further HiGHS options by their native names, applied last (e.g.
   * `{ mip_heuristic_run_feasibility_jump: false }`). @default {}
   */
  highs?: Record<string, string | number | boolean>;
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

let highsPromise: Promise<Highs> | undefined;

/**
 * Loads the HiGHS WebAssembly module once. Deno resolves `highs` to its ES module build, which
 * finds `highs.wasm` beside itself in node_modules, so no `locateFile` is needed. The package is
 * typed as CommonJS (the checker sees `export default` one level down), so the loader is looked
 * up through the namespace at run time.
 */
export function loadHighs(): Promise<Highs> {
  type Loader = () => Promise<Highs>;
  const d = (highsModule as unknown as { default: Loader | { default: Loader } }).default;
  const promise = highsPromise ?? (typeof d === "function" ? d() : d.default());
  highsPromise = promise;
  return promise;
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

function isAllowed(p: Problem, h: number, r: number): boolean {
  return p.allowed ? p.allowed[h]![r]! : true;
}

/** Σ_h m[h][choice[h]]. */
function valueAt(m: number[][], choice: readonly number[]): number {
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
 * import { evaluate } from "./milp.ts";
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

/** Formats a number for LP text (JavaScript's shortest round-trip form, which HiGHS reads). */
function num(v: number): string {
  return String(v);
}

/** Appends `± c name` terms, eight per line (LP format allows a row to continue on new lines). */
function writeTerms(out: string[], terms: [number, string][]): void {
  let line = "";
  let n = 0;
  for (const [c, name] of terms) {
    if (c === 0) continue;
    line += `${c < 0 ? " -" : " +"} ${num(Math.abs(c))} ${name}`;
    if (++n % 8 === 0) {
      out.push(line);
      line = "";
    }
  }
  // a row with no nonzero term still needs one (zero) term over a declared variable
  if (line !== "" || n === 0) out.push(line === "" ? ` 0 ${terms[0]?.[1] ?? "x_0_0"}` : line);
}

const xName = (h: number, r: number) => `x_${h}_${r}`;
const yName = (l: number, r: number) => `y_${l}_${r}`;

function maxAbs(m: number[][]): number {
  let s = 0;
  for (const row of m) for (const v of row) s = Math.max(s, Math.abs(v));
  return s;
}

/**
 * Writes the problem as CPLEX LP text. Rows are scaled by their largest |coefficient| (the
 * argmin is unchanged) so tiny losses do not fall below HiGHS's tolerances.
 */
function toLp(p: Problem, cost: number[][], extra: readonly Constraint[]): string {
  const out: string[] = ["Minimize", " obj:"];
  const costScale = maxAbs(cost) || 1;
  const objTerms: [number, string][] = [];
  for (let h = 0; h < p.groups; h++) {
    for (let r = 0; r < p.choices; r++) {
      if (isAllowed(p, h, r)) objTerms.push([cost[h]![r]! / costScale, xName(h, r)]);
    }
  }
  writeTerms(out, objTerms);
  out.push("Subject To");
  for (let h = 0; h < p.groups; h++) {
    const terms: [number, string][] = [];
    for (let r = 0; r < p.choices; r++) if (isAllowed(p, h, r)) terms.push([1, xName(h, r)]);
    out.push(` one_${h}:`);
    writeTerms(out, terms);
    out.push(" = 1");
  }
  [...p.constraints, ...extra].forEach((c, i) => {
    const s = maxAbs(c.coef) || 1;
    const terms: [number, string][] = [];
    for (let h = 0; h < p.groups; h++) {
      for (let r = 0; r < p.choices; r++) {
        if (isAllowed(p, h, r)) terms.push([c.coef[h]![r]! / s, xName(h, r)]);
      }
    }
    for (const [side, bound] of [[">=", c.lower], ["<=", c.upper]] as const) {
      if (!Number.isFinite(bound)) continue;
      out.push(` c${i}_${side === ">=" ? "lo" : "hi"}:`);
      writeTerms(out, terms);
      out.push(` ${side} ${num(bound / s)}`);
    }
  });
  const d = p.maxDistinctPerLayer;
  const yVars: string[] = [];
  if (d) {
    const layers = [...new Set(d.layerOfHead)].sort((a, b) => a - b);
    for (const l of layers) {
      const heads = d.layerOfHead.flatMap((lh, h) => (lh === l ? [h] : []));
      const usable: number[] = [];
      for (let r = 0; r < p.choices; r++) {
        const hs = heads.filter((h) => isAllowed(p, h, r));
        if (hs.length === 0) continue;
        usable.push(r);
        yVars.push(yName(l, r));
        for (const h of hs) out.push(` link_${h}_${r}: ${xName(h, r)} - ${yName(l, r)} <= 0`);
      }
      if (usable.length > d.limit) {
        out.push(` distinct_${l}:`);
        writeTerms(out, usable.map((r) => [1, yName(l, r)]));
        out.push(` <= ${d.limit}`);
      }
    }
  }
  out.push("Binary");
  const names: string[] = [];
  for (let h = 0; h < p.groups; h++) {
    for (let r = 0; r < p.choices; r++) if (isAllowed(p, h, r)) names.push(xName(h, r));
  }
  names.push(...yVars);
  for (let i = 0; i < names.length; i += 8) out.push(" " + names.slice(i, i + 8).join(" "));
  out.push("End", "");
  return out.join("\n");
}

/** The per-objective weights of an objective index or weight vector. */
function weightsOf(p: Problem, objective: number | readonly number[]): number[] {
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

function fmt(v: number): string {
  return String(Number(v.toPrecision(6)));
}

/**
 * Checks each constraint alone against the best and worst each head can do. Exact for a
 * single constraint; a joint infeasibility is left to HiGHS.
 */
function checkEachConstraint(p: Problem, extra: readonly Constraint[]): void {
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
function combinedCost(p: Problem, weights: readonly number[]): number[][] {
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
 * The CPLEX LP text {@link solveMilp} hands to HiGHS, for inspection or another solver.
 * Variables are x_<head>_<rule> and y_<layer>_<rule>; rows are scaled by their largest
 * |coefficient|.
 *
 * @param problem the MILP
 * @param objective an objective index, or one weight per objective
 * @returns the LP text
 *
 * @example
 * ```ts
 * import { problemToLp } from "./milp.ts";
 * const p = { groups: 1, choices: 2, objectives: [[[2, 1]]], constraints: [] };
 * console.log(problemToLp(p, 0).split("\n").slice(0, 3)); // ["Minimize", " obj:", " + 1 x_0_0 + 0.5 x_0_1"]
 * ```
 */
export function problemToLp(problem: Problem, objective: number | readonly number[]): string {
  checkProblem(problem);
  return toLp(problem, combinedCost(problem, weightsOf(problem, objective)), []);
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

/**
 * One solve. With a distinct-rules limit (where HiGHS's LP bound is weak), the Lagrangian
 * solver (`lagrange.ts`) runs first: when its plan is within the gap of its bound it is the
 * answer; otherwise HiGHS continues with that plan's cost as a cutoff, within the time limit
 * (60 s when none is given), and the better plan wins, with the tighter of the two gaps.
 */
async function solveOnce(
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
  const fromLag = (): Solution => {
    const choice = lag.choice!;
    const { objectives, constraintValues } = evaluate(p, choice);
    return {
      choice,
      objectives,
      constraintValues,
      objective: weights.reduce((s, w, k) => s + w * objectives[k]!, 0),
      gap: Math.max(0, lag.gap),
      status: lag.gap <= gap ? "optimal" : "time limit",
      seconds: (performance.now() - t0) / 1000,
    };
  };
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

/** One HiGHS solve; `null` when HiGHS proves the problem infeasible. */
async function solveHighs(
  p: Problem,
  weights: readonly number[],
  extra: readonly Constraint[],
  opts: SolveOptions,
): Promise<Solution | null> {
  const highs = await loadHighs();
  const lp = toLp(p, combinedCost(p, weights), extra);
  const t0 = performance.now();
  const model = highs.createModel({ format: "lp", data: lp });
  try {
    const options: Record<string, number | boolean> = {
      output_flag: opts.log ?? false,
      mip_rel_gap: opts.gap ?? 1e-4,
      mip_abs_gap: 1e-9,
    };
    if (opts.timeLimit !== undefined && Number.isFinite(opts.timeLimit)) {
      options.time_limit = opts.timeLimit;
    }
    model.options.set({ ...options, ...opts.highs });
    const { modelStatus } = model.run();
    const seconds = (performance.now() - t0) / 1000;
    const st = highs.constants.modelStatus;
    if (modelStatus === st.infeasible || modelStatus === st.unboundedOrInfeasible) return null;
    const hasPlan = Number(model.info.get("primal_solution_status")) === 2;
    if (modelStatus !== st.optimal && !(modelStatus === st.timeLimit && hasPlan)) {
      throw new Error(
        `HiGHS stopped with model status ${modelStatus}` +
          (modelStatus === st.timeLimit ? " (time limit) before finding any plan" : ""),
      );
    }
    const value = model.getSolution().colValue;
    const { numCols } = model.getDimensions();
    const choice = new Array<number>(p.groups).fill(-1);
    for (let i = 0; i < numCols; i++) {
      if (value[i]! < 0.5) continue;
      const m = /^x_(\d+)_(\d+)$/.exec(model.getColName(i));
      if (!m) continue;
      const h = Number(m[1]);
      if (choice[h] !== -1) throw new Error(`HiGHS gave head ${h} two rules`);
      choice[h] = Number(m[2]);
    }
    const missing = choice.indexOf(-1);
    if (missing >= 0) throw new Error(`HiGHS gave head ${missing} no rule`);
    const { objectives, constraintValues } = evaluate(p, choice);
    [...p.constraints, ...extra].forEach((c, i) => {
      const v = i < p.constraints.length ? constraintValues[i]! : valueAt(c.coef, choice);
      const tol = 1e-6 * Math.max(1, maxAbs(c.coef) * p.groups);
      if (v < c.lower - tol || v > c.upper + tol) {
        throw new Error(`HiGHS plan breaks constraint ${c.name}: ${v} ∉ [${c.lower}, ${c.upper}]`);
      }
    });
    return {
      choice,
      objectives,
      constraintValues,
      objective: weights.reduce((s, w, k) => s + w * objectives[k]!, 0),
      gap: Math.max(0, Number(model.info.get("mip_gap")) || 0),
      status: modelStatus === st.optimal ? "optimal" : "time limit",
      seconds,
    };
  } finally {
    model.dispose();
  }
}

/**
 * Minimises one objective (by index) or a weighted sum of objectives with HiGHS.
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
  const s = await solveOnce(dropSlackLimit(problem), weights, [], opts);
  if (!s) {
    throw new InputError(
      `no assignment meets every constraint at once (${
        problem.constraints.map((c) => c.name).join(", ")
      }${problem.maxDistinctPerLayer ? ", distinct rules per layer" : ""})`,
    );
  }
  return s;
}

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
 * extra ≤ bound on the objectives (so {@link paretoSet} may use the pruned problem).
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
 * import { pruneDominated } from "./milp.ts";
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
 * import { densityProblem } from "./milp.ts";
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
 * import { densityProblemFromRules } from "./milp.ts";
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
 * import { paretoSet } from "./milp.ts";
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
    const s = await solveOnce(p, oneHot(k), [], solveOpts);
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
      const s = await solveOnce(p, oneHot(primary), extra, solveOpts);
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
