import assert from "node:assert/strict";
import { CpuModel, forwardLogits } from "../runtime/cpu/forward.ts";
import { randomModel, tinyConfig } from "../runtime/random_model.ts";
import { byteModel } from "../runtime/_testing.ts";
import {
  loadInfluence,
  makePlan,
  type PlanSearch,
  type PlanSettings,
  type ProfileCache,
  storeInfluence,
  validationLoss,
} from "./pipeline.ts";
import { isMoa, METHODS, planRecipe } from "../runtime/methods.ts";
import { ruleDensity } from "./rules.ts";

const { cpu, tok } = byteModel();

Deno.test("makePlan() runs calibrate → profile → optimize → validate within the budget", async () => {
  const settings = {
    density: 0.5,
    lengths: [640, 768],
    servingLength: 1024,
    samples: 2,
    block: 64,
    sink: 64,
    seed: 1,
    timeLimit: 20,
  };
  const { plan, pareto } = await makePlan(cpu, tok, "tiny", settings);
  assert.equal(plan.alphas.length, 2);
  assert.equal(plan.alphas[0]!.length, 2, "one rule per kv head");
  assert.ok(pareto.length >= 1);
  const chosen = plan.provenance.validation_loss as number;
  assert.equal(
    chosen,
    Math.min(...pareto.map((p) => p.validationLoss)),
    "the plan with the lowest validation loss",
  );
  for (const N of [640, 768, 1024]) {
    const d = plan.alphas.flatMap((row, l) =>
      row.map((a, g) => ruleDensity({ alpha: a, beta: plan.betas[l]![g]! }, N, 64, 64))
    );
    const mean = d.reduce((x, y) => x + y, 0) / d.length;
    assert.ok(mean <= 0.5 + 1e-9 && mean >= 0.45 - 1e-9, `mean density ${mean} at ${N}`);
    // the recorded Pareto set starts with the chosen plan, its densities those of its rules
    const recorded = (plan.provenance.pareto as { densities: Record<string, number> }[])[0]!;
    assert.ok(Math.abs(recorded.densities[`density@${N}`]! - mean) < 1e-9, `density@${N}`);
  }
  const front = plan.provenance.pareto as { validation_loss: number }[];
  assert.equal(front.length, pareto.length, "the whole Pareto set is recorded");
  assert.equal(front[0]!.validation_loss, chosen);
  assert.ok(Number.isFinite(chosen));
});

Deno.test("validationLoss() with a plan that keeps everything is the dense masked loss", async () => {
  const config = tinyConfig({ vocabSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2 });
  const model = randomModel(config, 5, 10);
  const cpu = new CpuModel(model);
  const T = 80;
  const tokens = Int32Array.from({ length: T }, (_, i) => (i * 7 + 3) % 64);
  const targets = Int32Array.from({ length: T }, (_, i) => (i * 5 + 1) % 64);
  const mask = Float32Array.from({ length: T }, (_, i) => (i >= 60 ? 1 : 0));
  const logits = await forwardLogits(model, tokens);
  let want = 0;
  for (let t = 60; t < T; t++) {
    const row = Array.from(logits.subarray(t * 64, (t + 1) * 64));
    const mx = Math.max(...row);
    want -= row[targets[t]!]! - mx - Math.log(row.reduce((a, x) => a + Math.exp(x - mx), 0));
  }
  want /= 20;
  const full = { sink: 4, alphas: [[0, 0], [0, 0]], betas: [[1, 1], [1, 1]] };
  const got = await validationLoss(cpu, full, [{ tokens, targets, mask }]);
  assert.ok(Math.abs(got - want) < 1e-5, `${got} vs ${want}`);
  const narrow = { sink: 4, alphas: [[8, 8], [8, 8]], betas: [[0, 0], [0, 0]] };
  assert.ok(
    Math.abs((await validationLoss(cpu, narrow, [{ tokens, targets, mask }])) - want) > 1e-4,
  );
});

Deno.test("makePlan() ablation searches tie heads as asked and use static windows", async () => {
  const base = {
    density: 0.5,
    lengths: [640],
    servingLength: 960,
    samples: 1,
    block: 64,
    sink: 64,
    seed: 1,
    timeLimit: 20,
  };
  const rules = async (search: "uniform" | "layer" | "head") => {
    const { plan } = await makePlan(cpu, tok, "tiny", { ...base, search });
    assert.ok(plan.betas.flat().every((b) => b === 0), `${search}: static windows only`);
    return plan.alphas;
  };
  const u = await rules("uniform");
  assert.equal(new Set(u.flat()).size, 1, "uniform: one window for every head");
  const l = await rules("layer");
  l.forEach((row) => assert.equal(new Set(row).size, 1, "layer: one window per layer"));
  const h = await rules("head");
  assert.equal(h.length, 2);
});

Deno.test("makePlan() profiles each length once through its cache, and plans as without it", async () => {
  const base = {
    density: 0.5,
    lengths: [640, 704],
    servingLength: 768,
    samples: 1,
    block: 64,
    sink: 64,
    seed: 3,
    timeLimit: 20,
  };
  const stored = new Map<string, string>();
  let computed = 0;
  const cache: ProfileCache = async (key, compute) => {
    const k = JSON.stringify(key);
    if (!stored.has(k)) {
      computed++;
      stored.set(k, JSON.stringify(storeInfluence(await compute())));
    }
    return loadInfluence(JSON.parse(stored.get(k)!));
  };
  await makePlan(cpu, tok, "tiny", base, () => {}, cache);
  assert.equal(computed, 2, "one profile per length");
  const again = await makePlan(cpu, tok, "tiny", { ...base, density: 0.4 }, () => {}, cache);
  assert.equal(computed, 2, "a second density profiles nothing");
  const fresh = await makePlan(cpu, tok, "tiny", { ...base, density: 0.4 });
  assert.deepEqual([again.plan.alphas, again.plan.betas], [fresh.plan.alphas, fresh.plan.betas]);
  await makePlan(cpu, tok, "tiny", { ...base, calibration: "context" }, () => {}, cache);
  assert.equal(computed, 4, "another calibration is another profile");
});

Deno.test("every MoA method of the registry names a search space and calibration makePlan takes", () => {
  const searches: PlanSearch[] = ["uniform", "layer", "head", "elastic"];
  for (const m of METHODS.filter(isMoa)) {
    // a recipe outside PlanSettings' types would not compile here
    const recipe: Pick<PlanSettings, "search" | "calibration"> = planRecipe(m);
    assert.ok(searches.includes(recipe.search!), `${m}: ${recipe.search}`);
    assert.ok(["model", "reference", "context"].includes(recipe.calibration!), m);
  }
});
