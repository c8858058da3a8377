import assert from "node:assert/strict";
import { InputError } from "../runtime/errors.ts";
import { evaluate, type Problem } from "./problem.ts";
import { solveMilp } from "./milp.ts";
import { bruteMin, close, randomProblem } from "./_brute.ts";

Deno.test("solveMilp()", async (t) => {
  await t.step("equals brute force on random 4-head × 5-rule problems", async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const p = randomProblem(seed);
      for (const w of [[1, 0], [0, 1], [0.3, 0.7]]) {
        const s = await solveMilp(p, w[0] === 1 ? 0 : w[1] === 1 ? 1 : w, { gap: 0 });
        const want = bruteMin(p, w);
        assert.ok(close(s.objective, want), `seed ${seed} w ${w}: ${s.objective} vs ${want}`);
        assert.equal(s.status, "optimal");
        // the reported values are those of the returned assignment
        assert.deepEqual(s.objectives, evaluate(p, s.choice).objectives);
      }
    }
  });

  await t.step("equals brute force with at most one or two distinct rules per layer", async () => {
    for (let seed = 11; seed <= 16; seed++) {
      const base = randomProblem(seed, 6, 4);
      for (const limit of [1, 2]) {
        const p: Problem = {
          ...base,
          maxDistinctPerLayer: { layerOfHead: [0, 0, 0, 1, 1, 1], limit },
        };
        const free = bruteMin(base, [1, 0]);
        const want = bruteMin(p, [1, 0]);
        if (want === Infinity) continue;
        const s = await solveMilp(p, 0, { gap: 0 });
        assert.ok(close(s.objective, want), `seed ${seed} limit ${limit}`);
        for (const layer of [[0, 1, 2], [3, 4, 5]]) {
          assert.ok(new Set(layer.map((h) => s.choice[h])).size <= limit);
        }
        if (limit === 1) assert.ok(want >= free - 1e-12);
      }
    }
  });

  await t.step("names an unreachable constraint and its smallest value before HiGHS", async () => {
    const p = randomProblem(3);
    p.constraints[0]!.upper = 0.1; // every density is ≥ 0.1, four heads: the minimum is ≥ 0.4
    const least = p.constraints[0]!.coef.reduce((s, row) => s + Math.min(...row), 0);
    await assert.rejects(
      () => solveMilp(p, 0),
      (e: Error) =>
        e instanceof InputError && e.message.includes("constraint d1") &&
        e.message.includes("at most 0.1") &&
        e.message.includes(String(Number(least.toPrecision(6)))),
    );
  });

  await t.step("reports a jointly infeasible set as an InputError", async () => {
    // each constraint alone is reachable, but rule 0 is needed for one and rule 1 for the other
    const p: Problem = {
      groups: 2,
      choices: 2,
      objectives: [[[1, 1], [1, 1]]],
      constraints: [
        { name: "a", coef: [[0, 1], [0, 1]], lower: -Infinity, upper: 0 },
        { name: "b", coef: [[0, 1], [0, 1]], lower: 1, upper: Infinity },
      ],
    };
    await assert.rejects(
      () => solveMilp(p, 0),
      (e: Error) => e instanceof InputError && e.message.includes("no assignment meets"),
    );
  });
});
