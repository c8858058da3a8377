import assert from "node:assert/strict";
import { checkImportOrder, floorOf, importGraph, importsOf, readModules } from "./import_order.ts";

const ROOT = new URL(".", import.meta.url).pathname;

Deno.test("imports run one way, experiments → solver → data → runtime, and never in a circle", async () => {
  const modules = await readModules(ROOT);
  assert.ok(Object.keys(modules).length > 50, "the repository's modules were read");
  for (const floor of ["runtime/hf.ts", "data/brown.ts", "solver/milp.ts", "experiments/run.ts"]) {
    assert.ok(floor in modules, `${floor} is checked`);
  }
  const { upward, cycles } = checkImportOrder(importGraph(modules));
  assert.deepEqual(
    upward.map((u) => `${u.from} → ${u.to}`),
    [],
    "imports that go up a floor (move the code down, or the importer up)",
  );
  assert.deepEqual(cycles, [], "modules that import each other in a circle");
});

Deno.test("the check fails on a planted upward import and a planted circle", () => {
  const graph = importGraph({
    "mod.ts": 'export { run } from "./experiments/run.ts";',
    "experiments/run.ts": 'import { plan } from "../solver/plan.ts";',
    "solver/plan.ts": 'import { spans } from "../runtime/spans.ts";',
    // planted: runtime reaches up to data
    "runtime/spans.ts": 'import type { Case } from "../data/cases.ts";',
    "data/cases.ts": "export type Case = string;",
    // planted: a circle of three inside solver, one of them dynamic
    "solver/a.ts": 'import { b } from "./b.ts";',
    "solver/b.ts": 'export { c } from "./c.ts";',
    "solver/c.ts": 'const a = await import("./a.ts");',
  });
  const { upward, cycles } = checkImportOrder(graph);
  assert.deepEqual(upward, [{ from: "runtime/spans.ts", to: "data/cases.ts" }]);
  assert.deepEqual(cycles, [["solver/a.ts", "solver/b.ts", "solver/c.ts"]]);
  // mended, it passes
  const mended = importGraph({
    "runtime/spans.ts": "export const x = 1;",
    "solver/a.ts": 'import { b } from "./b.ts";',
    "solver/b.ts": 'import { x } from "../runtime/spans.ts";',
  });
  assert.deepEqual(checkImportOrder(mended), { upward: [], cycles: [] });
});

Deno.test("importsOf() finds every form of relative import and nothing else", () => {
  const source = [
    'import assert from "node:assert/strict";',
    'import { a,\n  b } from "./a.ts";',
    'import type { T } from "../t.ts";',
    'export * from "./all.ts";',
    'export { x as y } from "./x.ts";',
    'const m = await import("../lazy.ts");',
    'import src from "./k.wgsl" with { type: "text" };',
    'import "./side_effect.ts";',
    'import yaml from "yaml";',
  ].join("\n");
  assert.deepEqual(importsOf(source), [
    "./a.ts",
    "../t.ts",
    "./all.ts",
    "./x.ts",
    "../lazy.ts",
    "./k.wgsl",
    "./side_effect.ts",
  ]);
});

Deno.test("floorOf() puts mod.ts above the four floors and other folders outside them", () => {
  assert.deepEqual(
    ["runtime/a.ts", "data/b/c.ts", "solver/d.ts", "experiments/e/f.ts", "mod.ts", "x.ts"].map(
      floorOf,
    ),
    [0, 1, 2, 3, 4, null],
  );
});
