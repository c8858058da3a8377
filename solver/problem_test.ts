import assert from "node:assert/strict";
import { InputError } from "../runtime/errors.ts";
import { Rng } from "../runtime/rng.ts";
import {
  densityProblem,
  densityProblemFromRules,
  dropSlackLimit,
  type Problem,
} from "./problem.ts";
import { solveMilp } from "./milp.ts";
import { candidateRules, ruleDensity } from "./rules.ts";
import { close } from "./_brute.ts";

Deno.test("densityProblem()", async (t) => {
  const rules = candidateRules([256, 512, 1024], 2048);
  const heads = 6;
  const rng = new Rng(5);
  const losses = [256, 512, 1024].map((n) =>
    Array.from(
      { length: heads },
      () => rules.map((r) => (1 - ruleDensity(r, n, 64, 64)) ** (1 + 5 * rng.next())),
    )
  );
  const input = {
    rules,
    losses,
    profileLengths: [256, 512, 1024],
    servingLength: 2048,
    sink: 64,
    block: 64,
    budget: 0.5,
  };

  await t.step("bounds the mean density at every length between 0.9·budget and budget", () => {
    const p = densityProblemFromRules(input);
    assert.deepEqual(p.constraints.map((c) => c.name), [
      "density@256",
      "density@512",
      "density@1024",
      "density@2048",
    ]);
    for (const c of p.constraints) {
      assert.equal(c.upper, 0.5 * heads);
      assert.ok(close(c.lower, 0.45 * heads));
    }
    assert.equal(p.constraints[3]!.coef[2]![7], ruleDensity(rules[7]!, 2048, 64, 64));
  });

  await t.step("gives a plan whose densities meet the budget", async () => {
    const p = densityProblemFromRules({ ...input, headsPerLayer: 3, maxDistinctPerLayer: 2 });
    const s = await solveMilp(p, 2, { gap: 0 });
    for (const n of [256, 512, 1024, 2048]) {
      const mean = s.choice.reduce((a, r) => a + ruleDensity(rules[r]!, n, 64, 64), 0) / heads;
      assert.ok(mean <= 0.5 + 1e-9 && mean >= 0.45 - 1e-9, `mean density ${mean} at ${n}`);
    }
  });

  await t.step("states the smallest feasible density when the budget is below it", () => {
    // at 2048 tokens (32 blocks) the sparsest rule keeps its 1-block sink + 2 band blocks
    // (α = 128, β = 0); at 256 (4 blocks) any rule keeps the sink block and its own: 2 of 4
    const least = (n: number) => Math.min(...rules.map((r) => ruleDensity(r, n, 64, 64)));
    assert.equal(least(2048), 3 / 32);
    assert.equal(least(256), 0.5);
    assert.throws(
      () => densityProblemFromRules({ ...input, budget: 0.05 }),
      (e: Error) =>
        e instanceof InputError &&
        e.message.includes("density 0.05 is below the smallest achievable mean density") &&
        e.message.includes("0.5 at length 256") && e.message.includes("0.09375 at length 2048"),
    );
    assert.throws(
      () => densityProblem({ losses, densities: [[0.5]], densityLengths: [1], budget: 0 }),
      (e: Error) => e instanceof InputError && e.message.includes("(0, 1]"),
    );
  });
});

Deno.test("dropSlackLimit() removes a distinct-rules limit only when no layer can exceed it", () => {
  const base: Problem = {
    groups: 4,
    choices: 3,
    objectives: [[[0, 1, 2], [0, 1, 2], [2, 1, 0], [2, 1, 0]]],
    constraints: [],
  };
  // two heads per layer, limit 2: any assignment has at most 2 distinct rules in a layer
  const slack = { ...base, maxDistinctPerLayer: { layerOfHead: [0, 0, 1, 1], limit: 2 } };
  assert.equal(dropSlackLimit(slack).maxDistinctPerLayer, undefined);
  assert.deepEqual(dropSlackLimit(slack).objectives, base.objectives);
  // three heads in layer 0, limit 2: three distinct rules are possible there, so it stays
  const binding = { ...base, maxDistinctPerLayer: { layerOfHead: [0, 0, 0, 1], limit: 2 } };
  assert.deepEqual(dropSlackLimit(binding), binding);
  assert.equal(dropSlackLimit(base), base);
});
