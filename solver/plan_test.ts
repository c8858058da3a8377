import assert from "node:assert/strict";
import { InputError } from "../runtime/errors.ts";
import {
  exportReferencePlan,
  formatReferencePlan,
  importReferencePlan,
  importReferencePlanFor,
  type Plan,
  planFromChoice,
  planProvenance,
  readPlan,
  toKvHeads,
  toQueryHeads,
  validatePlan,
  writePlan,
} from "./plan.ts";
import { candidateRules } from "./rules.ts";

const meta = {
  model: "moa-tiny",
  sink: 64,
  block: 64,
  density: 0.5,
  lengths: [2048, 4096, 8192],
  servingLength: 16384,
};

function samplePlan(): Plan {
  return {
    ...meta,
    alphas: [[0, -1024, 1024], [2048, 0, 8192]],
    betas: [[0.5, 0.75, 0.125], [0, 1, 0]],
    provenance: { created_at: "2025-01-01T00:00:00.000Z", git_sha: "abc", objectives: [1.5, 2] },
  };
}

/** Writes `value` as JSON to a fresh file and returns readPlan's error message. */
async function readError(value: unknown): Promise<string> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/plan.json`;
  await Deno.writeTextFile(path, typeof value === "string" ? value : JSON.stringify(value));
  try {
    await readPlan(path);
  } catch (e) {
    assert.ok(e instanceof InputError, `expected an InputError, got ${e}`);
    assert.ok(e.message.startsWith(`${path}: `), e.message);
    return e.message.slice(path.length + 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  throw new Error("readPlan accepted a malformed plan");
}

Deno.test("writePlan() and readPlan()", async (t) => {
  await t.step("round-trip a plan exactly, leaving no temporary file", async () => {
    const dir = await Deno.makeTempDir();
    const plan = samplePlan();
    await writePlan(`${dir}/sub/plan.json`, plan);
    assert.deepEqual(await readPlan(`${dir}/sub/plan.json`), plan);
    const names = [...Deno.readDirSync(`${dir}/sub`)].map((e) => e.name);
    assert.deepEqual(names, ["plan.json"]);
    const text = await Deno.readTextFile(`${dir}/sub/plan.json`);
    assert.ok(text.includes("    [0, -1024, 1024],\n"), "one layer per line");
    await Deno.remove(dir, { recursive: true });
  });

  await t.step("name the bad field, its value and what was expected", async () => {
    const bad = (patch: Record<string, unknown>) => ({ ...samplePlan(), ...patch });
    assert.match(await readError("{ not json"), /^not valid JSON: /);
    assert.equal(await readError([1]), "plan: expected a JSON object, got [1]");
    const { density: _, ...noDensity } = samplePlan();
    assert.equal(await readError(noDensity), "density: expected a number in (0, 1], got nothing");
    assert.equal(await readError(bad({ sink: 1.5 })), "sink: expected an integer ≥ 0, got 1.5");
    assert.equal(await readError(bad({ model: "" })), 'model: expected a non-empty string, got ""');
    assert.equal(
      await readError(bad({ lengths: [2048, -1] })),
      "lengths[1]: expected a positive integer, got -1",
    );
    assert.equal(
      await readError(bad({ alphas: [[0, 1, 2], [0, "x", 2]] })),
      'alphas[1][1]: expected a finite number, got "x"',
    );
    assert.equal(
      await readError(bad({ alphas: [[0, 1, 2], [0, 1]] })),
      'alphas[1]: expected 3 heads like alphas[0], got "2 heads"',
    );
    assert.equal(
      await readError(bad({ betas: [[0.5, 0.75, 1.5], [0, 1, 0]] })),
      "betas[0][2]: expected a number in [0, 1], got 1.5",
    );
    assert.equal(
      await readError(bad({ betas: [[0.5, 0.75, 1]] })),
      'betas: expected 2 layers × 3 heads like alphas, got "1 × 3"',
    );
    assert.equal(
      await readError(bad({ provenance: "today" })),
      'provenance: expected a JSON object, got "today"',
    );
  });

  await t.step("report a missing file as an InputError", async () => {
    await assert.rejects(
      () => readPlan("/nonexistent/plan.json"),
      (e: Error) => e instanceof InputError && e.message.includes("/nonexistent/plan.json"),
    );
  });

  await t.step("refuse to write a malformed plan", async () => {
    const dir = await Deno.makeTempDir();
    await assert.rejects(
      () => writePlan(`${dir}/p.json`, { ...samplePlan(), density: 0 }),
      InputError,
    );
    assert.equal([...Deno.readDirSync(dir)].length, 0);
    await Deno.remove(dir);
  });
});

Deno.test("reference plans", async (t) => {
  // the reference's layout: only alphas/betas, floats written with ".0", [layer][head]
  const reference = `{
    "alphas": [[0.0, -1024.0, 1024.0], [2048.0, 0.0, 8192.0]],
    "betas": [[0.5, 0.75, 0.125], [0.0, 1.0, 0.0]]
  }`;

  await t.step("importReferencePlan() reads the [layer][head] layout", () => {
    const plan = importReferencePlan(reference, meta);
    assert.deepEqual(plan, { ...samplePlan(), provenance: {} });
  });

  await t.step("export then import round-trips, and import then export too", () => {
    const plan = samplePlan();
    const back = importReferencePlan(exportReferencePlan(plan), {
      ...meta,
      provenance: plan.provenance,
    });
    assert.deepEqual(back, plan);
    assert.deepEqual(
      exportReferencePlan(importReferencePlan(reference, meta)),
      JSON.parse(reference),
    );
  });

  await t.step("importReferencePlan() rejects a per-length nested plan with a message", () => {
    const nested = { alphas: [[[0, 1]], [[0, 1]]], betas: [[[0.5, 0.5]], [[0.5, 0.5]]] };
    assert.throws(
      () => importReferencePlan(nested, meta, "moa_alpha_beta.json"),
      (e: Error) =>
        e instanceof InputError &&
        e.message.startsWith("moa_alpha_beta.json: alphas[0][0]: expected a number, got a list") &&
        e.message.includes("[length][layer][head]"),
    );
    assert.throws(() => importReferencePlan("{", meta), /reference plan: not valid JSON/);
  });
});

Deno.test("planFromChoice() lays the chosen rules out by layer and head", async () => {
  const rules = candidateRules([2048, 4096, 8192], 16384);
  const choice = [0, 47, 5, 6, 47, 0]; // 2 layers × 3 heads
  const plan = planFromChoice(rules, choice, 3, { ...meta, provenance: { objectives: [1] } });
  assert.deepEqual(plan.alphas, [
    [rules[0]!.alpha, 0, rules[5]!.alpha],
    [rules[6]!.alpha, 0, rules[0]!.alpha],
  ]);
  assert.deepEqual(plan.betas[0], [rules[0]!.beta, 1, rules[5]!.beta]);
  assert.deepEqual(validatePlan(plan, "x"), plan);
  assert.throws(() => planFromChoice(rules, [0, 1, 2, 3], 3, meta), RangeError);
  const prov = await planProvenance({ objectives: [1, 2] });
  assert.ok(!Number.isNaN(Date.parse(String(prov.created_at))));
  assert.ok(prov.git_sha === null || /^[0-9a-f]{40}$/.test(String(prov.git_sha)));
  assert.deepEqual(prov.objectives, [1, 2]);
});

const testdata = (name: string) => new URL(`./testdata/${name}`, import.meta.url).pathname;
/** The reference's defaults for what its layout lacks. */
const refMeta = { ...meta, spans: "reference" as const };

Deno.test("reference plans of grouped-query models", async (t) => {
  const gqa = await Deno.readTextFile(testdata("reference_gqa.json"));
  const disagree = await Deno.readTextFile(testdata("reference_gqa_disagree.json"));
  const mha = await Deno.readTextFile(testdata("reference_mha.json"));
  const tiny = { numLayers: 4, numHeads: 4, numKvHeads: 2 };

  await t.step("formatReferencePlan() writes the published layout byte for byte", () => {
    for (const text of [gqa, disagree, mha]) {
      assert.equal(formatReferencePlan(JSON.parse(text)), text);
    }
  });

  await t.step("an MHA plan imports as it is and exports to the same text", () => {
    const shape = { numLayers: 2, numHeads: 4, numKvHeads: 4 };
    const { plan, disagreements } = importReferencePlanFor(mha, refMeta, shape, "mha.json");
    assert.deepEqual(disagreements, []);
    assert.deepEqual(plan.alphas, JSON.parse(mha).alphas);
    assert.equal(plan.spans, "reference");
    assert.equal(formatReferencePlan(exportReferencePlan(plan, 4)), mha);
  });

  await t.step("a per-query-head plan becomes one rule per kv head, and exports back", () => {
    const { plan, disagreements } = importReferencePlanFor(gqa, refMeta, tiny, "gqa.json");
    assert.deepEqual(disagreements, []);
    assert.deepEqual(plan.alphas, [[0, -1024], [1024, 0], [2048, -1024], [0, 8192]]);
    assert.deepEqual(plan.betas, [[0.5, 0.875], [0.125, 0.75], [0, 1], [0.25, 0]]);
    assert.equal(formatReferencePlan(exportReferencePlan(plan, 4)), gqa);
    // a plan already in kv heads (this project's export without numHeads) reads as it is
    const kvText = formatReferencePlan(exportReferencePlan(plan));
    assert.deepEqual(importReferencePlanFor(kvText, refMeta, tiny, "kv.json").plan, plan);
  });

  await t.step("a group whose query heads disagree takes the widest rule, and says so", () => {
    const { plan, disagreements } = importReferencePlanFor(disagree, refMeta, tiny, "d.json");
    // layer 0, kv head 1: (−1024, 0.875) keeps 768 + 2560 + 6144 + 13312 keys at 2k/4k/8k/16k
    // under the reference's cache sizes, (0, 0.5) 1024 + 2048 + 4096 + 8192
    assert.deepEqual([plan.alphas[0], plan.betas[0]], [[0, -1024], [0.5, 0.875]]);
    // layer 2, kv head 0: (2048, 0) keeps 2048 at each length, (0, 0.125) 256 … 2048
    assert.deepEqual([plan.alphas[2], plan.betas[2]], [[2048, -1024], [0, 1]]);
    assert.deepEqual(
      disagreements.map((d) => [d.layer, d.kvHead, d.queryHeads]),
      [[0, 1, [2, 3]], [2, 0, [0, 1]]],
    );
    assert.equal(
      disagreements[0]!.message,
      "layer 0 kv head 1 (query heads 2–3): rules differ ((-1024, 0.875) ×1, (0, 0.5) ×1); " +
        "kept the widest, (-1024, 0.875), though (0, 0.5) keeps more at 2048 tokens",
    );
    assert.equal(disagreements[1]!.narrowerAt, null);
    // exported, every query head of a group carries the kept rule
    const back = exportReferencePlan(plan, 4);
    assert.deepEqual(back.alphas[0], [0, 0, -1024, -1024]);
    assert.deepEqual(back.betas[2], [0, 0, 1, 1]);
  });

  await t.step("the widest rule follows the plan's span semantics", () => {
    const plan: Plan = {
      ...meta,
      lengths: [128],
      servingLength: 256,
      sink: 0,
      block: 64,
      alphas: [[65, 0]],
      betas: [[0, 0.45]],
      provenance: {},
    };
    // per-query: (65, 0) keeps 65 + 65 keys at 128 and 256 tokens, (0, 0.45) 57.6 + 115.2
    assert.deepEqual(toKvHeads(plan, 1).plan.alphas, [[0]]);
    // reference: (65, 0) is rounded up to 128 + 128 slots, (0, 0.45) to 64 + 128
    assert.deepEqual(toKvHeads({ ...plan, spans: "reference" }, 1).plan.alphas, [[65]]);
  });

  await t.step("layers and heads that do not fit the model are named", () => {
    assert.throws(
      () => importReferencePlanFor(gqa, refMeta, { ...tiny, numLayers: 16 }, "gqa.json"),
      (e: Error) =>
        e instanceof InputError &&
        e.message ===
          'gqa.json: alphas: expected 16 layers (the model\'s num_hidden_layers), got "4 layers"',
    );
    assert.throws(
      () =>
        importReferencePlanFor(
          gqa,
          refMeta,
          { numLayers: 4, numHeads: 32, numKvHeads: 8 },
          "gqa.json",
        ),
      (e: Error) =>
        e instanceof InputError &&
        e.message ===
          "gqa.json: alphas[0]: expected 32 heads (one per query head) or 8 (one per kv " +
            'head), got "4 heads"',
    );
    assert.throws(() => toKvHeads(samplePlan(), 2), /3 query heads do not split into 2 kv heads/);
    assert.throws(() => toQueryHeads(samplePlan(), 4), /3 kv heads per layer do not spread over 4/);
  });

  await t.step("a plan file keeps its span semantics, and checks it", async () => {
    const dir = await Deno.makeTempDir();
    const plan = { ...samplePlan(), spans: "reference" as const };
    await writePlan(`${dir}/p.json`, plan);
    assert.deepEqual(await readPlan(`${dir}/p.json`), plan);
    await Deno.remove(dir, { recursive: true });
    assert.equal(
      await readError({ ...samplePlan(), spans: "per-head" }),
      'spans: expected one of "per-query", "reference", got "per-head"',
    );
    assert.equal(
      await readError({ ...samplePlan(), spans: "reference", sink: 32 }),
      "sink: expected a multiple of block 64 (the reference span semantics keeps whole sink " +
        "blocks), got 32",
    );
  });
});
