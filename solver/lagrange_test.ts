import assert from "node:assert/strict";
import { Rng } from "../runtime/rng.ts";
import { evaluate, type Problem } from "./problem.ts";
import { solveMilp } from "./milp.ts";
import { type LagrangeResult, solveLagrange } from "./lagrange.ts";
import { syntheticProblem } from "./bench.ts";

/** A random problem: L layers × K heads × R rules, density-like constraints, a distinct limit. */
function randomProblem(seed: number, L: number, K: number, R: number, limit: number): Problem {
  const rng = new Rng(seed);
  const H = L * K;
  const dens = [0, 1].map((m) =>
    Array.from({ length: R }, (_, r) => (r + 1) / R * (m === 0 ? 1 : 0.5 + 0.5 * rng.next()))
  );
  const loss = Array.from({ length: H }, () => {
    const s = Math.exp(rng.normal()), p = 1 + 10 * rng.next();
    return Array.from({ length: R }, (_, r) => s * (1 - dens[0]![r]!) ** p + 0.01 * rng.next());
  });
  return {
    groups: H,
    choices: R,
    objectives: [loss],
    constraints: dens.map((row, m) => ({
      name: `density${m}`,
      coef: Array.from({ length: H }, () => [...row]),
      lower: 0.3 * H * (m === 0 ? 1 : 0.6),
      upper: 0.5 * H * (m === 0 ? 1 : 0.8),
    })),
    maxDistinctPerLayer: {
      layerOfHead: Array.from({ length: H }, (_, h) => Math.floor(h / K)),
      limit,
    },
  };
}

Deno.test("solveLagrange() brackets the optimum: bound ≤ HiGHS's proven optimum ≤ its feasible plan", async (t) => {
  for (let seed = 1; seed <= 6; seed++) {
    await t.step(`random problem ${seed}`, async () => {
      const p = randomProblem(seed, 3, 5, 7, seed % 2 === 0 ? 1 : 2);
      const exact = await solveMilp(p, 0, { gap: 0, lagrange: false });
      const r: LagrangeResult = await solveLagrange(p, p.objectives[0]!, { gap: 0, timeLimit: 10 });
      const tol = 1e-9 * Math.max(1, Math.abs(exact.objective));
      assert.ok(r.bound <= exact.objective + tol, `bound ${r.bound} > optimum ${exact.objective}`);
      assert.ok(r.choice, "a plan");
      assert.ok(r.primal >= exact.objective - tol, `plan ${r.primal} below the optimum`);
      const { constraintValues } = evaluate(p, r.choice!);
      p.constraints.forEach((c, i) => {
        assert.ok(constraintValues[i]! <= c.upper + 1e-9 && constraintValues[i]! >= c.lower - 1e-9);
      });
      for (let l = 0; l < 3; l++) {
        const used: Set<number> = new Set(r.choice!.slice(l * 5, l * 5 + 5));
        assert.ok(used.size <= p.maxDistinctPerLayer!.limit, `layer ${l} uses ${used.size} rules`);
      }
      // the reported gap is the plan's distance to the bound, and the heuristic is sane even on
      // problems this small (15 heads: the duality gap is large here, and solveMilp() then hands
      // over to HiGHS)
      assert.ok(Math.abs(r.gap - (r.primal - r.bound) / r.primal) < 1e-12);
      assert.ok(r.primal <= exact.objective * 1.1 + tol, `plan ${r.primal} vs ${exact.objective}`);
    });
  }
});

Deno.test("solveMilp() on a distinct-limited problem returns a feasible plan and an honest gap", async () => {
  const p = syntheticProblem({ layers: 4, headsPerLayer: 8 });
  const s = await solveMilp(p, 2, { gap: 1e-3, timeLimit: 20 });
  const exact = await solveMilp(p, 2, { gap: 0, lagrange: false });
  assert.ok(s.objective >= exact.objective - 1e-9);
  assert.ok(
    s.objective <= exact.objective * (1 + s.gap) + 1e-9,
    `${s.objective} vs ${exact.objective}, gap ${s.gap}`,
  );
});

Deno.test("solveLagrange() on an infeasible problem reports no plan instead of failing", async () => {
  // each constraint alone can be met, not both: the loss bound needs every head on its
  // lowest-loss (densest) rule, the density window forbids that. The dual is unbounded and its
  // multipliers grow without limit (they once reached 1e21 and broke HiGHS's LP reader).
  const p = randomProblem(3, 3, 5, 7, 2);
  const loss = p.objectives[0]!;
  const least = loss.reduce((a, row) => a + Math.min(...row), 0);
  const infeasible: Problem = {
    ...p,
    constraints: [...p.constraints, {
      name: "loss",
      coef: loss,
      lower: -Infinity,
      upper: least * 1.0001,
    }],
  };
  const r = await solveLagrange(infeasible, loss, { gap: 0, timeLimit: 10 });
  assert.equal(r.choice, null);
  assert.equal(r.primal, Infinity);
});
