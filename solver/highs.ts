/**
 * The HiGHS backend: the problem (`problem.ts`) written as a CPLEX LP-format string and solved by
 * the `highs` WebAssembly build. Rows are scaled by their largest |coefficient| so tiny losses do
 * not fall below HiGHS's tolerances.
 *
 * @module
 */
import * as highsModule from "highs";
import type { Highs } from "highs";
import {
  checkProblem,
  combinedCost,
  type Constraint,
  isAllowed,
  maxAbs,
  type Problem,
  type Solution,
  solutionAt,
  valueAt,
  weightsOf,
} from "./problem.ts";

/** Options of a HiGHS solve ({@link solveHighs}). */
export interface HighsOptions {
  /** Relative MIP gap at which HiGHS may stop. @default 1e-4 */
  gap?: number;
  /** Wall-clock limit per solve, in seconds. @default Infinity */
  timeLimit?: number;
  /** Print HiGHS's own log. @default false */
  log?: boolean;
  /**
   * Further HiGHS options by their native names, applied last (e.g.
   * `{ mip_heuristic_run_feasibility_jump: false }`). @default {}
   */
  highs?: Record<string, string | number | boolean>;
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

/**
 * The CPLEX LP text {@link solveHighs} hands to HiGHS, for inspection or another solver.
 * Variables are x_<head>_<rule> and y_<layer>_<rule>; rows are scaled by their largest
 * |coefficient|.
 *
 * @param problem the MILP
 * @param objective an objective index, or one weight per objective
 * @returns the LP text
 *
 * @example
 * ```ts
 * import { problemToLp } from "./highs.ts";
 * const p = { groups: 1, choices: 2, objectives: [[[2, 1]]], constraints: [] };
 * console.log(problemToLp(p, 0).split("\n").slice(0, 3)); // ["Minimize", " obj:", " + 1 x_0_0 + 0.5 x_0_1"]
 * ```
 */
export function problemToLp(problem: Problem, objective: number | readonly number[]): string {
  checkProblem(problem);
  return toLp(problem, combinedCost(problem, weightsOf(problem, objective)), []);
}

/**
 * One HiGHS solve of the problem with `extra` constraints, minimising the weighted objectives.
 *
 * @param p the problem
 * @param weights one weight per objective
 * @param extra constraints added to the problem's own (ε-constraints)
 * @param opts gap, time limit, log, native options
 * @returns the assignment, or `null` when HiGHS proves the problem infeasible
 */
export async function solveHighs(
  p: Problem,
  weights: readonly number[],
  extra: readonly Constraint[],
  opts: HighsOptions,
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
    const found = solutionAt(p, choice, weights);
    [...p.constraints, ...extra].forEach((c, i) => {
      const v = i < p.constraints.length ? found.constraintValues[i]! : valueAt(c.coef, choice);
      const tol = 1e-6 * Math.max(1, maxAbs(c.coef) * p.groups);
      if (v < c.lower - tol || v > c.upper + tol) {
        throw new Error(`HiGHS plan breaks constraint ${c.name}: ${v} ∉ [${c.lower}, ${c.upper}]`);
      }
    });
    return {
      ...found,
      gap: Math.max(0, Number(model.info.get("mip_gap")) || 0),
      status: modelStatus === st.optimal ? "optimal" : "time limit",
      seconds,
    };
  } finally {
    model.dispose();
  }
}
