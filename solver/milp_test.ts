import assert from "node:assert/strict";
import { InputError } from "../runtime/errors.ts";
import { Rng } from "../runtime/rng.ts";
import {
  densityProblem,
  densityProblemFromRules,
  dropSlackLimit,
  evaluate,
  paretoSet,
  type Problem,
  problemToLp,
  pruneDominated,
  solveMilp,
} from "./milp.ts";
import { candidateRules, ruleDensity } from "./rules.ts";

// ---- brute force: the independent reference ----

/** Every feasible assignment of a small problem, with its objective vector. */
function feasibleAssignments(p: Problem): { choice: number[]; objectives: number[] }[] {
  const out: { choice: number[]; objectives: number[] }[] = [];
  const choice = new Array<number>(p.groups).fill(0);
  const total = p.choices ** p.groups;
  for (let code = 0; code < total; code++) {
    let c = code;
    for (let h = 0; h < p.groups; h++) {
      choice[h] = c % p.choices;
      c = Math.floor(c / p.choices);
    }
    if (p.allowed && choice.some((r, h) => !p.allowed![h]![r])) continue;
    const { objectives, constraintValues } = evaluate(p, choice);
    const ok = p.constraints.every((con, i) => {
      const v = constraintValues[i]!;
      return v >= con.lower - 1e-9 && v <= con.upper + 1e-9;
    });
    if (!ok) continue;
    const d = p.maxDistinctPerLayer;
    if (d) {
      const sets = new Map<number, Set<number>>();
      choice.forEach((r, h) => {
        const l = d.layerOfHead[h]!;
        if (!sets.has(l)) sets.set(l, new Set());
        sets.get(l)!.add(r);
      });
      if ([...sets.values()].some((s) => s.size > d.limit)) continue;
    }
    out.push({ choice: [...choice], objectives });
  }
  return out;
}

function bruteMin(p: Problem, weights: number[]): number {
  let best = Infinity;
  for (const a of feasibleAssignments(p)) {
    best = Math.min(best, weights.reduce((s, w, k) => s + w * a.objectives[k]!, 0));
  }
  return best;
}

function bruteFront(p: Problem): number[][] {
  const pts = feasibleAssignments(p).map((a) => a.objectives);
  const dominated = (a: number[], b: number[]) =>
    a.every((v, k) => v <= b[k]!) && a.some((v, k) => v < b[k]!);
  return pts.filter((b) => !pts.some((a) => dominated(a, b)));
}

const close = (a: number, b: number, tol = 1e-9) =>
  Math.abs(a - b) <= tol * Math.max(1, Math.abs(a), Math.abs(b));

/**
 * A random problem shaped like MoA's: `heads` heads, `rules` rules; objectives fall with a
 * per-rule "density"; one ≤ constraint and one two-sided constraint on that density.
 */
function randomProblem(seed: number, heads = 4, rules = 5, objectives = 2): Problem {
  const rng = new Rng(seed);
  const density = Array.from({ length: rules }, () => 0.1 + 0.9 * rng.next());
  const density2 = density.map((d) => Math.min(1, d * (0.7 + 0.6 * rng.next())));
  const obj = Array.from(
    { length: objectives },
    () =>
      Array.from(
        { length: heads },
        () => density.map((d) => (1 - d) ** (1 + 4 * rng.next()) + 0.05 * rng.next()),
      ),
  );
  const budget = heads * (0.35 + 0.3 * rng.next());
  return {
    groups: heads,
    choices: rules,
    objectives: obj,
    constraints: [
      {
        name: "d1",
        coef: Array.from({ length: heads }, () => [...density]),
        lower: -Infinity,
        upper: budget,
      },
      {
        name: "d2",
        coef: Array.from({ length: heads }, () => [...density2]),
        lower: 0.5 * budget,
        upper: 1.2 * budget,
      },
    ],
  };
}

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

  await t.step("problemToLp() writes one binary per head and rule", () => {
    const p = randomProblem(2, 2, 3);
    const lp = problemToLp(p, 0);
    assert.match(lp, /^Minimize\n obj:/);
    assert.match(lp, / one_1:\n \+ 1 x_1_0 \+ 1 x_1_1 \+ 1 x_1_2\n = 1/);
    assert.match(lp, /\nBinary\n x_0_0 x_0_1 x_0_2 x_1_0 x_1_1 x_1_2\nEnd\n$/);
  });
});

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
