import assert from "node:assert/strict";
import {
  validCases,
  validCell,
  validDuoGates,
  validPlan,
  validProfile,
  validRulerCases,
} from "./artifacts.ts";
import type { Cell } from "./schema.ts";
import { tinyConfig } from "../runtime/random_model.ts";

const cell: Cell = {
  id: "dense-d1-n64-perplexity",
  method: "dense",
  density: 1,
  length: 64,
  benchmark: "perplexity",
};
const metrics = [{ metric: "perplexity", value: 12.5, n: 64 }, {
  metric: "nll",
  value: null,
  n: 0,
}];
const good = { metrics, backend: "cpu", device: "cpu 2 cores", started_at: "2026-01-01T00:00:00Z" };

Deno.test("validCell() returns a stored cell with missing values as NaN, and names what is wrong", () => {
  const art = validCell(good, cell);
  assert.equal(art.metrics[0]!.value, 12.5);
  assert.ok(Number.isNaN(art.metrics[1]!.value), "null is a missing value");
  const bad = (v: unknown, message: RegExp) => assert.throws(() => validCell(v, cell), message);
  bad([], /expected an object, got \[\]/);
  bad({ ...good, metrics: {} }, /metrics: expected a list/);
  bad(
    { ...good, metrics: [{ metric: "", value: 1, n: 1 }] },
    /metrics\[0\]\.metric: expected a name/,
  );
  bad(
    { ...good, metrics: [{ metric: "x", value: "1", n: 1 }] },
    /metrics\[0\]\.value: expected a number/,
  );
  bad(
    { ...good, metrics: [{ metric: "x", value: 1, n: -1 }] },
    /metrics\[0\]\.n: expected a count/,
  );
  bad({ ...good, metrics: [metrics[0]] }, /metrics: no 'nll', which every perplexity cell has/);
  bad({ ...good, device: 3 }, /device: expected a string, got 3/);
  // per-case outcomes are optional (older cells lack them) and checked when present
  assert.equal(art.cases, undefined);
  const cases = [{ id: "c0", hash: "ab", score: 1 }, { id: "c1", hash: "cd", score: 0 }];
  assert.deepEqual(validCell({ ...good, cases }, cell).cases, cases);
  bad({ ...good, cases: {} }, /cases: expected a list/);
  bad({ ...good, cases: [{ id: "c0", score: 1 }] }, /cases\[0\]\.hash: expected a string/);
  bad(
    { ...good, cases: [cases[0], { ...cases[1], score: 2 }] },
    /cases\[1\]\.score: expected a number in \[0, 1\]/,
  );
});

Deno.test("validCases() checks what the LongEval benchmark reads of each case", () => {
  const c = { id: "a", prompt: "p", expected: 7, decile: 3 };
  assert.deepEqual(validCases([c, { ...c, decile: null }]).length, 2);
  assert.throws(() => validCases([]), /expected a non-empty list of cases/);
  assert.throws(() => validCases([{ ...c, prompt: "" }]), /\[0\]\.prompt: expected a prompt/);
  assert.throws(
    () => validCases([c, { ...c, expected: 1.5 }]),
    /\[1\]\.expected: expected an integer/,
  );
  assert.throws(() => validCases([{ ...c, decile: 10 }]), /\[0\]\.decile: expected null or 0–9/);
});

Deno.test("validProfile() and validPlan() check the model's shape", () => {
  const config = tinyConfig({ numLayers: 2, numKvHeads: 1 });
  const profile = {
    length: 64,
    block: 32,
    numBlocks: 2,
    samples: 1,
    values: [[[1, 2, 3, 4]], [[0, 0, 0, 0]]],
  };
  assert.equal(validProfile(profile, config), profile);
  assert.throws(
    () => validProfile({ ...profile, numBlocks: 3 }, config),
    /numBlocks: expected ⌈length \/ block⌉/,
  );
  assert.throws(
    () => validProfile({ ...profile, values: [[[1, 2, 3, 4]]] }, config),
    /values: expected 2 layers × 1 kv heads × 2² finite numbers/,
  );
  const plan = {
    model: "m",
    sink: 4,
    block: 4,
    density: 0.5,
    lengths: [64],
    servingLength: 64,
    alphas: [[8], [16]],
    betas: [[0], [0.5]],
    provenance: {},
  };
  assert.deepEqual(validPlan(plan, config).alphas, [[8], [16]]);
  assert.throws(
    () => validPlan({ ...plan, alphas: [[8, 8], [16, 16]], betas: [[0, 0], [0.5, 0.5]] }, config),
    /plan: expected 2 layers × 1 kv heads of rules/,
  );
  assert.throws(
    () => validPlan({ ...plan, betas: [[0], [2]] }, config),
    /betas\[1\]\[0\]: expected a number in \[0, 1\]/,
  );
});

Deno.test("validRulerCases() and validDuoGates() accept what the stages store and name what is wrong", () => {
  const c = { id: "vt-n64-s0-0", task: "vt", prompt: "p", expected: ["AB"], maxNew: 8 };
  assert.deepEqual(validRulerCases([c]), [c]);
  assert.throws(() => validRulerCases([]), /expected a non-empty list of cases/);
  assert.throws(
    () => validRulerCases([{ ...c, task: "qa" }]),
    /\[0\]\.task: expected a RULER task, got "qa"/,
  );
  assert.throws(
    () => validRulerCases([{ ...c, expected: [] }]),
    /\[0\]\.expected: expected a list of strings/,
  );
  assert.throws(
    () => validRulerCases([{ ...c, maxNew: 0 }]),
    /\[0\]\.maxNew: expected a positive integer/,
  );
  const config = tinyConfig({ numLayers: 2, numKvHeads: 2 });
  const gates = { gates: [[1, 0.5], [0, 0.25]], history: [] };
  assert.deepEqual(validDuoGates(gates, config), gates);
  assert.throws(
    () => validDuoGates({ ...gates, gates: [[1, 1.5], [0, 0]] }, config),
    /gates: expected 2 layers × 2 kv heads of numbers in \[0, 1\]/,
  );
  assert.throws(() => validDuoGates({ gates: gates.gates }, config), /history: expected a list/);
});
