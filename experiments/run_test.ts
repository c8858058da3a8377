/**
 * End-to-end tests of `runExperiment` on a small random model: the outputs it writes, the
 * artifact cache (reruns, a lost artifact, a crash part-way), and sharding with `mergeRuns`.
 *
 * @module
 */
import { exists } from "../runtime/atomic.ts";
import { hasGpu } from "../runtime/gpu/device.ts";
import assert from "node:assert/strict";
import { writeRandomModel } from "../data/models/init_random.ts";
import type { ModelConfig } from "../runtime/model.ts";
import { InputError } from "../runtime/errors.ts";
import { CSV_COLUMNS, readCasesCsv, readMetricsCsv, type Row } from "./csv.ts";
import { mergeRuns } from "./merge.ts";
import type { Progress } from "./progress.ts";
import { parseShard, type ResolvedRun, runExperiment, runIdOf, type RunResult } from "./run.ts";
import { expandCells, type Experiment, loadExperiment } from "./schema.ts";

/** Every file this test writes lives here; removed when the test process ends. */
const TMP = await Deno.makeTempDir({ prefix: "moa_runner_e2e_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));

const LENGTHS = [640, 768];
const CASES = 3;
const PPL_TOKENS = 700;
const DECODE = 4;
const BATCH = 2;
const SEED = 3;
const GIT_SHA = "e2e-test";
/** Metrics that measure time: they differ between any two computations of a cell. */
const TIMING = new Set(["prefill_tokens_per_s", "decode_tokens_per_s"]);

const MODEL_DIR = `${TMP}/model`;
const CONFIG: ModelConfig = await writeRandomModel(MODEL_DIR, {
  layers: 2,
  hidden: 32,
  heads: 2,
  kvHeads: 1,
  seed: 1,
});

/** @returns an experiment file's text: dense attention, all three benchmarks, on MODEL_DIR */
function experimentText(name: string): string {
  return [
    `name: ${name}`,
    `model: ${MODEL_DIR}`,
    "methods: [dense]",
    `lengths: [${LENGTHS.join(", ")}]`,
    "benchmarks:",
    `  longeval: {cases: ${CASES}}`,
    `  perplexity: {tokens: ${PPL_TOKENS}}`,
    `  throughput: {decode: ${DECODE}, batch: ${BATCH}}`,
    `seed: ${SEED}`,
    "backend: cpu",
  ].join("\n") + "\n";
}

/** @returns the experiment, loaded from a file written into TMP */
async function writeExperiment(name: string, text: string): Promise<Experiment> {
  const file = `${TMP}/${name}.yaml`;
  await Deno.writeTextFile(file, text);
  return await loadExperiment(file);
}

/**
 * A small experiment on MODEL_DIR (density 0.5, length 640, on the CPU unless `fields` say
 * otherwise), written as JSON (which YAML reads) and loaded.
 */
function smallExperiment(name: string, fields: Record<string, unknown>): Promise<Experiment> {
  const exp = { name, model: MODEL_DIR, densities: [0.5], lengths: [640], backend: "cpu" };
  return writeExperiment(name, JSON.stringify({ ...exp, ...fields }));
}

const EXP = await writeExperiment("e2e", experimentText("e2e"));
const CELL_IDS = expandCells(EXP).map((c) => c.id);

/** A Progress that records which cells started and which computed anything; can crash. */
class RecordingProgress implements Progress {
  started: string[] = [];
  /** Cells whose benchmark reported inner progress, i.e. that were computed, not cached. */
  computed = new Set<string>();
  #current = "";
  /** @param crashAt the 1-based cell whose start throws (none by default) */
  constructor(readonly crashAt = Infinity) {}
  start(label: string) {
    if (this.started.length + 1 === this.crashAt) throw new Error(`simulated crash at ${label}`);
    this.started.push(label);
    this.#current = label;
  }
  update() {
    this.computed.add(this.#current);
  }
  finish() {}
  log() {}
  stop() {}
}

/** Runs EXP (or `exp`) quietly. */
function run(
  out: string,
  cacheDir: string,
  extra: { progress?: Progress; resume?: boolean; exp?: Experiment; shard?: number } = {},
): Promise<RunResult> {
  return runExperiment(extra.exp ?? EXP, {
    out,
    cacheDir,
    gitSha: GIT_SHA,
    progress: extra.progress ?? new RecordingProgress(),
    notice: () => {},
    resume: extra.resume ?? false,
    shard: extra.shard === undefined ? null : { index: extra.shard, count: 3 },
  });
}

/** The clean run every other run is compared with, computed once with its own cache. */
let reference: Promise<RunResult> | null = null;
function referenceRun(): Promise<RunResult> {
  return reference ??= run(`${TMP}/reference`, `${TMP}/cache-reference`);
}

/**
 * Rows as comparable strings: every column but `started_at`, and the value of timing metrics
 * left out (they are measured, not computed).
 */
function comparable(rows: Row[]): string[] {
  return rows.map((r) =>
    CSV_COLUMNS.filter((c) => c !== "started_at")
      .map((c) => (c === "value" && TIMING.has(String(r.metric)) ? "<time>" : String(r[c])))
      .join(",")
  );
}

/** @returns `{cell → started_at}` of a metrics.csv's rows */
function startedAt(rows: Row[]): Map<string, string> {
  return new Map(rows.map((r) => [String(r.cell), String(r.started_at)]));
}

Deno.test("runExperiment() writes the resolved experiment and one CSV row per measurement", async (t) => {
  const result = await referenceRun();
  const out = `${TMP}/reference`;
  const csvText = await Deno.readTextFile(`${out}/metrics.csv`);
  const rows = await readMetricsCsv(`${out}/metrics.csv`);
  const byCell = (id: string) => rows.filter((r) => r.cell === id);
  const value = (id: string, metric: string) => {
    const hits = byCell(id).filter((r) => r.metric === metric);
    assert.equal(hits.length, 1, `${id}: expected one '${metric}' row, got ${hits.length}`);
    return { value: Number(hits[0]!.value), n: Number(hits[0]!.n) };
  };

  await t.step(
    "experiment.resolved.json holds the experiment, its cells and the run id",
    async () => {
      const resolved = JSON.parse(
        await Deno.readTextFile(`${out}/experiment.resolved.json`),
      ) as ResolvedRun;
      assert.deepEqual(resolved, JSON.parse(JSON.stringify(result.resolved)));
      assert.equal(resolved.run_id, await runIdOf(EXP));
      assert.match(resolved.run_id, /^e2e-[0-9a-f]{8}$/);
      assert.deepEqual(resolved.experiment, EXP);
      assert.equal(resolved.model_dir, MODEL_DIR);
      assert.equal(resolved.shard, null);
      assert.equal(resolved.git_sha, GIT_SHA);
      assert.deepEqual(resolved.cells.map((c) => [c.index, c.id]), [
        [0, "dense-d1-n640-longeval"],
        [1, "dense-d1-n640-perplexity"],
        [2, "dense-d1-n640-throughput"],
        [3, "dense-d1-n768-longeval"],
        [4, "dense-d1-n768-perplexity"],
        [5, "dense-d1-n768-throughput"],
      ]);
    },
  );

  await t.step("metrics.csv has exactly the CSV_COLUMNS header, in order", () => {
    assert.equal(csvText.split("\n")[0], CSV_COLUMNS.join(","));
    assert.ok(csvText.endsWith("\n"));
  });

  await t.step("metrics.csv holds the returned rows, one per (cell, metric), in cell order", () => {
    assert.equal(result.cachedCells, 0);
    assert.deepEqual(
      rows,
      result.rows.map((r) =>
        Object.fromEntries(
          CSV_COLUMNS.map((c) => [c, String(r[c])]),
        )
      ),
    );
    const keys = rows.map((r) => `${r.cell}/${r.metric}`);
    assert.equal(new Set(keys).size, keys.length, "a (cell, metric) pair appears twice");
    const cellOrder = rows.map((r) => String(r.cell)).filter((c, i, a) => a[i - 1] !== c);
    assert.deepEqual(cellOrder, CELL_IDS);
    for (const r of rows) {
      const [, length, benchmark] = /^dense-d1-n(\d+)-(\w+)$/.exec(String(r.cell))!;
      assert.deepEqual(
        [r.experiment, r.run_id, r.model, r.method, r.density, r.length, r.benchmark],
        ["e2e", result.resolved.run_id, MODEL_DIR, "dense", "1", length, benchmark],
      );
      assert.deepEqual([r.seed, r.backend, r.git_sha], [String(SEED), "cpu", GIT_SHA]);
      assert.match(String(r.device), /^cpu \d+ cores/);
      assert.ok(!Number.isNaN(Date.parse(String(r.started_at))), `started_at ${r.started_at}`);
    }
  });

  await t.step("longeval rows: accuracy, accuracy per decile and prompt length per length", () => {
    for (const length of LENGTHS) {
      const id = `dense-d1-n${length}-longeval`;
      const metrics = byCell(id).map((r) => String(r.metric));
      assert.equal(metrics[0], "accuracy");
      assert.deepEqual(metrics.slice(-2), ["prompt_tokens", "kv_density"]);
      assert.equal(value(id, "kv_density").value, 1, "dense keeps every key");
      const deciles = metrics.slice(1, -2).map((m) => {
        const d = /^accuracy_decile_(\d)$/.exec(m);
        assert.ok(d, `${id}: unexpected metric '${m}'`);
        return Number(d[1]);
      });
      assert.ok(deciles.length >= 1, `${id}: no decile rows`);
      assert.deepEqual(deciles, [...deciles].sort((a, b) => a - b));
      const acc = value(id, "accuracy");
      assert.equal(acc.n, CASES);
      // every generated case has a decile: the decile counts add up, and their weighted mean is
      // the overall accuracy
      let n = 0, correct = 0;
      for (const d of deciles) {
        const x = value(id, `accuracy_decile_${d}`);
        assert.ok(x.n >= 1 && x.value >= 0 && x.value <= 1);
        assert.ok(Math.abs(x.value * x.n - Math.round(x.value * x.n)) < 1e-9);
        n += x.n;
        correct += x.value * x.n;
      }
      assert.equal(n, CASES);
      assert.ok(Math.abs(acc.value - correct / CASES) < 1e-12);
      const prompt = value(id, "prompt_tokens");
      assert.equal(prompt.n, CASES);
      assert.ok(prompt.value > 0 && prompt.value <= length, `prompt_tokens ${prompt.value}`);
    }
  });

  await t.step(
    "perplexity rows: a random model is near-uniform, so perplexity ≈ vocab size",
    () => {
      for (const length of LENGTHS) {
        const id = `dense-d1-n${length}-perplexity`;
        assert.deepEqual(byCell(id).map((r) => r.metric), ["perplexity", "nll"]);
        const ppl = value(id, "perplexity"), nll = value(id, "nll");
        // windows of `length` tokens, as many as it takes to cover PPL_TOKENS
        assert.equal(ppl.n, Math.ceil(PPL_TOKENS / length) * length);
        assert.equal(nll.n, ppl.n);
        assert.ok(Math.abs(nll.value - Math.log(ppl.value)) < 1e-12);
        const V = CONFIG.vocabSize;
        assert.ok(ppl.value > 0.8 * V && ppl.value < 1.25 * V, `perplexity ${ppl.value}, V ${V}`);
      }
    },
  );

  await t.step("throughput rows: positive speeds, and kv_bytes = L·2·NKV·(T+decode)·HS·4·B", () => {
    for (const length of LENGTHS) {
      const id = `dense-d1-n${length}-throughput`;
      assert.deepEqual(byCell(id).map((r) => r.metric), [
        "prefill_tokens_per_s",
        "decode_tokens_per_s",
        "kv_bytes",
      ]);
      const prefill = value(id, "prefill_tokens_per_s");
      const decode = value(id, "decode_tokens_per_s");
      assert.ok(Number.isFinite(prefill.value) && prefill.value > 0);
      assert.ok(Number.isFinite(decode.value) && decode.value > 0);
      assert.equal(prefill.n, BATCH * length);
      assert.equal(decode.n, BATCH * DECODE);
      const { numLayers: L, numKvHeads: NKV, headDim: HS } = CONFIG;
      const kv = value(id, "kv_bytes");
      assert.equal(kv.value, L * 2 * NKV * (length + DECODE) * HS * 4 * BATCH);
      assert.equal(kv.n, BATCH);
    }
  });
});

Deno.test("runExperiment() reuses cached cells and recomputes only what is missing", async (t) => {
  const ref = await referenceRun();
  const refRows = await readMetricsCsv(`${TMP}/reference/metrics.csv`);
  const out = `${TMP}/rerun`;
  await Deno.mkdir(out);
  for (const f of ["experiment.resolved.json", "metrics.csv"]) {
    await Deno.copyFile(`${TMP}/reference/${f}`, `${out}/${f}`);
  }

  await t.step("a rerun into the same folder takes every cell from the cache", async () => {
    const progress = new RecordingProgress();
    const again = await run(out, `${TMP}/cache-reference`, { progress });
    assert.equal(again.cachedCells, CELL_IDS.length);
    assert.deepEqual(progress.started, CELL_IDS);
    assert.deepEqual([...progress.computed], []);
    // cached cells keep their values and their original started_at
    assert.deepEqual(again.rows, ref.rows);
    assert.deepEqual(await readMetricsCsv(`${out}/metrics.csv`), refRows);
  });

  await t.step("after one cell's artifact is deleted, only that cell is recomputed", async () => {
    // find the artifact of dense-d1-n768-throughput by its kv_bytes, which only it has
    const { numLayers: L, numKvHeads: NKV, headDim: HS } = CONFIG;
    const kv = L * 2 * NKV * (768 + DECODE) * HS * 4 * BATCH;
    const dir = `${TMP}/cache-reference/cell`;
    const matches: string[] = [];
    for await (const e of Deno.readDir(dir)) {
      const art = JSON.parse(await Deno.readTextFile(`${dir}/${e.name}`)) as {
        metrics: { metric: string; value: number }[];
      };
      if (art.metrics.some((m) => m.metric === "kv_bytes" && m.value === kv)) matches.push(e.name);
    }
    assert.equal(matches.length, 1, `artifacts with kv_bytes ${kv}: ${matches.join(", ")}`);
    await Deno.remove(`${dir}/${matches[0]}`);

    const progress = new RecordingProgress();
    const again = await run(out, `${TMP}/cache-reference`, { progress });
    const target = "dense-d1-n768-throughput";
    assert.equal(again.cachedCells, CELL_IDS.length - 1);
    assert.deepEqual([...progress.computed], [target]);
    assert.ok(await exists(`${dir}/${matches[0]}`), "the recomputed artifact was not stored");
    const rows = await readMetricsCsv(`${out}/metrics.csv`);
    const before = startedAt(refRows), after = startedAt(rows);
    for (const id of CELL_IDS) {
      if (id === target) assert.notEqual(after.get(id), before.get(id), id);
      else assert.equal(after.get(id), before.get(id), id);
    }
    assert.deepEqual(comparable(rows), comparable(refRows));
  });

  await t.step("a run that crashes at its 3rd cell resumes from the cache at the 3rd", async () => {
    const crashOut = `${TMP}/crash`, cache = `${TMP}/cache-crash`;
    await assert.rejects(
      run(crashOut, cache, { progress: new RecordingProgress(3) }),
      /simulated crash at dense-d1-n640-throughput/,
    );
    // what a crash leaves: the resolved run and the rows of the two finished cells
    const partial = await readMetricsCsv(`${crashOut}/metrics.csv`);
    assert.deepEqual([...startedAt(partial).keys()], CELL_IDS.slice(0, 2));
    assert.ok(await exists(`${crashOut}/experiment.resolved.json`));

    const progress = new RecordingProgress();
    const resumed = await run(crashOut, cache, { progress, resume: true });
    assert.equal(resumed.cachedCells, 2);
    assert.deepEqual([...progress.computed], CELL_IDS.slice(2));
    const rows = await readMetricsCsv(`${crashOut}/metrics.csv`);
    const first = startedAt(partial), now = startedAt(rows);
    for (const id of CELL_IDS.slice(0, 2)) assert.equal(now.get(id), first.get(id), id);
    assert.deepEqual(comparable(rows), comparable(refRows));
  });
});

Deno.test("shards 0/3, 1/3 and 2/3 merge into the unsharded run's metrics.csv", async (t) => {
  await referenceRun();
  const refRows = await readMetricsCsv(`${TMP}/reference/metrics.csv`);
  const dirs = [0, 1, 2].map((i) => `${TMP}/shard${i}of3`);

  await t.step("each shard runs the cells whose index ≡ i (mod 3)", async () => {
    for (const [i, dir] of dirs.entries()) {
      // each shard with its own cache, as on separate machines
      const progress = new RecordingProgress();
      const r = await run(dir, `${TMP}/cache-shard${i}`, { progress, shard: i });
      const mine = CELL_IDS.filter((_, k) => k % 3 === i);
      assert.deepEqual(progress.started, mine);
      assert.equal(r.cachedCells, 0);
      assert.deepEqual([...startedAt(await readMetricsCsv(`${dir}/metrics.csv`)).keys()], mine);
      const resolved = JSON.parse(
        await Deno.readTextFile(`${dir}/experiment.resolved.json`),
      ) as ResolvedRun;
      assert.deepEqual(resolved.shard, { index: i, count: 3 });
      assert.equal(resolved.cells.length, CELL_IDS.length);
    }
  });

  await t.step("the merged metrics.csv equals the unsharded one, row for row", async () => {
    const merged = `${TMP}/merged`;
    // shards given out of order: the merge restores cell order
    const { rows, missing } = await mergeRuns([dirs[2]!, dirs[0]!, dirs[1]!], merged);
    assert.deepEqual(missing, []);
    const mergedRows = await readMetricsCsv(`${merged}/metrics.csv`);
    assert.deepEqual(mergedRows, rows);
    assert.deepEqual(comparable(mergedRows), comparable(refRows));
    // each LongEval case's outcome too: 2 lengths × CASES cases, the same as the unsharded run's
    const mergedCases = await readCasesCsv(`${merged}/cases.csv`);
    assert.equal(mergedCases.length, LENGTHS.length * CASES);
    assert.deepEqual(mergedCases, await readCasesCsv(`${TMP}/reference/cases.csv`));
    const resolved = JSON.parse(await Deno.readTextFile(`${merged}/experiment.resolved.json`));
    assert.equal(resolved.shard, null);
    assert.equal(resolved.run_id, (await referenceRun()).resolved.run_id);
  });

  await t.step("a merge without a shard is refused, naming it, and writes nothing", async () => {
    const out = `${TMP}/merged-incomplete`;
    await assert.rejects(mergeRuns([dirs[0]!, dirs[2]!], out), (e: unknown) => {
      assert.ok(e instanceof InputError, String(e));
      assert.match(e.message, /^merge: 2 of 6 cells are in none of the folders \(/);
      assert.match(e.message, /no folder holds shard 1\/3; .*--partial/);
      return true;
    });
    assert.equal(await exists(out), false);
  });

  await t.step("with partial, a merge lists the cells of a shard that is missing", async () => {
    const out = `${TMP}/merged-partial`;
    const { missing } = await mergeRuns([dirs[0]!, dirs[2]!], out, { partial: true });
    assert.deepEqual(missing, CELL_IDS.filter((_, k) => k % 3 === 1));
    const resolved = JSON.parse(await Deno.readTextFile(`${out}/experiment.resolved.json`));
    assert.deepEqual(resolved.missing_cells, missing);
  });

  await t.step(
    "merging folders of different runs is an InputError and writes nothing",
    async () => {
      const other = await writeExperiment(
        "other",
        experimentText("other").replace(/ {2}(longeval|perplexity):.*\n/g, ""),
      );
      const otherDir = `${TMP}/other`;
      const r = await run(otherDir, `${TMP}/cache-other`, { exp: other });
      const runId = (await referenceRun()).resolved.run_id;
      assert.notEqual(r.resolved.run_id, runId);
      const out = `${TMP}/merged-bad`;
      await assert.rejects(
        mergeRuns([dirs[0]!, otherDir], out),
        (e: unknown) => {
          assert.ok(e instanceof InputError, String(e));
          assert.equal(
            e.message,
            `merge: ${otherDir} holds run '${r.resolved.run_id}', but ${dirs[0]} holds '${runId}'`,
          );
          return true;
        },
      );
      assert.equal(await exists(out), false);
    },
  );
});

Deno.test("parseShard() accepts i/n with 0 ≤ i < n and rejects anything else", async (t) => {
  await t.step("2/3 and 0/1 parse", () => {
    assert.deepEqual(parseShard("2/3"), { index: 2, count: 3 });
    assert.deepEqual(parseShard("0/1"), { index: 0, count: 1 });
  });
  for (const bad of ["3/3", "a/b", "1/0", "-1/3", "1/3/5", ""]) {
    await t.step(`'${bad}' is rejected`, () => {
      assert.throws(() => parseShard(bad), (e: unknown) => {
        assert.ok(e instanceof InputError, String(e));
        assert.equal(
          e.message,
          `--shard: expected i/n with 0 ≤ i < n (e.g. 0/4), got '${bad}'`,
        );
        return true;
      });
    });
  }
});

Deno.test("streaming and h2o cells keep half the KV cache (of the prompt, for h2o) at density 0.5", async () => {
  const exp = await smallExperiment("sparse", {
    methods: ["dense", "streaming", "h2o"],
    profile: { sink: 16 },
    benchmarks: { throughput: { decode: DECODE, batch: 1 }, perplexity: { tokens: 640 } },
  });
  const r = await run(`${TMP}/out-sparse`, `${TMP}/cache-sparse`, { exp });
  const kv = (m: string) =>
    Number(r.rows.find((x) => x.method === m && x.metric === "kv_bytes")!.value);
  const n = 640 + DECODE;
  assert.equal(kv("dense"), CONFIG.numLayers * 2 * CONFIG.numKvHeads * n * CONFIG.headDim * 4);
  assert.equal(kv("streaming"), kv("dense") / 2);
  // H2O's budget is half the prompt's 640 tokens per head; it evicts as it decodes
  assert.equal(kv("h2o"), CONFIG.numLayers * 2 * CONFIG.numKvHeads * 320 * CONFIG.headDim * 4);
  const ppl = (m: string) =>
    Number(r.rows.find((x) => x.method === m && x.metric === "perplexity")!.value);
  assert.notEqual(ppl("streaming"), ppl("dense"), "streaming attends to fewer tokens");
});

Deno.test("spans: reference runs streaming with the reference runtime's cache sizes", async () => {
  const runWith = async (spans: string) => {
    const exp = await smallExperiment(`spans-${spans}`, {
      methods: ["streaming"],
      profile: { sink: 16, block: 16 },
      benchmarks: { throughput: { decode: DECODE, batch: 1 }, perplexity: { tokens: 640 } },
      spans,
    });
    // the cache is shared: the two must not hit each other's cells
    return (await run(`${TMP}/out-spans-${spans}`, `${TMP}/cache-spans`, { exp })).rows;
  };
  const perQuery = await runWith("per-query");
  const reference = await runWith("reference");
  const value = (rows: Row[], metric: string) =>
    Number(rows.find((x) => x.metric === metric)!.value);
  // streaming is (α, β) = (−16, 0.5); caches are made for N = 640 + 4 tokens. Per query: a ring
  // of ⌈−16 + 322⌉ = 306 keys besides the 16 sink slots. Reference: ⌊306⌋ rounded up to 20
  // blocks of 16 = 320 slots, the sink inside
  const bytes = (slots: number) =>
    CONFIG.numLayers * CONFIG.numKvHeads * slots * 2 * CONFIG.headDim * 4;
  assert.equal(value(perQuery, "kv_bytes"), bytes(16 + 306));
  assert.equal(value(reference, "kv_bytes"), bytes(320));
  assert.notEqual(value(reference, "perplexity"), value(perQuery, "perplexity"));
});

Deno.test("a moa cell makes a plan within the density budget, caches it, and keeps less KV", async () => {
  const exp = await smallExperiment("moa", {
    methods: ["dense", "moa"],
    lengths: [768],
    profile: { lengths: [640], samples: 2, block: 64, sink: 64 },
    benchmarks: { throughput: { decode: DECODE, batch: 1 } },
  });
  const runMoa = () => run(`${TMP}/out-moa`, `${TMP}/cache-moa`, { exp });
  const r = await runMoa();
  const plan = JSON.parse(await Deno.readTextFile(`${TMP}/out-moa/plans/moa-d0.5.json`));
  assert.equal(plan.alphas.length, CONFIG.numLayers);
  assert.equal(plan.alphas[0].length, CONFIG.numKvHeads);
  const kv = (m: string) =>
    Number(r.rows.find((x) => x.method === m && x.metric === "kv_bytes")!.value);
  assert.ok(kv("moa") < 0.75 * kv("dense"), `moa ${kv("moa")} vs dense ${kv("dense")}`);
  const again = await runMoa();
  assert.equal(again.cachedCells, 2, "the rerun reuses both cells");
});

Deno.test({
  name: "backend webgpu gives the CPU's LongEval answers and KV bytes for dense and streaming",
  ignore: !(await hasGpu()),
}, async () => {
  const runs = [];
  for (const backend of ["cpu", "webgpu"]) {
    const exp = await smallExperiment(`gpu-${backend}`, {
      methods: ["dense", "streaming"],
      profile: { sink: 16 },
      benchmarks: { longeval: { cases: CASES }, throughput: { decode: DECODE, batch: 2 } },
      backend,
    });
    runs.push(await run(`${TMP}/out-gpu-${backend}`, `${TMP}/cache-gpu-${backend}`, { exp }));
  }
  const [cpu, gpu] = runs as [RunResult, RunResult];
  const pick = (r: RunResult) =>
    r.rows.filter((x) => !TIMING.has(String(x.metric))).map((x) =>
      `${x.method},${x.benchmark},${x.metric},${x.value},${x.n}`
    );
  assert.deepEqual(pick(gpu), pick(cpu));
  assert.ok(gpu.rows.every((r) => r.backend === "webgpu"));
  assert.ok(cpu.rows.every((r) => r.backend === "cpu"));
});

Deno.test({
  name: "backend auto runs on the CPU with a one-line notice when the only adapter is software",
  ignore: !(await hasGpu()) ||
    !(await (await import("../runtime/gpu/device.ts")).getGpu()).fallback,
}, async () => {
  const { openSession } = await import("../runtime/session.ts");
  const notices: string[] = [];
  const s = await openSession(MODEL_DIR, "auto", (m) => notices.push(m));
  assert.equal(s.backend, "cpu");
  assert.equal(s.gpu, null);
  assert.equal(notices.length, 1);
  assert.match(
    notices[0]!,
    /^backend auto: only a software WebGPU adapter \(.+\); running on the CPU$/,
  );
});
