/**
 * Bad input that used to get through the runner and the CLIs (issue 12, item 7): a broken model
 * folder, lengths the model or the data cannot serve, a cell whose cases were all dropped, a
 * cache file of the wrong shape, a merge of only some shards, and two runs sharing a cache.
 * `experiments/testdata/bad_inputs.ts` tries many more kinds end to end.
 *
 * @module
 */
import assert from "node:assert/strict";
import { exists } from "../runtime/atomic.ts";
import { writeRandomModel } from "../data/models/init_random.ts";
import { generateCases } from "../data/longeval/longeval.ts";
import { InputError } from "../runtime/errors.ts";
import { ArtifactStore, type ClaimHolder } from "./cache.ts";
import { readMetricsCsv } from "./csv.ts";
import type { Progress } from "./progress.ts";
import { runExperiment, type RunResult } from "./run.ts";
import { type Experiment, loadExperiment } from "./schema.ts";
import { summaryTables } from "./table.ts";

const ROOT = new URL("..", import.meta.url).pathname;
/** Every file this test writes lives here; removed when the test process ends. */
const TMP = await Deno.makeTempDir({ prefix: "moa_bad_input_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));

const SHAPE = { layers: 1, hidden: 32, heads: 2, kvHeads: 1, seed: 1 };
const MODEL = `${TMP}/model`;
await writeRandomModel(MODEL, SHAPE);

let counter = 0;
const fresh = (stem: string) => `${TMP}/${stem}-${counter++}`;

/** Writes an experiment (JSON is YAML) on `model` with `over` replacing top-level fields. */
async function experimentFile(over: Record<string, unknown>, model = MODEL): Promise<string> {
  const file = `${fresh("exp")}.yaml`;
  const exp = {
    name: "bad",
    model,
    methods: ["dense"],
    lengths: [640],
    benchmarks: { perplexity: { tokens: 640 } },
    backend: "cpu",
    ...over,
  };
  await Deno.writeTextFile(file, JSON.stringify(exp, null, 1) + "\n");
  return file;
}

/** The outcome of one CLI run. */
interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A SCRIPT ...args` from the project root. */
async function cli(script: string, ...args: string[]): Promise<Outcome> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", MOA_CACHE: `${TMP}/cache-cli` },
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** Asserts a run failed as bad input: exit code 2, one `error:` line, nothing on stdout. */
function assertInputError(o: Outcome, message: RegExp): void {
  assert.equal(o.code, 2, `exit code ${o.code}, stderr:\n${o.stderr}`);
  const lines = o.stderr.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `expected one stderr line, got:\n${o.stderr}`);
  assert.match(lines[0]!, message);
  assert.equal(o.stdout, "");
}

/** A Progress that records which cells computed anything (reported inner progress). */
class RecordingProgress implements Progress {
  computed: string[] = [];
  logs: string[] = [];
  #current = "";
  start(label: string) {
    this.#current = label;
  }
  update() {
    if (this.computed.at(-1) !== this.#current) this.computed.push(this.#current);
  }
  finish() {}
  log(line: string) {
    this.logs.push(line);
  }
  stop() {}
}

/** Runs an experiment file quietly; notices go to `notices`. */
async function run(
  file: string,
  o: { out?: string; cache?: string; notices?: string[]; progress?: Progress } = {},
): Promise<RunResult> {
  return await runExperiment(await loadExperiment(file), {
    out: o.out ?? fresh("out"),
    cacheDir: o.cache ?? fresh("cache"),
    gitSha: "bad-input-test",
    progress: o.progress ?? new RecordingProgress(),
    notice: (l) => o.notices?.push(l),
    pollMs: 20,
  });
}

/** A copy of MODEL altered by `edit`. */
async function brokenModel(dir: string, edit: (dir: string) => Promise<void>): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for await (const e of Deno.readDir(MODEL)) {
    await Deno.copyFile(`${MODEL}/${e.name}`, `${dir}/${e.name}`);
  }
  await edit(dir);
}

const BROKEN: [string, (dir: string) => Promise<void>, RegExp][] = [
  [
    "a truncated model.safetensors",
    async (d) => {
      const b = await Deno.readFile(`${d}/model.safetensors`);
      await Deno.writeFile(`${d}/model.safetensors`, b.subarray(0, b.length - 1000));
    },
    /model\.safetensors: tensor ".*" ends at byte \d+ but data area has \d+ bytes/,
  ],
  [
    "a truncated safetensors header",
    async (d) => {
      const b = await Deno.readFile(`${d}/model.safetensors`);
      await Deno.writeFile(`${d}/model.safetensors`, b.subarray(0, 100));
    },
    /model\.safetensors: header declares \d+ bytes but the file has only 92/,
  ],
  [
    "a wrong hidden_size",
    async (d) => {
      const c = JSON.parse(await Deno.readTextFile(`${d}/config.json`));
      await Deno.writeTextFile(`${d}/config.json`, JSON.stringify({ ...c, hidden_size: 64 }));
    },
    /model\.safetensors: model\.embed_tokens\.weight has shape \[320,32\] but config\.json implies \[320,64\]/,
  ],
  [
    "no weights",
    (d) => Deno.remove(`${d}/model.safetensors`),
    /: no model\.safetensors or model\.safetensors\.index\.json in the model folder$/,
  ],
  [
    "model_type gpt2",
    async (d) => {
      const c = JSON.parse(await Deno.readTextFile(`${d}/config.json`));
      await Deno.writeTextFile(`${d}/config.json`, JSON.stringify({ ...c, model_type: "gpt2" }));
    },
    /config\.json: model_type: expected one of llama, mistral, qwen2 .*got "gpt2"$/,
  ],
  [
    "a config.json that is not JSON",
    (d) => Deno.writeTextFile(`${d}/config.json`, "{oops"),
    /config\.json: invalid JSON/,
  ],
  [
    "a tokenizer.json that is not JSON",
    (d) => Deno.writeTextFile(`${d}/tokenizer.json`, "{x"),
    /tokenizer\.json: cannot parse/,
  ],
  [
    "a tokenizer.json that is no tokenizer",
    (d) => Deno.writeTextFile(`${d}/tokenizer.json`, '{"model": 5}'),
    /tokenizer\.json: unsupported tokenizer/,
  ],
];

Deno.test("a broken model folder is refused before anything is written, so the fixed model's run takes the same --out", async (t) => {
  for (const [what, edit, message] of BROKEN) {
    await t.step(what, async () => {
      const dir = fresh("model-broken");
      await brokenModel(dir, edit);
      const file = await experimentFile({ benchmarks: { throughput: { decode: 2 } } }, dir);
      const out = fresh("out");
      const o = await cli("experiments/commands/experiment.ts", file, "--out", out);
      assertInputError(o, message);
      assert.equal(await exists(out), false, `${out} was written`);
      // fixed: the same command and --out run
      await Deno.remove(dir, { recursive: true });
      await brokenModel(dir, () => Promise.resolve());
      const again = await cli(
        "experiments/commands/experiment.ts",
        file,
        "--out",
        out,
        "--dry-run",
      );
      assert.equal(again.code, 0, again.stderr);
    });
  }
});

Deno.test("lengths the model or the data cannot serve are refused up front, or run with a warning", async (t) => {
  /** A model that claims a context long enough for the checks that do not come from it. */
  const longModel = `${TMP}/model-long`;
  await writeRandomModel(longModel, { ...SHAPE, maxPositions: 1_000_000 });

  await t.step("past max_position_embeddings: runs, after a warning naming it", async () => {
    const short = `${TMP}/model-512`;
    await writeRandomModel(short, { ...SHAPE, maxPositions: 512 });
    const notices: string[] = [];
    const r = await run(await experimentFile({}, short), { notices });
    assert.deepEqual(notices.filter((l) => l.startsWith("warning:")), [
      "warning: lengths[0]: 640 tokens exceed the model's context of 512 " +
      "(max_position_embeddings 512 in config.json): positions past it were not trained, so " +
      "expect degraded results",
    ]);
    assert.deepEqual(r.rows.map((x) => x.metric), ["perplexity", "nll"]);
  });

  const refused: [string, () => Promise<string>, RegExp][] = [
    [
      "throughput at 10^7 tokens on an 8,192-position model",
      () => experimentFile({ lengths: [10_000_000], benchmarks: { throughput: {} } }),
      /lengths\[0\]: 10000000 tokens are more than 8× the model's context of 8192 .*accepts is 65536$/,
    ],
    [
      "perplexity at a length beyond the held-out text",
      () =>
        experimentFile(
          { lengths: [700_000], benchmarks: { perplexity: { tokens: 1 } } },
          longModel,
        ),
      /lengths\[0\]: perplexity at 700000 tokens needs a window of 700001 tokens of held-out text, but the held-out Brown text is \d+ tokens long for this model/,
    ],
    [
      "throughput whose KV cache exceeds the machine's memory",
      () => {
        // 1 layer × (K, V) × 1 kv head × 16 floats × 4 bytes = 128 bytes per token
        const batch = Math.ceil(2 * Deno.systemMemoryInfo().total / 128 / 500_001);
        return experimentFile(
          { lengths: [500_000], benchmarks: { throughput: { decode: 1, batch } } },
          longModel,
        );
      },
      /lengths\[0\]: throughput at 500000 tokens \(\+ 1 decoded\) × batch \d+ need [\d.]+ GiB of KV cache \(float32\), more than this machine's/,
    ],
  ];
  for (const [what, file, message] of refused) {
    await t.step(`${what}: exit 2 and nothing written`, async () => {
      const f = await file();
      const out = fresh("out");
      await assert.rejects(run(f, { out }), (e: unknown) => {
        assert.ok(e instanceof InputError, String(e));
        assert.match(e.message, message);
        return true;
      });
      assert.equal(await exists(out), false);
      assertInputError(await cli("experiments/commands/experiment.ts", f, "--out", out), message);
      assert.equal(await exists(out), false);
    });
  }

  const cases = async (pad: number) => {
    const [c] = generateCases({
      count: 1,
      targetLength: 600,
      seed: 1,
      countTokens: (s) => new TextEncoder().encode(s).length + 1,
    });
    const file = `${fresh("cases")}.jsonl`;
    const line = { prompt: "x".repeat(pad) + c!.prompt, expected_number: c!.expected };
    await Deno.writeTextFile(file, JSON.stringify(line) + "\n");
    return file;
  };

  await t.step("LongEval CLI: a 2 MB prompt is refused before the model loads", async () => {
    const o = await cli(
      "experiments/commands/longeval.ts",
      "--model",
      MODEL,
      "--cases",
      await cases(2e6),
    );
    assertInputError(
      o,
      /^error: --cases: .*\.jsonl: case \S+ has a prompt of 2000\d{3} tokens, which are more than 8× the model's context of 8192 .*accepts is 65536$/,
    );
  });

  await t.step("LongEval CLI: a prompt past the context runs, after one warning", async () => {
    const short = `${TMP}/model-512`;
    const o = await cli(
      "experiments/commands/longeval.ts",
      ...["--model", short, "--cases", await cases(0), "--backend", "cpu", "--json"],
    );
    assert.equal(o.code, 0, o.stderr);
    const warnings = o.stderr.split("\n").filter((l) => l.startsWith("warning: "));
    assert.equal(warnings.length, 1, o.stderr);
    assert.match(
      warnings[0]!,
      /^warning: 1 of 1 prompts are longer than the model's context of 512 \(max_position_embeddings 512 in config\.json; first: /,
    );
    assert.equal(JSON.parse(o.stdout).n, 1);
  });
});

Deno.test("a LongEval cell whose file cases were all dropped reports accuracy as missing, not 0", async () => {
  // two cases of about 700 tokens: none fits the 640 level, both fit 768
  const cases = generateCases({
    count: 2,
    targetLength: 700,
    seed: 2,
    countTokens: (s) => new TextEncoder().encode(s).length + 1,
  });
  const jsonl = `${fresh("cases")}.jsonl`;
  await Deno.writeTextFile(
    jsonl,
    cases.map((c) => JSON.stringify({ prompt: c.prompt, expected_number: c.expected })).join("\n"),
  );
  const notices: string[] = [];
  const out = fresh("out");
  const file = await experimentFile({
    lengths: [640, 768],
    benchmarks: { longeval: { file: jsonl } },
  });
  const r = await run(file, { out, notices });
  assert.deepEqual(notices.filter((l) => l.startsWith("warning:")), [
    `warning: lengths[0]: no case of ${jsonl} has a prompt of 1–640 tokens, so LongEval ` +
    "accuracy at 640 is missing (an empty value in metrics.csv, n/a in the table)",
  ]);
  const rows = await readMetricsCsv(`${out}/metrics.csv`);
  const at = (length: number, metric: string) =>
    rows.find((x) => x.length === String(length) && x.metric === metric)!;
  assert.deepEqual([at(640, "accuracy").value, at(640, "accuracy").n], ["", "0"]);
  assert.deepEqual([at(640, "prompt_tokens").value, at(640, "prompt_tokens").n], ["", "0"]);
  assert.equal(at(768, "accuracy").n, "2");
  assert.match(String(at(768, "accuracy").value), /^(0|0\.5|1)$/);
  const table = summaryTables(r.rows).split("\n");
  const line = table.find((l) => l.startsWith("dense@1"))!;
  assert.match(line, /^dense@1\s+n\/a\s+(0|0\.5|1)\.\d\d$/, table.join("\n"));
  // the table reads the same from metrics.csv (where the value is an empty field)
  assert.equal(summaryTables(rows), summaryTables(r.rows));
});

Deno.test("a cache entry of the wrong shape is named, recomputed, and never reaches metrics.csv", async (t) => {
  const file = await experimentFile({});
  const cache = fresh("cache");
  const clean = await run(file, { cache });
  const perplexity = clean.rows.find((r) => r.metric === "perplexity")!.value;
  const dir = `${cache}/cell`;
  const [artifact] = [...Deno.readDirSync(dir)].map((e) => `${dir}/${e.name}`);
  const bad: [string, unknown][] = [
    ["metrics is not a list", { metrics: 5 }],
    ["a value is a string", {
      metrics: [{ metric: "perplexity", value: "abc", n: 640 }, {
        metric: "nll",
        value: 1,
        n: 640,
      }],
      backend: "cpu",
      device: "cpu",
      started_at: "2020-01-01T00:00:00.000Z",
    }],
    ["a list", []],
    ["null", null],
    ["no backend", {
      metrics: [{ metric: "perplexity", value: 1, n: 640 }, { metric: "nll", value: 0, n: 640 }],
    }],
    ["another benchmark's metrics", {
      metrics: [{ metric: "accuracy", value: 1, n: 3 }, {
        metric: "prompt_tokens",
        value: 9,
        n: 3,
      }],
      backend: "cpu",
      device: "cpu",
      started_at: "2020-01-01T00:00:00.000Z",
    }],
  ];
  for (const [what, value] of bad) {
    await t.step(what, async () => {
      await Deno.writeTextFile(artifact!, JSON.stringify(value));
      const progress = new RecordingProgress();
      const out = fresh("out");
      const r = await run(file, { out, cache, progress });
      const named = progress.logs.filter((l) => l.startsWith(`warning: ${artifact}: `));
      assert.equal(named.length, 1, progress.logs.join("\n"));
      assert.match(named[0]!, /: not a cell artifact: .*; it will be recomputed$/);
      assert.deepEqual(progress.computed, ["dense-d1-n640-perplexity"]);
      const rows = await readMetricsCsv(`${out}/metrics.csv`);
      assert.equal(rows.find((x) => x.metric === "perplexity")!.value, String(perplexity));
      assert.equal(r.rows.find((x) => x.metric === "perplexity")!.value, perplexity);
      // and the artifact is whole again
      assert.equal(JSON.parse(await Deno.readTextFile(artifact!)).metrics[0].value, perplexity);
    });
  }
});

/** An experiment of six cheap cells. */
const SIX = {
  lengths: [640, 672, 704, 736, 768, 800],
  benchmarks: { perplexity: { tokens: 640 } },
};

Deno.test("two runs sharing a cache compute each cell once between them", async () => {
  const file = await experimentFile(SIX);
  // Which run takes which cell is up to timing: under a loaded machine one run can take all six
  // before the other has started. Every attempt must compute each cell once; that both runs took
  // cells must be seen in one of three attempts (each on a fresh cache).
  let shared = false;
  for (let attempt = 0; attempt < 3 && !shared; attempt++) {
    const cache = fresh("cache");
    const progress = [new RecordingProgress(), new RecordingProgress()];
    const outs = [fresh("out"), fresh("out")];
    const [a, b] = await Promise.all(
      progress.map((p, i) => run(file, { out: outs[i]!, cache, progress: p })),
    );
    const all = [...progress[0]!.computed, ...progress[1]!.computed].sort();
    assert.deepEqual(all, a!.resolved.cells.map((c) => c.id).sort(), "each cell computed once");
    shared = progress.every((p) => p.computed.length > 0);
    // both write every cell's rows, in cell order, with the same values
    const strip = (r: RunResult) => r.rows.map((x) => `${x.cell},${x.metric},${x.value},${x.n}`);
    assert.deepEqual(strip(a!), strip(b!));
    assert.deepEqual(
      (await readMetricsCsv(`${outs[0]}/metrics.csv`)).map((x) => x.cell),
      a!.rows.map((x) => x.cell),
    );
    const claims = [...Deno.readDirSync(`${cache}/cell`)].filter((e) => e.name.endsWith(".claim"));
    assert.deepEqual(claims, [], "claims are released");
  }
  assert.ok(shared, "in none of three attempts did both runs take cells");
});

Deno.test("a run waits for a cell another run holds, and takes over a dead run's claim", async (t) => {
  const file = await experimentFile({ lengths: [640] });
  const cache = fresh("cache");
  // find the cell's key: a first run in a scratch cache, whose artifact we then hold back
  const scratch = fresh("cache");
  const first = await run(file, { cache: scratch });
  const [name] = [...Deno.readDirSync(`${scratch}/cell`)].map((e) => e.name);
  const key = name!.replace(/\.json$/, "");
  const artifact = await Deno.readTextFile(`${scratch}/cell/${name}`);

  await t.step("it waits while the holder is alive and uses what the holder stores", async () => {
    const store = new ArtifactStore(cache);
    const claim = await store.claim("cell", key);
    assert.ok("release" in claim);
    const progress = new RecordingProgress();
    const waiting = run(file, { cache, progress });
    while (!progress.logs.some((l) => l.includes("being computed by another run"))) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(
      progress.logs.find((l) => l.includes("being computed"))!,
      new RegExp(`^dense-d1-n640-perplexity: being computed by another run \\(pid ${Deno.pid} on `),
    );
    await Deno.writeTextFile(`${cache}/cell/${name}`, artifact);
    await claim.release();
    const r = await waiting;
    assert.deepEqual(progress.computed, [], "the waiting run computed the cell itself");
    assert.equal(r.cachedCells, 1);
    assert.deepEqual(r.rows.map((x) => x.value), first.rows.map((x) => x.value));
  });

  await t.step("a claim left by a killed run does not block", async () => {
    await Deno.remove(`${cache}/cell/${name}`);
    const child = new Deno.Command("true").spawn();
    await child.status;
    const dead: ClaimHolder = { pid: child.pid, host: Deno.hostname(), since: "2020-01-01" };
    await Deno.writeTextFile(`${cache}/cell/${key}.claim`, JSON.stringify(dead));
    const progress = new RecordingProgress();
    const r = await run(file, { cache, progress });
    assert.deepEqual(progress.computed, ["dense-d1-n640-perplexity"]);
    assert.deepEqual(r.rows.map((x) => x.value), first.rows.map((x) => x.value));
    assert.equal(await exists(`${cache}/cell/${key}.claim`), false);
  });
});

Deno.test("the merge CLI exits 2 on a missing shard unless --partial, which warns", async () => {
  const file = await experimentFile({ lengths: [640, 672] });
  const exp: Experiment = await loadExperiment(file);
  const cache = fresh("cache");
  const dirs = [0, 1].map((i) => `${TMP}/merge/run-shard${i}of2`);
  for (const [i, d] of dirs.entries()) {
    await runExperiment(exp, {
      out: d,
      cacheDir: cache,
      gitSha: "x",
      progress: new RecordingProgress(),
      notice: () => {},
      shard: { index: i, count: 2 },
    });
  }
  const out = fresh("merged");
  assertInputError(
    await cli("experiments/commands/experiment.ts", "merge", dirs[0]!, "--out", out),
    /^error: merge: 1 of 2 cells are in none of the folders \(dense-d1-n672-perplexity\); no folder holds shard 1\/2; give every shard's folder, or --partial to merge what is there$/,
  );
  assert.equal(await exists(out), false);
  const o = await cli(
    "experiments/commands/experiment.ts",
    "merge",
    dirs[0]!,
    "--out",
    out,
    "--partial",
  );
  assert.equal(o.code, 0, o.stderr);
  assert.ok(
    o.stderr.includes(
      "warning: --partial: 1 cells are missing from the merge: dense-d1-n672-perplexity",
    ),
    o.stderr,
  );
  const whole = await cli(
    "experiments/commands/experiment.ts",
    "merge",
    ...dirs,
    "--out",
    fresh("merged"),
  );
  assert.equal(whole.code, 0, whole.stderr);
  assert.ok(!whole.stderr.includes("warning"), whole.stderr);
});
