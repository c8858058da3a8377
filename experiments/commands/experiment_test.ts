/**
 * End-to-end tests of the experiment CLI, run as a subprocess the way a user runs it: bad input
 * exits with code 2 and one `error:` line and writes nothing; `--help`, `--dry-run`, `--resume`
 * and `--out` behave as documented.
 *
 * @module
 */
import { exists } from "../../runtime/atomic.ts";
import assert from "node:assert/strict";
import { writeRandomModel } from "../../data/models/init_random.ts";
import { SILENT_PROGRESS } from "../progress.ts";
import { runExperiment, runIdOf } from "../run.ts";
import { loadExperiment } from "../schema.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const MALFORMED_JSONL = new URL("../testdata/e2e_malformed.jsonl", import.meta.url).pathname;

/** Every file this test writes lives here; removed when the test process ends. */
const TMP = await Deno.makeTempDir({ prefix: "moa_cli_e2e_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));

const MODEL_DIR = `${TMP}/model`;
await writeRandomModel(MODEL_DIR, { layers: 1, hidden: 32, heads: 2, kvHeads: 1, seed: 1 });

/** A valid experiment, one line per entry; the cases below alter one line (1-based numbers). */
const BASE = [
  "name: e2e", // 1
  `model: ${MODEL_DIR}`, // 2
  "methods: [dense]", // 3
  "lengths: [640, 768]", // 4
  "benchmarks:", // 5
  "  longeval: {cases: 3}", // 6
  "  perplexity: {tokens: 700}", // 7
  "  throughput: {decode: 4}", // 8
  "seed: 3", // 9
  "backend: cpu", // 10
];
const CELL_IDS = [640, 768].flatMap((n) =>
  ["longeval", "perplexity", "throughput"].map((b) => `dense-d1-n${n}-${b}`)
);

/** @returns BASE with line `n` (1-based) replaced by `lines` */
function edit(n: number, ...lines: string[]): string[] {
  return [...BASE.slice(0, n - 1), ...lines, ...BASE.slice(n)];
}

let files = 0;
/** Writes an experiment file into TMP; @returns its path */
async function writeFile(lines: string[], ext = "yaml"): Promise<string> {
  const path = `${TMP}/exp${files++}.${ext}`;
  await Deno.writeTextFile(path, lines.join("\n") + "\n");
  return path;
}

/** The outcome of one CLI run. */
interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A experiments/commands/experiment.ts ...args` from the project root. */
async function cli(...args: string[]): Promise<Outcome> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "experiments/commands/experiment.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** @returns every file under `dir` with its bytes, keyed by relative path */
async function snapshot(dir: string, prefix = ""): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(`${dir}/${prefix}`)) {
    const rel = `${prefix}${e.name}`;
    if (e.isDirectory) {
      for (const [k, v] of await snapshot(dir, `${rel}/`)) files.set(k, v);
    } else files.set(rel, await Deno.readFile(`${dir}/${rel}`));
  }
  return files;
}

/** Asserts a run failed as bad input: exit code 2, one `error:` line, nothing on stdout. */
function assertInputError(o: Outcome, message: string | RegExp): void {
  assert.equal(o.code, 2, `exit code ${o.code}, stderr:\n${o.stderr}`);
  const lines = o.stderr.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `expected one stderr line, got:\n${o.stderr}`);
  if (typeof message === "string") assert.equal(lines[0], message);
  else assert.match(lines[0]!, message);
  assert.equal(o.stdout, "");
}

/** A case of bad input: the file's lines and the exact `error:` line (or a pattern for it). */
interface BadCase {
  name: string;
  lines: string[];
  ext?: string;
  /** @param f the experiment file's path */
  error: (f: string) => string | RegExp;
}

const BAD: BadCase[] = [
  {
    name: "an unknown field names file:line:col and suggests the near one",
    lines: [...BASE, "seeed: 4"],
    error: (f) => `error: ${f}:11:1: seeed: unknown field 'seeed', did you mean 'seed'?`,
  },
  {
    name: "a value of the wrong type names file:line:col, the field, and what was expected",
    lines: edit(9, "seed: three"),
    error: (f) => `error: ${f}:9:7: seed: expected an integer, got "three"`,
  },
  {
    name: "a JSON file with a list where a mapping belongs names file:line:col",
    ext: "json",
    lines: [
      "{",
      '  "name": "e2e",',
      `  "model": ${JSON.stringify(MODEL_DIR)},`,
      '  "methods": ["dense"],',
      '  "lengths": [640],',
      '  "benchmarks": {"throughput": [4]}',
      "}",
    ],
    error: (f) =>
      `error: ${f}:6:32: benchmarks.throughput: expected a mapping of throughput settings, got a list`,
  },
  {
    name: "density 0 is out of (0, 1]",
    lines: [...BASE, "densities: [0]"],
    error: (f) => `error: ${f}:11:13: densities[0]: expected a number in (0, 1], got 0`,
  },
  {
    name: "density 1.5 is out of (0, 1]",
    lines: [...BASE, "densities: [0.5, 1.5]"],
    error: (f) => `error: ${f}:11:18: densities[1]: expected a number in (0, 1], got 1.5`,
  },
  {
    name: "a length of 0 is not a positive integer",
    lines: edit(4, "lengths: [640, 0]"),
    error: (f) => `error: ${f}:4:16: lengths[1]: expected a positive integer, got 0`,
  },
  {
    name: "a negative length is not a positive integer",
    lines: edit(4, "lengths: [-640]"),
    error: (f) => `error: ${f}:4:11: lengths[0]: expected a positive integer, got -640`,
  },
  {
    name: "a model folder that does not exist is named with the field",
    lines: edit(2, `model: ${TMP}/no-such-model`),
    error: (f) =>
      `error: ${f}: model: '${TMP}/no-such-model' is not a Hugging Face model folder (no config.json there)`,
  },
  {
    name: "a malformed LongEval JSONL line names the JSONL file:line:col",
    lines: edit(6, `  longeval: {file: ${MALFORMED_JSONL}}`),
    error: (f) =>
      `error: ${f}: ${MALFORMED_JSONL}:2:73: invalid JSON: Expected double-quoted property name`,
  },
  {
    name: "a moa profile length beyond what the profiler takes is named",
    lines: [
      ...edit(3, "methods: [dense, moa]"),
      "densities: [0.5]",
      "profile: {lengths: [640, 32768]}",
    ],
    error: (f) =>
      new RegExp(
        `^error: ${RegExp.escape(f)}: profile\\.lengths\\[1\\]: 32768 tokens exceed the 16384`,
      ),
  },

  {
    name: "a length too short for a LongEval prompt is caught before anything is written",
    lines: edit(4, "lengths: [640, 100]"),
    error: (f) =>
      new RegExp(
        `^error: ${RegExp.escape(f)}: lengths\\[1\\]: 100 tokens cannot hold a LongEval case`,
      ),
  },
];

Deno.test("the CLI rejects bad input with exit code 2, one error line, and writes nothing", async (t) => {
  for (const [i, c] of BAD.entries()) {
    await t.step(c.name, async () => {
      const file = await writeFile(c.lines, c.ext);
      const out = `${TMP}/out-bad${i}`;
      assertInputError(await cli(file, "--out", out), c.error(file));
      assert.equal(await exists(out), false, `${out} was created`);
    });
  }

  await t.step("a missing experiment file is named", async () => {
    const out = `${TMP}/out-missing`;
    assertInputError(
      await cli(`${TMP}/nope.yaml`, "--out", out),
      `error: ${TMP}/nope.yaml: cannot read experiment file: no such file`,
    );
    assert.equal(await exists(out), false);
  });

  await t.step("an unknown option is bad input", async () => {
    const file = await writeFile(BASE);
    assertInputError(await cli(file, "--frobnicate"), /^error: .*'--frobnicate'/);
  });
});

Deno.test("the CLI prints its usage and lists cells without writing anything", async (t) => {
  await t.step("--help exits 0 and prints the usage", async () => {
    const o = await cli("--help");
    assert.equal(o.code, 0, o.stderr);
    assert.match(o.stdout, /^moa experiment runner\n\nUsage:\n {2}deno task experiment \[FILE\]/);
    for (const option of ["--out DIR", "--resume", "--shard i/n", "--dry-run", "--no-cache"]) {
      assert.ok(o.stdout.includes(option), `usage lacks ${option}`);
    }
    assert.ok(o.stdout.includes("deno task experiment merge DIR..."));
    assert.equal(o.stderr, "");
  });

  await t.step("--dry-run lists every cell in order and writes nothing", async () => {
    const file = await writeFile(BASE);
    const out = `${TMP}/out-dry`;
    const o = await cli(file, "--out", out, "--dry-run");
    assert.equal(o.code, 0, o.stderr);
    const lines = o.stdout.trimEnd().split("\n");
    assert.deepEqual(
      lines.slice(0, -1).map((l) => l.replace(/ {2}\(cached\)$/, "")),
      CELL_IDS.map((id, i) => `${String(i).padStart(4)}  ${id}`),
    );
    assert.equal(lines.at(-1), "6 cells; dry run, nothing written");
    assert.equal(await exists(out), false);
  });

  await t.step("--dry-run --shard 1/3 lists that shard's cells", async () => {
    const file = await writeFile(BASE);
    const out = `${TMP}/out-dry-shard`;
    const o = await cli(file, "--out", out, "--dry-run", "--shard", "1/3");
    assert.equal(o.code, 0, o.stderr);
    const lines = o.stdout.trimEnd().split("\n");
    assert.deepEqual(
      lines.slice(0, -1).map((l) => l.replace(/ {2}\(cached\)$/, "")),
      [1, 4].map((i) => `${String(i).padStart(4)}  ${CELL_IDS[i]}`),
    );
    assert.equal(lines.at(-1), "2 cells (shard 1/3 of 6); dry run, nothing written");
    assert.equal(await exists(out), false);
  });

  await t.step("--shard 3/3 is bad input", async () => {
    const file = await writeFile(BASE);
    assertInputError(
      await cli(file, "--out", `${TMP}/out-shard33`, "--shard", "3/3"),
      "error: --shard: expected i/n with 0 ≤ i < n (e.g. 0/4), got '3/3'",
    );
    assert.equal(await exists(`${TMP}/out-shard33`), false);
  });
});

Deno.test("the CLI refuses --resume without a run and --out holding another run", async (t) => {
  const file = await writeFile(BASE);

  await t.step("--resume on an empty folder exits 2 and leaves it empty", async () => {
    const empty = `${TMP}/empty`;
    await Deno.mkdir(empty);
    assertInputError(
      await cli(file, "--out", empty, "--resume"),
      `error: --resume: ${empty} holds no earlier run to continue`,
    );
    assert.deepEqual([...(await snapshot(empty)).keys()], []);
  });

  await t.step("--resume on a folder that does not exist exits 2 and creates nothing", async () => {
    const none = `${TMP}/none`;
    assertInputError(
      await cli(file, "--out", none, "--resume"),
      `error: --resume: ${none} holds no earlier run to continue`,
    );
    assert.equal(await exists(none), false);
  });

  // another experiment's run: throughput only, on the same model
  const otherFile = await writeFile([
    "name: other",
    `model: ${MODEL_DIR}`,
    "methods: [dense]",
    "lengths: [640]",
    "benchmarks: {throughput: {decode: 4}}",
    "backend: cpu",
  ]);
  const otherDir = `${TMP}/other-run`;
  const other = await runExperiment(await loadExperiment(otherFile), {
    out: otherDir,
    cacheDir: `${TMP}/cache`,
    gitSha: "e2e-test",
    progress: SILENT_PROGRESS,
    notice: () => {},
  });
  const before = await snapshot(otherDir);
  assert.deepEqual([...before.keys()].sort(), [
    "cases.csv",
    "experiment.resolved.json",
    "metrics.csv",
  ]);
  const thisId = await runIdOf(await loadExperiment(file));
  const refusal = `error: --out: ${otherDir} holds run '${other.resolved.run_id}' of a ` +
    `different experiment or model (this one is '${thisId}'); choose another --out folder`;

  for (const flags of [[], ["--resume"]]) {
    await t.step(
      `--out${flags.map((f) => ` ${f}`).join("")} on another experiment's run exits 2 and ` +
        `leaves its files byte-identical`,
      async () => {
        assertInputError(await cli(file, "--out", otherDir, ...flags), refusal);
        assert.deepEqual(await snapshot(otherDir), before);
      },
    );
  }
});

