import assert from "node:assert/strict";
import { Rng } from "../runtime/rng.ts";
import type { Problem } from "./problem.ts";
import { pruneDominated } from "./prune.ts";
import { bruteMin } from "./_brute.ts";

Deno.test("pruneDominated()", async (t) => {
  await t.step("drops a rule that is worse and no sparser, and maps back", () => {
    const p: Problem = {
      groups: 2,
      choices: 4,
      objectives: [[[1, 2, 0, 3], [1, 0, 2, 0]]],
      constraints: [{ name: "d", coef: [[1, 1, 2, 1], [1, 1, 2, 1]], lower: -Infinity, upper: 3 }],
    };
    const { problem, rules } = pruneDominated(p);
    // head 0: rule 1 and 3 lose to rule 0 (same density, more loss); head 1: rule 0 loses to 1,
    // rule 3 ties rule 1 (dropped as the later index), rule 2 loses to rule 1
    assert.deepEqual(rules, [0, 1, 2]);
    assert.deepEqual(problem.allowed, [[true, false, true], [false, true, false]]);
  });

  await t.step("keeps a worse, denser rule when a lower bound may need it", () => {
    const p: Problem = {
      groups: 1,
      choices: 2,
      objectives: [[[0, 1]]],
      constraints: [{ name: "d", coef: [[0.1, 0.5]], lower: 0.4, upper: 1 }],
    };
    assert.deepEqual(pruneDominated(p).rules, [0, 1]);
  });

  await t.step("never changes the optimum of random problems (brute force)", () => {
    let removed = 0;
    for (let seed = 100; seed < 160; seed++) {
      const rng = new Rng(seed);
      const heads = 4;
      const rules = 5;
      const ints = () =>
        Array.from({ length: heads }, () => Array.from({ length: rules }, () => rng.int(0, 4)));
      const p: Problem = {
        groups: heads,
        choices: rules,
        objectives: [ints(), ints()],
        constraints: [
          { name: "le", coef: ints(), lower: -Infinity, upper: rng.int(4, 12) },
          { name: "ge", coef: ints(), lower: rng.int(2, 8), upper: Infinity },
        ],
      };
      if (seed % 2 === 0) p.maxDistinctPerLayer = { layerOfHead: [0, 0, 1, 1], limit: 1 };
      const pruned = pruneDominated(p);
      const q = pruned.problem;
      removed += p.choices * p.groups -
        (q.allowed ? q.allowed.flat().filter((a) => a).length : q.groups * q.choices);
      for (const w of [[1, 0], [0, 1], [1, 1]]) {
        assert.equal(bruteMin(pruned.problem, w), bruteMin(p, w), `seed ${seed} w ${w}`);
      }
      // and under an extra ≤ bound on an objective (what the ε-constraint method adds)
      const cap = rng.int(3, 10);
      const withCap = (q: Problem): Problem => ({
        ...q,
        constraints: [...q.constraints, {
          name: "eps",
          coef: q.objectives[1]!,
          lower: -Infinity,
          upper: cap,
        }],
      });
      assert.equal(bruteMin(withCap(pruned.problem), [1, 0]), bruteMin(withCap(p), [1, 0]));
    }
    assert.ok(removed > 50, `pruning removed only ${removed} (head, rule) pairs`);
  });
});
