/**
 * The experiment files this repository ships (everything under experiments/ but testdata/) stay
 * runnable: each parses, its cells have distinct ids, and those on the embedded moa-tiny pass the
 * runner's preflight (model, lengths, case generation, perplexity text) with no warning. The
 * paper's files are run by hand for hours; this catches an edit that would make one fail at its
 * start, or run past the model's context, before anyone spends those hours.
 */
import assert from "node:assert/strict";
import { expandCells, loadExperiment } from "./schema.ts";
import { preflight } from "./preflight.ts";

const root = new URL(".", import.meta.url).pathname;

/** Experiment files under `dir`, testdata excluded, sorted. */
async function experimentFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory && e.name !== "testdata") out.push(...await experimentFiles(path));
    else if (e.isFile && /\.ya?ml$/.test(e.name)) out.push(path);
  }
  return out.sort();
}

const files = await experimentFiles(root.replace(/\/$/, ""));

Deno.test("the shipped experiment files include the default and the paper's", () => {
  const names = files.map((f) => f.slice(root.length));
  for (const want of ["default.yaml", "paper/retrieval.yaml", "paper/baselines.yaml"]) {
    assert.ok(names.includes(want), `${want} not found among ${names.join(", ")}`);
  }
});

for (const file of files) {
  const name = file.slice(root.length);
  Deno.test(`experiments/${name}: parses; on moa-tiny, passes preflight with no warning`, async () => {
    const exp = await loadExperiment(file);
    const cells = expandCells(exp);
    assert.ok(cells.length > 0, "no cells");
    const ids = cells.map((c) => c.id);
    assert.equal(new Set(ids).size, ids.length, "two cells share an id");
    // files on other models (a real checkpoint the user downloads) are checked only as text
    if (exp.model !== "moa-tiny") return;
    const checked = await preflight(exp, file);
    assert.deepEqual(checked.warnings, []);
    for (const length of exp.lengths) assert.ok(length <= checked.config.maxPositionEmbeddings);
  });
}