Deno.test("--seed runs the file at another seed, under its own run id", async (t) => {
  const file = await writeFile(
    edit(6, "  longeval: {cases: 2}").filter((l) => !/perplexity|throughput/.test(l)),
  );
  await t.step(
    "the run records the given seed in every row and in the resolved experiment",
    async () => {
      const out = `${TMP}/out-seed7`;
      const o = await cli(file, "--out", out, "--seed", "7", "--no-cache");
      assert.equal(o.code, 0, o.stderr);
      const resolved = JSON.parse(await Deno.readTextFile(`${out}/experiment.resolved.json`));
      assert.equal(resolved.experiment.seed, 7);
      const rows = (await Deno.readTextFile(`${out}/metrics.csv`)).trim().split("\n");
      const header = rows[0]!.split(",");
      const seedAt = header.indexOf("seed"), runAt = header.indexOf("run_id");
      assert.ok(rows.length > 1 && rows.slice(1).every((r) => r.split(",")[seedAt] === "7"));
      const plain = `${TMP}/out-seed-file`;
      assert.equal((await cli(file, "--out", plain, "--no-cache")).code, 0);
      const other = (await Deno.readTextFile(`${plain}/metrics.csv`)).trim().split("\n")[1]!;
      assert.equal(other.split(",")[seedAt], "3");
      assert.notEqual(other.split(",")[runAt], rows[1]!.split(",")[runAt]);
    },
  );
  await t.step("a seed that is not an integer is bad input", async () => {
    assertInputError(
      await cli(file, "--seed", "1.5"),
      "error: --seed: expected an integer, got '1.5'",
    );
  });
});
