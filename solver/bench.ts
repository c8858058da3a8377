/**
 * Solver benchmarks on seeded synthetic losses: one MoA MILP of the reference's size (32 layers ×
 * 32 heads × 48 rules, four density constraints, at most 2 distinct rules per layer) solved to a
 * 0.1% gap, and the whole ε-constraint Pareto set of a problem shaped like moa-tiny's.
 *
 * @module
 */
import { Rng } from "../runtime/rng.ts";
import { densityProblemFromRules, type Problem } from "./problem.ts";
import { solveMilp } from "./milp.ts";
import { paretoSet } from "./pareto.ts";
import { candidateRules, ruleDensity } from "./rules.ts";

/** Options of {@link syntheticProblem} and {@link benchSolver}. */
export interface SyntheticOptions {
  /** @default 32 */
  layers?: number;
  /** @default 32 */
  headsPerLayer?: number;
  /** Mean density budget. @default 0.5 */
  budget?: number;
  /** Distinct rules per layer; 0 for no limit. @default 2 */
  maxDistinctPerLayer?: number;
  /** @default 1 */
  seed?: number;
  /** Stop the solve after this many seconds (benchSolver only). @default Infinity */
  timeLimit?: number;
  /** Profiled lengths, one objective each. @default [2048, 4096, 8192] */
  profileLengths?: number[];
  /** @default 16384 */
  servingLength?: number;
  /** Sink tokens, also the block size. @default 64 */
  sink?: number;
}

/**
 * A synthetic MoA problem shaped like a real one: the reference's 48 rules for profiled
 * 2k/4k/8k and serving 16k (sink 64, 64-token blocks), and per head a loss that falls with the
 * rule's density, loss = w_h · (N/8192) · (1 − density)^p_h · (1 + 0.05·noise), where the scale
 * w_h is log-normal and the sharpness p_h log-uniform in [1, 50] (local heads, with large p_h,
 * lose little to a short window; long-range heads need a wide one).
 *
 * @param opts sizes, budget, limit and seed
 * @returns the problem (one objective per profiled length)
 *
 * @example
 * ```ts
 * import { syntheticProblem } from "./bench.ts";
 * const p = syntheticProblem({ layers: 2, headsPerLayer: 4 });
 * console.log(p.groups, p.choices, p.objectives.length, p.constraints.length); // 8 48 3 4
 * ```
 */
export function syntheticProblem(opts: SyntheticOptions = {}): Problem {
  const layers = opts.layers ?? 32;
  const headsPerLayer = opts.headsPerLayer ?? 32;
  const rng = new Rng(opts.seed ?? 1);
  const profileLengths = opts.profileLengths ?? [2048, 4096, 8192];
  const servingLength = opts.servingLength ?? 16384;
  const sink = opts.sink ?? 64;
  const block = sink;
  const rules = candidateRules(profileLengths, servingLength);
  const heads = layers * headsPerLayer;
  const scale = Array.from({ length: heads }, () => Math.exp(rng.normal()));
  const sharp = Array.from({ length: heads }, () => Math.exp(rng.next() * Math.log(50)));
  const longest = profileLengths.at(-1)!;
  const losses = profileLengths.map((n) =>
    Array.from({ length: heads }, (_, h) =>
      rules.map((r) => {
        const d = ruleDensity(r, n, sink, block);
        const noise = 1 + 0.05 * rng.normal();
        return Math.max(0, scale[h]! * (n / longest) * (1 - d) ** sharp[h]! * noise);
      }))
  );
  const limit = opts.maxDistinctPerLayer ?? 2;
  return densityProblemFromRules({
    rules,
    losses,
    profileLengths,
    servingLength,
    sink,
    block,
    budget: opts.budget ?? 0.5,
    headsPerLayer,
    ...(limit > 0 ? { maxDistinctPerLayer: limit } : {}),
  });
}

/**
 * Builds the reference-sized synthetic problem, minimises its longest-length loss to a 0.1%
 * gap, prints the time and returns it. Under a time limit the result is the best plan found
 * then, with the gap HiGHS had reached.
 *
 * @param opts sizes, budget, limit and seed (defaults: the reference's size)
 * @returns wall-clock seconds of the solve, the objective reached and HiGHS's final gap
 */
export async function benchSolver(
  opts: SyntheticOptions = {},
): Promise<{ seconds: number; objective: number; gap: number }> {
  const problem = syntheticProblem(opts);
  const t0 = performance.now();
  const s = await solveMilp(problem, problem.objectives.length - 1, {
    gap: 1e-3,
    ...(opts.timeLimit !== undefined ? { timeLimit: opts.timeLimit } : {}),
  });
  const seconds = (performance.now() - t0) / 1000;
  console.log(
    `solver: ${problem.groups} heads × ${problem.choices} rules, ` +
      `${problem.constraints.length} density constraints: ${seconds.toFixed(2)} s ` +
      `(objective ${s.objective.toPrecision(6)}, gap ${(s.gap * 100).toFixed(3)}%, ${s.status})`,
  );
  return { seconds, objective: s.objective, gap: s.gap };
}

/**
 * Times {@link paretoSet} (ε-constraint grid, 4 intervals, 0.1% gap per solve) on a synthetic
 * problem, by default moa-tiny's: 4 layers × 2 kv heads, profiled at 512/1,024/2,048 and served
 * at 2,048 (sink and block 32), at most 2 distinct rules per layer — which two heads per layer
 * never exceed, so the solver drops that limit.
 *
 * @param opts sizes and lengths (defaults: moa-tiny's)
 * @returns wall-clock seconds for the whole set, the number of plans kept, the slowest single
 *   solve and the largest gap among the kept plans
 */
export async function benchPareto(
  opts: SyntheticOptions = {},
): Promise<{ seconds: number; plans: number; slowest: number; maxGap: number; problem: Problem }> {
  const problem = syntheticProblem({
    layers: 4,
    headsPerLayer: 2,
    profileLengths: [512, 1024, 2048],
    servingLength: 2048,
    sink: 32,
    ...opts,
  });
  const t0 = performance.now();
  const front = await paretoSet(problem, {
    gap: 1e-3,
    ...(opts.timeLimit !== undefined ? { timeLimit: opts.timeLimit } : {}),
  });
  const seconds = (performance.now() - t0) / 1000;
  const slowest = Math.max(...front.map((s) => s.seconds));
  console.log(
    `pareto: ${problem.groups} heads × ${problem.choices} rules, ${problem.objectives.length} ` +
      `objectives: ${front.length} plans in ${seconds.toFixed(2)} s`,
  );
  const maxGap = Math.max(...front.map((s) => s.gap));
  return { seconds, plans: front.length, slowest, maxGap, problem };
}

if (import.meta.main) await benchSolver();
