import assert from "node:assert/strict";
import { InputError } from "../../runtime/errors.ts";
import { main } from "../commands/compare.ts";
import { compareRuns, repeatKey } from "./compare.ts";
import { cellId, type FakeCell, outcomes, writeFakeRun } from "./_fixtures.ts";
import { readRun } from "./runs.ts";
import { mcnemarExact } from "./stats.ts";

const TMP = await Deno.makeTempDir({ prefix: "moa_compare_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));

/** A LongEval cell with 50 cases, `k` right (the first k), and a throughput cell. */
function cells(
  k: number,
  decode: number,
  opts: { cases?: boolean; set?: string } = {},
): FakeCell[] {
  return [
    {
      method: "moa",
      density: 0.5,
      length: 1024,
      benchmark: "longeval",
      metrics: {
        accuracy: { value: k / 50, n: 50 },
        accuracy_decile_0: { value: 0, n: 5 },
        prompt_tokens: { value: 1000, n: 50 },
      },
      ...(opts.cases === false ? {} : { cases: { scores: outcomes(k, 50), set: opts.set ?? "s" } }),
    },
    {
      method: "moa",
      density: 0.5,
      length: 1024,
      benchmark: "perplexity",
      metrics: { perplexity: { value: 12, n: 4096 }, nll: { value: Math.log(12), n: 4096 } },
    },
    {
      method: "moa",
      density: 0.5,
      length: 1024,
      benchmark: "throughput",
      metrics: {
        decode_tokens_per_s: { value: decode, n: 32 },
        kv_bytes: { value: 65536, n: 1 },
      },
    },
  ];
}

const LE = cellId({ method: "moa", density: 0.5, length: 1024, benchmark: "longeval" });
const TP = cellId({ method: "moa", density: 0.5, length: 1024, benchmark: "throughput" });
const base = await writeFakeRun(`${TMP}/base`, { name: "bench", cells: cells(40, 100) });
/** Repeats of the base: decode speed 97–104 tokens/s (a few percent of noise). */
const repeats = await Promise.all(
  [97, 104, 99].map((v, i) =>
    writeFakeRun(`${TMP}/repeat${i}`, { name: "bench", cells: cells(40, v) })
  ),
);

const verdictOf = (c: ReturnType<typeof compareRuns>, cell: string, metric: string) =>
  c.verdicts.find((v) => v.cell === cell && v.metric === metric)!;

Deno.test("compare: an identical rerun is no regression, its speed within the noise band", async () => {
  const rerun = await writeFakeRun(`${TMP}/rerun`, { name: "bench", cells: cells(40, 101.5) });
  const repeat = new Map([[repeatKey(TP, "decode_tokens_per_s"), [97, 104, 99]]]);
  const c = compareRuns(await readRun(base), await readRun(rerun), { repeats: repeat });
  const acc = verdictOf(c, LE, "accuracy");
  assert.equal(acc.outcome, "same");
  assert.match(acc.test, /^McNemar exact, 50 pairs \(0 worse, 0 better\)/);
  assert.equal(acc.p, 1);
  const speed = verdictOf(c, TP, "decode_tokens_per_s");
  assert.equal(speed.outcome, "same");
  assert.ok(speed.interval!.lo < 1.015 && speed.interval!.hi > 1.015);
  assert.equal(c.verdicts.some((v) => v.metric.includes("decile")), false, "deciles left out");
  assert.equal(verdictOf(c, LE, "prompt_tokens").outcome, "info");
  assert.equal(
    await main([base, rerun, "--repeats", repeats.join(",")]),
    0,
    "exit code 0 without a regression",
  );
});

Deno.test("compare: a planted regression is flagged (paired accuracy, speed below the band, costs)", async () => {
  // 10 of the 40 right answers turn wrong; decode speed drops by 30%; KV bytes and
  // perplexity rise
  const worse = cells(30, 70);
  worse[1]!.metrics.perplexity = { value: 12.5, n: 4096 };
  worse[2]!.metrics.kv_bytes = { value: 65600, n: 1 };
  const bad = await writeFakeRun(`${TMP}/bad`, { name: "bench", cells: worse });
  const repeat = new Map([[repeatKey(TP, "decode_tokens_per_s"), [97, 104, 99]]]);
  const c = compareRuns(await readRun(base), await readRun(bad), { repeats: repeat });
  const acc = verdictOf(c, LE, "accuracy");
  assert.equal(acc.outcome, "regression");
  assert.equal(acc.p, mcnemarExact(10, 0));
  assert.ok(Math.abs(acc.change - -0.2) < 1e-12);
  assert.equal(verdictOf(c, TP, "decode_tokens_per_s").outcome, "regression");
  assert.equal(verdictOf(c, TP, "kv_bytes").outcome, "regression", "any rise in KV bytes");
  assert.equal(
    verdictOf(c, cellId({ ...worse[1]!, benchmark: "perplexity" }), "perplexity").outcome,
    "regression",
    "perplexity +4%",
  );
  const md = `${TMP}/summary.md`;
  await Deno.writeTextFile(md, "# earlier summary\n");
  assert.equal(await main([base, bad, "--repeats", repeats.join(","), "--markdown", md]), 1);
  const text = await Deno.readTextFile(md);
  assert.ok(text.startsWith("# earlier summary\n"), "the summary is appended to");
  assert.match(text, /\*\*Regression\.\*\* 4 regression\(s\)/);
  assert.match(text, /\| moa-d0\.5-n1024-longeval \| accuracy \| 0\.800 \| 0\.600 \| -0\.200 \|/);
});

Deno.test("compare: a 0.04 drop over 50 unpaired cases is not a regression; 0.30 is", async () => {
  const a = await writeFakeRun(`${TMP}/unpaired-a`, {
    name: "bench",
    cells: cells(40, 100, { cases: false }),
  });
  const b = await writeFakeRun(`${TMP}/unpaired-b`, {
    name: "bench",
    cells: cells(38, 100, { cases: false }),
  });
  const c = compareRuns(await readRun(a), await readRun(b));
  const acc = verdictOf(c, LE, "accuracy");
  assert.equal(acc.outcome, "same");
  assert.match(acc.test, /^Newcombe 95% interval/);
  assert.ok(acc.interval!.lo < 0 && acc.interval!.hi > 0);
  const speed = verdictOf(c, TP, "decode_tokens_per_s");
  assert.equal(speed.outcome, "not judged", "no repeats, no noise band");
  // different cases (another case set) are compared unpaired too, even with cases.csv
  const other = await writeFakeRun(`${TMP}/other-cases`, {
    name: "bench",
    cells: cells(25, 100, { set: "t" }),
  });
  const d = verdictOf(compareRuns(await readRun(base), await readRun(other)), LE, "accuracy");
  assert.match(d.test, /^Newcombe/);
  assert.equal(d.outcome, "regression", "0.80 → 0.50 over 50 cases each");
});

Deno.test("compare: runs that share no cell are bad input (exit code 2)", async () => {
  const baseRun = await readRun(base);
  const elsewhere = await writeFakeRun(`${TMP}/elsewhere`, {
    name: "other",
    cells: cells(40, 100).map((c) => ({ ...c, length: 2048 })),
  });
  assert.throws(() => compareRuns(baseRun, { ...baseRun, rows: [] }), InputError);
  await assert.rejects(main([base, elsewhere]), /share no cell/);
  await assert.rejects(main([base, `${TMP}/nothing`]), /not a run folder/);
  const p = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../commands/compare.ts", import.meta.url).pathname,
      base,
      elsewhere,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(p.code, 2);
  assert.match(new TextDecoder().decode(p.stderr), /^error: compare: .* share no cell/);
});
