import assert from "node:assert/strict";
import { problemToLp, solveHighs } from "./highs.ts";
import type { Problem } from "./problem.ts";
import { randomProblem } from "./_brute.ts";

Deno.test("problemToLp() writes one binary per head and rule", () => {
  const p = randomProblem(2, 2, 3);
  const lp = problemToLp(p, 0);
  assert.match(lp, /^Minimize\n obj:/);
  assert.match(lp, / one_1:\n \+ 1 x_1_0 \+ 1 x_1_1 \+ 1 x_1_2\n = 1/);
  assert.match(lp, /\nBinary\n x_0_0 x_0_1 x_0_2 x_1_0 x_1_1 x_1_2\nEnd\n$/);
});

Deno.test("solveHighs() minimises the weighted objectives under extra constraints", async () => {
  const p: Problem = {
    groups: 2,
    choices: 2,
    objectives: [[[0, 5], [0, 1]], [[3, 0], [2, 0]]],
    constraints: [],
  };
  // assignments (objective 0, objective 1): [0,0] (0, 5), [0,1] (1, 3), [1,0] (5, 2), [1,1] (6, 0)
  const free = await solveHighs(p, [1, 0], [], { gap: 0 });
  assert.deepEqual(free?.choice, [0, 0]);
  assert.deepEqual(free?.objectives, [0, 5]);
  const eps = (upper: number) => [{ name: "eps", coef: p.objectives[1]!, lower: -Infinity, upper }];
  const capped = await solveHighs(p, [1, 0], eps(3), { gap: 0 });
  assert.deepEqual(capped?.choice, [0, 1]);
  assert.equal(capped?.objective, 1);
  const weighted = await solveHighs(p, [1, 1], [], { gap: 0 });
  assert.equal(weighted?.objective, 4); // [0, 1]: 1 + 3
  assert.equal(await solveHighs(p, [1, 0], eps(-1), { gap: 0 }), null, "infeasible: null");
});
