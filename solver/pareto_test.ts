import assert from "node:assert/strict";
import { evaluate, type Problem } from "./problem.ts";
import { paretoSet } from "./pareto.ts";
import { bruteFront, close, randomProblem } from "./_brute.ts";

Deno.test("paretoSet()", async (t) => {
  await t.step("equals the brute-force non-dominated set on a tiny problem", async () => {
    // four assignments, all on the front: (0, 5), (1, 3), (2, 2), (3, 0); the grid on
    // objective 1's range [0, 5] (ε = 1.25, 2.5, 3.75) reaches each of the inner ones
    const p: Problem = {
      groups: 2,
      choices: 2,
      objectives: [
        [[0, 1], [0, 2]],
        [[2, 0], [3, 0]],
      ],
      constraints: [],
    };
    const front = await paretoSet(p, { gap: 0 });
    const want = bruteFront(p).map((o) => o.join(",")).sort();
    assert.deepEqual(want, ["0,5", "1,3", "2,2", "3,0"]);
    assert.deepEqual(front.map((s) => s.objectives.join(",")).sort(), want);
    assert.deepEqual(front.map((s) => s.choice), [[0, 0], [1, 0], [0, 1], [1, 1]]);
  });

  await t.step("returns only non-dominated plans on random problems", async () => {
    for (let seed = 21; seed <= 24; seed++) {
      const p = randomProblem(seed, 3, 4, seed % 2 ? 2 : 3);
      const front = bruteFront(p);
      const got = await paretoSet(p, { gap: 0 });
      assert.ok(got.length >= 1);
      for (const s of got) {
        assert.deepEqual(s.objectives, evaluate(p, s.choice).objectives);
        assert.ok(
          front.some((f) => f.every((v, k) => close(v, s.objectives[k]!))),
          `seed ${seed}: ${s.objectives} is dominated`,
        );
      }
      // the extremes: each objective's own minimum is on the returned front
      for (let k = 0; k < p.objectives.length; k++) {
        const best = Math.min(...front.map((f) => f[k]!));
        assert.ok(got.some((s) => close(s.objectives[k]!, best)), `seed ${seed} objective ${k}`);
      }
      assert.equal(new Set(got.map((s) => s.choice.join(","))).size, got.length);
    }
  });
});
