/**
 * End-to-end runs of the successor baselines (SnapKV, Ada-KV, DuoAttention) and RULER on a small
 * random model: the metrics each cell writes, the KV density each method keeps, DuoAttention's
 * gates written in the published layout and imported again.
 *
 * @module
 */
import assert from "node:assert/strict";
import { writeRandomModel } from "../data/models/init_random.ts";
import { loadDuoPattern } from "../runtime/duo.ts";
import { readCasesCsv } from "./csv.ts";
import type { Progress } from "./progress.ts";
import { runExperiment } from "./run.ts";
import { loadExperiment } from "./schema.ts";
import { summaryTables } from "./table.ts";

const TMP = await Deno.makeTempDir({ prefix: "moa_successors_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));
const MODEL = `${TMP}/model`;
await writeRandomModel(MODEL, { layers: 2, hidden: 32, heads: 4, kvHeads: 2, seed: 5 });
const nothing = () => {};
const quiet: Progress = {
  start: nothing,
  update: nothing,
  finish: nothing,
  log: nothing,
  stop: nothing,
};

async function run(name: string, fields: Record<string, unknown>) {
  const file = `${TMP}/${name}.json`;
  await Deno.writeTextFile(
    file,
    JSON.stringify({
      name,
      model: MODEL,
      methods: ["dense", "snapkv", "adakv", "duo"],
      densities: [0.5],
      lengths: [640],
      profile: { sink: 8 },
      benchmarks: { ruler: { tasks: ["niah_single_1", "vt"], cases: 4 }, longeval: { cases: 2 } },
      seed: 2,
      backend: "cpu",
      ...fields,
    }),
  );
  const out = `${TMP}/out-${name}`;
  const r = await runExperiment(await loadExperiment(file), {
    out,
    cacheDir: `${TMP}/cache`,
    progress: quiet,
    notice: () => {},
    gitSha: "test",
  });
  return { ...r, out };
}

Deno.test("RULER cells and the successor methods run end to end at their density", async (t) => {
  const first = await run("successors", { duo: { steps: 2, length: 1200 } });
  const value = (method: string, bench: string, metric: string) =>
    first.rows.find((r) => r.method === method && r.benchmark === bench && r.metric === metric)
      ?.value;
  await t.step("every ruler cell has its mean, its per-task scores and its prompt length", () => {
    for (const m of ["dense", "snapkv", "adakv", "duo"]) {
      for (const metric of ["score", "score_niah_single_1", "score_vt", "prompt_tokens"]) {
        const v = Number(value(m, "ruler", metric));
        assert.ok(Number.isFinite(v), `${m} ${metric}`);
      }
      const mean = (Number(value(m, "ruler", "score_niah_single_1")) +
        Number(value(m, "ruler", "score_vt"))) / 2;
      assert.ok(Math.abs(Number(value(m, "ruler", "score")) - mean) < 1e-12, m);
      assert.ok(Number(value(m, "ruler", "prompt_tokens")) <= 640);
    }
  });
  await t.step("each method keeps its density of the prompt's KV entries", () => {
    for (const bench of ["ruler", "longeval"]) {
      assert.equal(Number(value("dense", bench, "kv_density")), 1);
      for (const m of ["snapkv", "adakv", "duo"]) {
        const kept = Number(value(m, bench, "kv_density"));
        assert.ok(Math.abs(kept - 0.5) <= 1 / 64, `${m} ${bench}: ${kept}`);
      }
    }
  });
  await t.step(
    "per-case scores go to cases.csv; the summary prints the per-task table",
    async () => {
      const cases = (await readCasesCsv(`${first.out}/cases.csv`)).filter((r) =>
        String(r.cell).includes("ruler")
      );
      assert.equal(cases.length, 4 * 4);
      const text = summaryTables(first.rows);
      assert.match(text, /ruler 640\s+s1\s+vt\s+mean/);
      assert.match(text, /duo@0\.5/);
    },
  );
  await t.step(
    "duo's trained gates, imported from the files the run wrote, give the same cells",
    async () => {
      const pattern = await loadDuoPattern(`${first.out}/plans/duo`);
      assert.deepEqual([pattern.sink, pattern.recent], [8, 16]);
      const again = await run("imported", { duo: { pattern: `${first.out}/plans/duo` } });
      const duoRows = (rows: typeof first.rows) =>
        rows.filter((r) => r.method === "duo").map((r) => [r.cell, r.metric, r.value]);
      assert.deepEqual(duoRows(again.rows), duoRows(first.rows));
    },
  );
});
