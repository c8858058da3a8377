import assert from "node:assert/strict";
import { join } from "node:path";
import type { Row } from "./csv.ts";
import { writeMetricsCsv } from "./csv.ts";
import { summaryTables } from "./table.ts";
import { main as tableMain } from "./commands/table.ts";
import { InputError } from "../runtime/errors.ts";

const base: Row = {
  experiment: "e",
  run_id: "r",
  cell: "c",
  model: "m",
  method: "moa",
  density: 0.5,
  length: 1024,
  benchmark: "longeval",
  metric: "accuracy",
  value: 0.5,
  n: 100,
  seed: 0,
  backend: "cpu",
  device: "cpu",
  git_sha: "x",
  started_at: "",
};

Deno.test("summaryTables() shows one run's values as they are and several seeds as mean (range)", () => {
  const one = summaryTables([base]).split("\n");
  assert.deepEqual(one.slice(0, 3), [
    "longeval accuracy  1024",
    "─────────────────  ────",
    "moa@0.5            0.50",
  ]);
  const seeds = [0.75, 0.84, 0.81].map((value, seed) => ({ ...base, value, seed }));
  const missing = { ...base, length: 2048, value: "" }; // nothing to measure in that cell
  const same = [0, 1].map((seed) => ({ ...base, length: 4096, value: 0.301, seed }));
  const text = summaryTables([...seeds, missing, ...same]);
  assert.match(text, /moa@0\.5\s+0\.80 \(0\.75–0\.84\)\s+n\/a\s+0\.30$/m);
});

Deno.test("summaryTables({ markdown }) writes Markdown tables, RULER's per-task ones too", () => {
  const rows: Row[] = [
    { ...base, value: 0.9 },
    { ...base, value: 0.7, seed: 1 },
    { ...base, benchmark: "ruler", metric: "score", value: 0.4 },
    { ...base, benchmark: "ruler", metric: "score_niah_single_1", value: 0.6 },
  ];
  const md = summaryTables(rows, { markdown: true }).split("\n");
  assert.deepEqual(md.slice(0, 3), [
    "| longeval accuracy | 1024 |",
    "| --- | --- |",
    "| moa@0.5 | 0.80 (0.70–0.90) |",
  ]);
  assert.ok(md.includes("| ruler 1024 | s1 | mean |"), md.join("\n"));
  assert.ok(md.includes("| moa@0.5 | 0.60 | 0.40 |"), md.join("\n"));
});

Deno.test("deno task table refuses folders of different experiments or the same seed twice", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const write = async (name: string, rows: Row[]) => {
      await Deno.mkdir(join(dir, name));
      await writeMetricsCsv(join(dir, name, "metrics.csv"), rows);
      return join(dir, name);
    };
    const a = await write("a", [base]);
    const b = await write("b", [{ ...base, experiment: "other", seed: 1 }]);
    const c = await write("c", [base]);
    await assert.rejects(
      tableMain([a, b]),
      (e) => e instanceof InputError && /'other'/.test(e.message),
    );
    await assert.rejects(
      tableMain([a, c]),
      (e) => e instanceof InputError && /seed 0/.test(e.message),
    );
    await assert.rejects(tableMain([join(dir, "none")]), InputError);
    assert.equal(await tableMain([a]), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
