import assert from "node:assert/strict";
import { main } from "../commands/report.ts";
import { elasticSpan } from "../../runtime/spans.ts";
import { fullRun, writeFakeRun } from "./_fixtures.ts";
import { appendHistory } from "./history.ts";
import { writeReport } from "./report.ts";
import { readRun } from "./runs.ts";

const TMP = await Deno.makeTempDir({ prefix: "moa_report_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));

const a = await writeFakeRun(`${TMP}/retrieval`, fullRun("paper-retrieval"));
const b = await writeFakeRun(`${TMP}/ablation`, fullRun("paper-ablation", 3));

/** The marks Vega drew in an SVG's data layer: the elements inside each `data_marks` group. */
function dataMarks(svg: string): number {
  let n = 0;
  for (const m of svg.matchAll(/<g class="[^"]*\bdata_marks"[^>]*>(.*?)<\/g>/gs)) {
    n += [...m[1]!.matchAll(/<(path|rect|line|text)\b/g)].length;
  }
  return n;
}

Deno.test("report draws every chart the runs' data allows, side by side, as SVG with its marks", async () => {
  const out = `${TMP}/out`;
  const r = await writeReport([a, b], out, { now: new Date("2026-01-01T00:00:00Z") });
  assert.deepEqual(r.charts.map((c) => c.id), [
    "longeval-accuracy",
    "longeval-accuracy-deciles",
    "perplexity-perplexity",
    "throughput-prefill_tokens_per_s",
    "throughput-decode_tokens_per_s",
    "throughput-kv_bytes",
    "plan-pareto",
    "plan-map",
  ]);
  // counted from the runs' data: 2 runs × 2 methods × 2 lengths points; × 10 deciles;
  // 2 runs × 3 Pareto plans; 2 runs × 2 layers × 2 kv heads × 2 served lengths
  const want = [8, 80, 8, 8, 8, 8, 6, 16];
  assert.deepEqual(r.charts.map((c) => c.marks), want);
  for (const [i, c] of r.charts.entries()) {
    const svg = await Deno.readTextFile(`${out}/${c.id}.svg`);
    assert.ok(svg.startsWith("<svg"), c.id);
    assert.equal(dataMarks(svg), want[i], `${c.id}: marks in the SVG`);
    assert.ok(r.html.includes(`data-chart="${c.id}" data-marks="${want[i]}"`), c.id);
  }
  // both runs' panels are in the accuracy chart, labelled by experiment
  const acc = await Deno.readTextFile(`${out}/longeval-accuracy.svg`);
  assert.match(acc, /paper-retrieval/);
  assert.match(acc, /paper-ablation/);
  // self-contained: no script, nothing fetched
  assert.equal(/<script|<link|<img|src=|@import/.test(r.html), false);
  assert.equal(/href="(?!#|[\w.-]+\.svg")/.test(r.html), false, "links only to its own SVGs");
  assert.deepEqual(r.notes, []);
});

Deno.test("report's plan map shows each head's span α + β·n at every served length", async () => {
  const out = `${TMP}/plan`;
  const r = await writeReport([a], out);
  const map = r.charts.find((c) => c.id === "plan-map")!;
  const values =
    (map.spec.data as { values: { layer: number; head: number; length: number; span: number }[] })
      .values;
  const plan = (await readRun(a)).plans[0]!.plan;
  assert.equal(values.length, 2 * 2 * 2);
  for (const v of values) {
    const want = elasticSpan(
      plan.alphas[v.layer]![v.head]!,
      plan.betas[v.layer]![v.head]!,
      v.length,
    );
    assert.equal(v.span, Math.round(want), `layer ${v.layer} head ${v.head} at ${v.length}`);
  }
  // e.g. layer 1, head 0: α 0, β 0.5 → 256 at 512 and 512 at 1,024
  assert.deepEqual(values.filter((v) => v.layer === 1 && v.head === 0).map((v) => v.span), [
    256,
    512,
  ]);
  const pareto = r.charts.find((c) => c.id === "plan-pareto")!;
  const points = (pareto.spec.data as { values: { density: number; chosen: string }[] }).values;
  assert.deepEqual(points.map((p) => p.chosen), ["chosen", "Pareto", "Pareto"]);
  // the fixture's densities at the serving length, 1,024: 0.48 − i/100
  assert.deepEqual(
    points.map((p) => p.density),
    [0, 1, 2].map((i) => 0.48 - i / 100),
    "density at the serving length",
  );
});

Deno.test("report notes plans without a recorded Pareto set, and draws history trends and scale", async () => {
  const old = fullRun("old-plans");
  delete old.plans![0]!.pareto;
  const dir = await writeFakeRun(`${TMP}/old`, old);
  const history = `${TMP}/history.csv`;
  const night2 = await writeFakeRun(`${TMP}/night2`, {
    ...fullRun("old-plans", 1),
    gitSha: "def456",
    startedAt: "2026-01-02T00:00:00.000Z",
  });
  await appendHistory(history, [await readRun(dir), await readRun(night2)]);
  const scale = `${TMP}/scale.csv`;
  await Deno.writeTextFile(
    scale,
    "shape,length,stage,method,seconds,peak_bytes\n" +
      "0.5B,1024,profile,,12.5,1000000\n0.5B,2048,profile,,50,2000000\n" +
      "0.5B,1024,decode,dense,0.02,\n0.5B,2048,decode,moa,0.015,\n",
  );
  const r = await writeReport([dir], `${TMP}/notes`, { history, scale });
  assert.equal(r.charts.some((c) => c.id === "plan-pareto"), false);
  assert.match(r.notes[0]!, /Pareto sets not recorded for old-plans: moa@0\.5/);
  assert.ok(r.html.includes("Pareto sets not recorded"));
  const trend = r.charts.find((c) => c.id === "trend-old-plans-accuracy")!;
  assert.equal(trend.marks, 2 * 4, "2 entries × 4 cells");
  // one entry is no trend
  const single = `${TMP}/history-single.csv`;
  await appendHistory(single, [await readRun(dir)]);
  const one = await writeReport([dir], `${TMP}/single`, { history: single });
  assert.equal(one.charts.some((c) => c.id.startsWith("trend-")), false);
  const time = r.charts.find((c) => c.id === "scale-time")!;
  assert.equal(time.marks, 4);
  assert.deepEqual(
    (time.spec.data as { values: { stage: string }[] }).values.map((v) => v.stage),
    ["profile", "profile", "decode dense", "decode moa"],
  );
  assert.equal(r.charts.find((c) => c.id === "scale-memory")!.marks, 2, "memory where measured");
});

Deno.test("report refuses a folder that is not a run, and a malformed scale CSV, naming them", async () => {
  await assert.rejects(main([`${TMP}/nowhere`, "--out", `${TMP}/x`]), /nowhere: not a run folder/);
  const bad = `${TMP}/bad-scale.csv`;
  await Deno.writeTextFile(bad, "shape,length,stage,seconds\n1B,1024,load,fast\n");
  await assert.rejects(
    main([a, "--out", `${TMP}/y`, "--scale", bad]),
    /bad-scale\.csv:2: seconds: expected a number ≥ 0, got 'fast'/,
  );
  await assert.rejects(main([a, "--history", `${TMP}/none.csv`]), /--history: .* does not exist/);
});
