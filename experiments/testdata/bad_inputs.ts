/**
 * Tries many kinds of bad input against the experiment runner (`experiments/commands/experiment.ts`, its
 * `merge` command and its stage cache) and the LongEval CLI (`experiments/commands/longeval.ts`), each as a
 * user would, in a subprocess, and reports for each path how many kinds it handles as designed.
 *
 * ```
 * deno run -A experiments/testdata/bad_inputs.ts [--root DIR] [--only TEXT] [--json FILE]
 * ```
 *
 * `--root` runs the CLIs of another checkout (to measure before a change); `--only` keeps the
 * kinds whose name contains TEXT. Every kind states what handling it means:
 *
 * - `refuse`: exit code 2, exactly one `error: …` line on stderr, nothing on stdout, and the
 *   output folder neither created nor changed; for a broken model folder, also that the same
 *   `--out` is accepted once the model is fixed;
 * - `warn`: exit code 0 and a `warning: …` line matching the kind's pattern;
 * - `recompute`: exit code 0, a notice naming the bad cache file, and the metric of a clean run;
 * - `missing`: exit code 0 and an empty value (not 0) for the metric of a cell without cases;
 * - `once`: two runs started together on one cache compute each cell exactly once.
 *
 * Writes only under a temporary folder, removed at the end.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { writeRandomModel } from "../../data/models/init_random.ts";
import { generateCases } from "../../data/longeval/longeval.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    root: { type: "string", default: new URL("../..", import.meta.url).pathname },
    only: { type: "string" },
    json: { type: "string" },
  },
});
const ROOT = flags.root!.replace(/\/?$/, "/");
const TMP = await Deno.makeTempDir({ prefix: "moa_bad_inputs_" });

/** The outcome of one command. */
interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Seconds a command may run before it counts as running until killed. */
const TIMEOUT_S = 150;

/** Runs a CLI of ROOT (`experiments/commands/experiment.ts` or `experiments/commands/longeval.ts`). */
async function cli(script: string, args: string[]): Promise<Outcome> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", MOA_CACHE: `${TMP}/cache-default` },
    signal: AbortSignal.timeout(TIMEOUT_S * 1000),
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  const stderr = out.signal ? `killed after ${TIMEOUT_S} s (${out.signal})\n` : text(out.stderr);
  return { code: out.code, stdout: text(out.stdout), stderr };
}
const experiment = (...args: string[]) => cli("experiments/commands/experiment.ts", args);
const longeval = (...args: string[]) => cli("experiments/commands/longeval.ts", args);

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Every file under `dir` with its text, as one comparable string ("" when absent). */
async function snapshot(dir: string): Promise<string> {
  if (!(await exists(dir))) return "";
  if ((await Deno.stat(dir)).isFile) return await Deno.readTextFile(dir);
  const parts: string[] = [];
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else parts.push(`${p}\n${await Deno.readTextFile(p)}`);
    }
  };
  await walk(dir);
  return parts.sort().join("\n---\n");
}

// ---------------------------------------------------------------------------------------------
// Fixtures

const MODEL = `${TMP}/model`;
const SHAPE = { layers: 1, hidden: 32, heads: 2, kvHeads: 1, seed: 1 };
await writeRandomModel(MODEL, SHAPE);
/** A model that claims a long context, for the checks that do not come from positions. */
const LONG_MODEL = `${TMP}/model-long`;
await writeRandomModel(LONG_MODEL, { ...SHAPE, maxPositions: 1_000_000 });

let counter = 0;
const fresh = (stem: string) => `${TMP}/${stem}${counter++}`;

/** A minimal valid experiment (one throughput cell); `over` replaces top-level fields. */
function expObject(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: "bad",
    model: MODEL,
    methods: ["dense"],
    lengths: [640],
    benchmarks: { throughput: { decode: 2 } },
    backend: "cpu",
    ...over,
  };
}
/** Writes an experiment file (JSON is YAML too) and returns its path. */
async function expFile(over: Record<string, unknown> = {}, ext = "yaml"): Promise<string> {
  const f = `${fresh("exp")}.${ext}`;
  await Deno.writeTextFile(f, JSON.stringify(expObject(over), null, 1) + "\n");
  return f;
}
async function textFile(text: string, ext: string): Promise<string> {
  const f = `${fresh("file")}.${ext}`;
  await Deno.writeTextFile(f, text);
  return f;
}

/** LongEval cases as JSONL in the format every version of the reader accepts. */
async function casesFile(targetLength: number, count: number, pad = 0): Promise<string> {
  const cases = generateCases({
    count,
    targetLength,
    seed: 1,
    countTokens: (t) => new TextEncoder().encode(t).length + 1,
  });
  const lines = cases.map((c) =>
    JSON.stringify({ prompt: "x".repeat(pad) + c.prompt, expected_number: c.expected })
  );
  return await textFile(lines.join("\n") + "\n", "jsonl");
}
const SMALL_CASES = await casesFile(600, 2);

/** A copy of MODEL, altered by `edit`. */
async function brokenModel(edit: (dir: string) => Promise<void>): Promise<string> {
  const dir = fresh("model-broken");
  await Deno.mkdir(dir);
  for await (const e of Deno.readDir(MODEL)) {
    await Deno.copyFile(`${MODEL}/${e.name}`, `${dir}/${e.name}`);
  }
  await edit(dir);
  return dir;
}
async function editJson(path: string, f: (x: Record<string, unknown>) => unknown) {
  await Deno.writeTextFile(path, JSON.stringify(f(JSON.parse(await Deno.readTextFile(path)))));
}
/** Rewrites the safetensors header (keeping the data) through `f`. */
async function editHeader(path: string, f: (h: Record<string, unknown>) => void) {
  const bytes = await Deno.readFile(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  f(header);
  const text = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + text.length + bytes.length - 8 - n);
  new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
  out.set(text, 8);
  out.set(bytes.subarray(8 + n), 8 + text.length);
  await Deno.writeFile(path, out);
}

// ---------------------------------------------------------------------------------------------
// Checks

type Check = () => Promise<string | null>;

/** Bad input must exit 2 with one error line and leave `out` as it was. */
async function refuse(o: Outcome, out: string | null, before = ""): Promise<string | null> {
  const lines = o.stderr.split("\n").filter((l) => l.trim() !== "");
  if (o.code !== 2) return `exit ${o.code}: ${lines.slice(0, 3).join(" | ").slice(0, 300)}`;
  if (lines.length !== 1 || !lines[0]!.startsWith("error: ")) {
    return `stderr has ${lines.length} lines: ${lines.slice(0, 3).join(" | ").slice(0, 300)}`;
  }
  if (o.stdout !== "") return `stdout not empty: ${o.stdout.slice(0, 100)}`;
  if (out !== null && (await snapshot(out)) !== before) return `${out} was written`;
  return null;
}

/** An experiment file that must be refused (nothing written to a fresh --out). */
function refuseExp(file: () => Promise<string>, ...extra: string[]): Check {
  return async () => {
    const out = fresh("out");
    return await refuse(await experiment(await file(), "--out", out, ...extra), out);
  };
}

/**
 * A broken model folder: refused with nothing written; then, with the model fixed, the same
 * --out must be accepted.
 */
function refuseModel(edit: (dir: string) => Promise<void>): Check {
  return async () => {
    const dir = await brokenModel(edit);
    const file = await expFile({ model: dir });
    const out = fresh("out");
    const bad = await refuse(await experiment(file, "--out", out), out);
    if (bad) return bad;
    await Deno.remove(dir, { recursive: true });
    await brokenModel(async (d) => await Deno.rename(d, dir));
    const again = await experiment(file, "--out", out, "--dry-run");
    return again.code === 0
      ? null
      : `after fixing the model: exit ${again.code}: ${again.stderr.trim().split("\n")[0]}`;
  };
}

/** A run that must succeed with a warning line matching `pattern`. */
function warns(run: () => Promise<Outcome>, pattern: RegExp): Check {
  return async () => {
    const o = await run();
    if (o.code !== 0) return `exit ${o.code}: ${o.stderr.trim().split("\n").slice(-2).join(" | ")}`;
    const hit = o.stderr.split("\n").some((l) => l.startsWith("warning: ") && pattern.test(l));
    return hit ? null : `no warning matching ${pattern}: ${o.stderr.slice(0, 300)}`;
  };
}

/** Reads one metric's value (as text) from a metrics.csv. */
async function metricValue(csv: string, metric: string): Promise<string | null> {
  const [header, ...rows] = (await Deno.readTextFile(csv)).trim().split("\n");
  const cols = header!.split(",");
  for (const r of rows) {
    const cells = r.split(",");
    if (cells[cols.indexOf("metric")] === metric) return cells[cols.indexOf("value")]!;
  }
  return null;
}

/** The perplexity experiment the cache kinds corrupt: one deterministic cell. */
const PPL = { lengths: [640], benchmarks: { perplexity: { tokens: 640 } } };
let cleanPpl: string | null = null;

/**
 * Runs PPL once into a fresh cache, corrupts the artifact of `stage` with `text`, reruns:
 * the rerun must name the file, recompute, and give the clean value.
 */
function recompute(stage: "cell" | "cases", text: string): Check {
  return async () => {
    const cache = fresh("cache");
    const over = stage === "cell" ? PPL : {
      lengths: [640],
      benchmarks: { longeval: { cases: 1 }, perplexity: { tokens: 640 } },
    };
    const file = await expFile(over);
    const first = await experiment(file, "--out", fresh("out"), "--cache", cache);
    if (first.code !== 0) return `first run failed: ${first.stderr.slice(-300)}`;
    const dir = `${cache}/${stage}`;
    const victims: string[] = [];
    for await (const e of Deno.readDir(dir)) if (e.name.endsWith(".json")) victims.push(e.name);
    for (const v of victims) await Deno.writeTextFile(`${dir}/${v}`, text);
    // the cases are read only when a LongEval cell is computed
    if (stage === "cases") await Deno.remove(`${cache}/cell`, { recursive: true });
    const out = fresh("out");
    const o = await experiment(file, "--out", out, "--cache", cache);
    if (o.code !== 0) return `exit ${o.code}: ${o.stderr.trim().split("\n").slice(-3).join(" | ")}`;
    if (!victims.every((v) => o.stderr.includes(v))) {
      return `stderr does not name ${victims.join(", ")}: ${o.stderr.slice(0, 200)}`;
    }
    cleanPpl ??= await (async () => {
      const c = fresh("out");
      await experiment(await expFile(PPL), "--out", c, "--cache", fresh("cache"));
      return await metricValue(`${c}/metrics.csv`, "perplexity");
    })();
    const got = await metricValue(`${out}/metrics.csv`, "perplexity");
    return got === cleanPpl ? null : `perplexity ${got}, clean run ${cleanPpl}`;
  };
}

/** Two shards of a two-length throughput experiment, made once. */
let shards: Promise<{ file: string; dirs: string[] }> | null = null;
function twoShards() {
  return shards ??= (async () => {
    const file = await expFile({ lengths: [640, 768] });
    const dirs = [0, 1].map((i) => `${TMP}/shards/r-shard${i}of2`);
    for (const [i, d] of dirs.entries()) {
      const o = await experiment(file, "--out", d, "--shard", `${i}/2`);
      if (o.code !== 0) throw new Error(`shard ${i}: ${o.stderr}`);
    }
    return { file, dirs };
  })();
}
/** A merge that must be refused; `prepare` may alter copies of the shard folders. */
function refuseMerge(args: (dirs: string[]) => Promise<string[]>): Check {
  return async () => {
    const { dirs } = await twoShards();
    const copies: string[] = [];
    for (const d of dirs) {
      const c = `${fresh("copy")}/r-shard${copies.length}of2`;
      await Deno.mkdir(c, { recursive: true });
      for (const f of ["experiment.resolved.json", "metrics.csv"]) {
        await Deno.copyFile(`${d}/${f}`, `${c}/${f}`);
      }
      copies.push(c);
    }
    const out = fresh("merged");
    return await refuse(await experiment("merge", ...(await args(copies)), "--out", out), out);
  };
}

/** Two runs started together on one cache must compute each cell once between them. */
const once: Check = async () => {
  const file = await expFile({
    lengths: [640, 704, 768, 832, 896, 960],
    benchmarks: { perplexity: { tokens: 640 } },
  });
  const cache = fresh("cache");
  const runs = await Promise.all(
    [0, 1].map(() => experiment(file, "--out", fresh("out"), "--cache", cache)),
  );
  for (const o of runs) if (o.code !== 0) return `exit ${o.code}: ${o.stderr.slice(-300)}`;
  const computed = runs.map((o) =>
    o.stderr.split("\n").filter((l) => /^\[\d+\/\d+\] \S+: perplexity=/.test(l))
      .filter((l) => !l.includes("(cached)")).length
  );
  const total = computed[0]! + computed[1]!;
  return total === 6 ? null : `6 cells computed ${total} times (${computed.join(" + ")})`;
};

// ---------------------------------------------------------------------------------------------
// The kinds

/** One kind of bad input. */
interface Kind {
  path: "experiment" | "model" | "length" | "cache" | "merge" | "longeval";
  name: string;
  check: Check;
}

const e = (name: string, check: Check): Kind => ({ path: "experiment", name, check });
const m = (name: string, edit: (dir: string) => Promise<void>): Kind => ({
  path: "model",
  name,
  check: refuseModel(edit),
});
const cfg = (f: (c: Record<string, unknown>) => void) => async (dir: string) =>
  await editJson(`${dir}/config.json`, (c) => (f(c), c));
const ST = (dir: string) => `${dir}/model.safetensors`;

const KINDS: Kind[] = [
  // the experiment file and the command line
  e("missing experiment file", async () => {
    const out = fresh("out");
    return await refuse(await experiment(`${TMP}/nope.yaml`, "--out", out), out);
  }),
  e("experiment file is a folder", refuseExp(() => Promise.resolve(TMP))),
  e("empty experiment file", refuseExp(() => textFile("", "yaml"))),
  e("YAML syntax error", refuseExp(() => textFile("name: [bad\nmodel: x\n", "yaml"))),
  e("JSON syntax error", refuseExp(() => textFile('{"name": "bad",', "json"))),
  e("top level is a list", refuseExp(() => textFile("- name: bad\n", "yaml"))),
  e("unknown field", refuseExp(() => expFile({ seeed: 1 }))),
  e("missing name", refuseExp(() => expFile({ name: undefined }))),
  e("name with capitals and a space", refuseExp(() => expFile({ name: "Bad Name" }))),
  e("missing model", refuseExp(() => expFile({ model: undefined }))),
  e("unknown embedded model", refuseExp(() => expFile({ model: "no-such-model" }))),
  e("model path missing", refuseExp(() => expFile({ model: `${TMP}/none` }))),
  e("model path is a file", refuseExp(() => expFile({ model: `${MODEL}/config.json` }))),
  e("methods empty", refuseExp(() => expFile({ methods: [] }))),
  e("unknown method", refuseExp(() => expFile({ methods: ["bogus"] }))),
  e("method listed twice", refuseExp(() => expFile({ methods: ["dense", "dense"] }))),
  e("density 0", refuseExp(() => expFile({ methods: ["streaming"], densities: [0] }))),
  e("density 1.5", refuseExp(() => expFile({ methods: ["streaming"], densities: [1.5] }))),
  e("density a string", refuseExp(() => expFile({ methods: ["h2o"], densities: ["half"] }))),
  e("sparse method without densities", refuseExp(() => expFile({ methods: ["streaming"] }))),
  e("lengths empty", refuseExp(() => expFile({ lengths: [] }))),
  e("length 0", refuseExp(() => expFile({ lengths: [0] }))),
  e("negative length", refuseExp(() => expFile({ lengths: [-640] }))),
  e("fractional length", refuseExp(() => expFile({ lengths: [640.5] }))),
  e("length a string", refuseExp(() => expFile({ lengths: ["long"] }))),
  e("length listed twice", refuseExp(() => expFile({ lengths: [640, 640] }))),
  e(
    "length too short for a LongEval prompt",
    refuseExp(() => expFile({ lengths: [100], benchmarks: { longeval: { cases: 1 } } })),
  ),
  e("benchmarks empty", refuseExp(() => expFile({ benchmarks: {} }))),
  e("unknown benchmark", refuseExp(() => expFile({ benchmarks: { bogus: {} } }))),
  e("longeval cases 0", refuseExp(() => expFile({ benchmarks: { longeval: { cases: 0 } } }))),
  e(
    "longeval cases and file both",
    refuseExp(() => expFile({ benchmarks: { longeval: { cases: 1, file: SMALL_CASES } } })),
  ),
  e(
    "longeval limit without file",
    refuseExp(() => expFile({ benchmarks: { longeval: { cases: 1, limit: 1 } } })),
  ),
  e(
    "longeval file missing",
    refuseExp(() => expFile({ benchmarks: { longeval: { file: `${TMP}/none.jsonl` } } })),
  ),
  e(
    "longeval file malformed",
    refuseExp(async () =>
      expFile({ benchmarks: { longeval: { file: await textFile('{"prompt": \n', "jsonl") } } })
    ),
  ),
  e(
    "longeval file empty",
    refuseExp(async () =>
      expFile({ benchmarks: { longeval: { file: await textFile("\n", "jsonl") } } })
    ),
  ),
  e(
    "longeval line without prompt",
    refuseExp(async () =>
      expFile({
        benchmarks: { longeval: { file: await textFile('{"expected_number": 5}\n', "jsonl") } },
      })
    ),
  ),
  e("perplexity tokens 0", refuseExp(() => expFile({ benchmarks: { perplexity: { tokens: 0 } } }))),
  e(
    "throughput decode 0",
    refuseExp(() => expFile({ benchmarks: { throughput: { decode: 0 } } })),
  ),
  e(
    "throughput batch -1",
    refuseExp(() => expFile({ benchmarks: { throughput: { batch: -1 } } })),
  ),
  e("seed a string", refuseExp(() => expFile({ seed: "x" }))),
  e("fractional seed", refuseExp(() => expFile({ seed: 1.5 }))),
  e("unknown backend", refuseExp(() => expFile({ backend: "tpu" }))),
  e(
    "moa profile length beyond the profiler",
    refuseExp(() => expFile({ methods: ["moa"], densities: [0.5], profile: { lengths: [4096] } })),
  ),
  e(
    "moa profile length too short for calibration",
    refuseExp(() => expFile({ methods: ["moa"], densities: [0.5], profile: { lengths: [64] } })),
  ),
  e("profile samples 0", refuseExp(() => expFile({ profile: { samples: 0 } }))),
  e("profile block 0", refuseExp(() => expFile({ profile: { block: 0 } }))),
  e("profile sink -1", refuseExp(() => expFile({ profile: { sink: -1 } }))),
  e("unknown profile influence", refuseExp(() => expFile({ profile: { influence: "x" } }))),
  e("--shard 2/2", refuseExp(() => expFile(), "--shard", "2/2")),
  e("--shard x", refuseExp(() => expFile(), "--shard", "x")),
  e("unknown option", refuseExp(() => expFile(), "--frobnicate")),
  e("two experiment files", async () => {
    const out = fresh("out");
    return await refuse(await experiment(await expFile(), await expFile(), "--out", out), out);
  }),
  e("--resume on an empty folder", async () => {
    const out = fresh("out");
    await Deno.mkdir(out);
    return await refuse(await experiment(await expFile(), "--out", out, "--resume"), out);
  }),
  e("--out holding another experiment's run", async () => {
    const out = fresh("out");
    const o = await experiment(await expFile({ name: "other" }), "--out", out);
    if (o.code !== 0) return `setup failed: ${o.stderr}`;
    const before = await snapshot(out);
    return await refuse(await experiment(await expFile(), "--out", out), out, before);
  }),
  e("--out is a file", async () => {
    const out = await textFile("x", "txt");
    return await refuse(await experiment(await expFile(), "--out", out), out, await snapshot(out));
  }),
  e("--cache is a file", async () => {
    const out = fresh("out");
    const cache = await textFile("x", "txt");
    return await refuse(await experiment(await expFile(), "--out", out, "--cache", cache), out);
  }),

  // a broken model folder
  m("config.json not JSON", async (d) => await Deno.writeTextFile(`${d}/config.json`, "{oops")),
  m("config.json is a list", async (d) => await Deno.writeTextFile(`${d}/config.json`, "[]")),
  m("config.json missing", async (d) => await Deno.remove(`${d}/config.json`)),
  m("model_type gpt2", cfg((c) => (c.model_type = "gpt2"))),
  m("wrong hidden_size", cfg((c) => (c.hidden_size = 64))),
  m("num_hidden_layers 0", cfg((c) => (c.num_hidden_layers = 0))),
  m("vocab_size below the tokenizer's", cfg((c) => (c.vocab_size = 100))),
  m("no weights", async (d) => await Deno.remove(ST(d))),
  m("truncated safetensors data", async (d) => {
    const b = await Deno.readFile(ST(d));
    await Deno.writeFile(ST(d), b.subarray(0, b.length - 1000));
  }),
  m("safetensors shorter than its header length", async (d) => {
    await Deno.writeFile(ST(d), new Uint8Array([1, 2, 3, 4]));
  }),
  m("truncated safetensors header", async (d) => {
    const b = await Deno.readFile(ST(d));
    await Deno.writeFile(ST(d), b.subarray(0, 100));
  }),
  m("safetensors header not JSON", async (d) => {
    const b = await Deno.readFile(ST(d));
    b.fill(0x7b, 8, 40);
    await Deno.writeFile(ST(d), b);
  }),
  m("a tensor missing", async (d) => {
    await editHeader(ST(d), (h) => delete h["model.norm.weight"]);
  }),
  m("a tensor of dtype I32", async (d) => {
    await editHeader(ST(d), (h) => ((h["model.norm.weight"] as { dtype: string }).dtype = "I32"));
  }),
  m("tokenizer.json not JSON", async (d) => await Deno.writeTextFile(`${d}/tokenizer.json`, "{x")),
  m("tokenizer.json not a tokenizer", async (d) => {
    await Deno.writeTextFile(`${d}/tokenizer.json`, '{"model": 5}');
  }),
  m("tokenizer.json missing", async (d) => await Deno.remove(`${d}/tokenizer.json`)),

  // lengths the model or the data cannot serve
  {
    path: "length",
    name: "length 16384 beyond max_position_embeddings 8192",
    check: warns(
      async () =>
        await experiment(
          await expFile({ lengths: [16384] }),
          "--out",
          fresh("out"),
          "--dry-run",
        ),
      /lengths\[0\].*16384.*max_position_embeddings.*8192/,
    ),
  },
  {
    path: "length",
    name: "throughput at length 10^7",
    check: refuseExp(() => expFile({ lengths: [10_000_000] })),
  },
  {
    path: "length",
    name: "perplexity at a length beyond the held-out text",
    check: refuseExp(() =>
      expFile({
        model: LONG_MODEL,
        lengths: [700_000],
        benchmarks: { perplexity: { tokens: 700_000 } },
      })
    ),
  },
  {
    path: "length",
    name: "throughput whose KV cache exceeds the machine's memory",
    check: refuseExp(() => {
      const perToken = SHAPE.layers * 2 * SHAPE.kvHeads * (SHAPE.hidden / SHAPE.heads) * 4;
      const batch = Math.ceil((2 * Deno.systemMemoryInfo().total) / perToken / 500_000);
      return expFile({
        model: LONG_MODEL,
        lengths: [500_000],
        benchmarks: { throughput: { decode: 1, batch } },
      });
    }),
  },
  {
    path: "length",
    name: "a cell whose file cases were all dropped",
    check: async () => {
      const file = await expFile({
        benchmarks: { longeval: { file: await casesFile(1500, 2) } },
      });
      const out = fresh("out");
      const o = await experiment(file, "--out", out);
      if (o.code !== 0) return `exit ${o.code}: ${o.stderr.slice(-300)}`;
      const v = await metricValue(`${out}/metrics.csv`, "accuracy");
      return v === "" ? null : `accuracy written as '${v}'`;
    },
  },

  // the stage cache
  { path: "cache", name: "cell artifact {metrics: 5}", check: recompute("cell", '{"metrics":5}') },
  {
    path: "cache",
    name: "cell artifact with a string value",
    check: recompute(
      "cell",
      JSON.stringify({
        metrics: [{ metric: "perplexity", value: "abc", n: 1 }],
        backend: "cpu",
        device: "cpu",
        started_at: "2020-01-01T00:00:00.000Z",
      }),
    ),
  },
  { path: "cache", name: "cell artifact is a list", check: recompute("cell", "[]") },
  { path: "cache", name: "cell artifact is null", check: recompute("cell", "null") },
  { path: "cache", name: "cell artifact truncated", check: recompute("cell", '{"metr') },
  {
    path: "cache",
    name: "cell artifact without backend",
    check: recompute(
      "cell",
      JSON.stringify({ metrics: [{ metric: "perplexity", value: 1, n: 1 }] }),
    ),
  },
  {
    path: "cache",
    name: "cases artifact of the wrong shape",
    check: recompute("cases", '{"a":1}'),
  },
  { path: "cache", name: "two concurrent runs on one cache", check: once },

  // merge
  { path: "merge", name: "no folders", check: refuseMerge(() => Promise.resolve([])) },
  {
    path: "merge",
    name: "a folder that does not exist",
    check: refuseMerge((d) => Promise.resolve([d[0]!, `${TMP}/none`])),
  },
  {
    path: "merge",
    name: "folders of different runs",
    check: refuseMerge(async (d) => {
      const other = fresh("other");
      await experiment(await expFile({ name: "other" }), "--out", other);
      return [d[0]!, other];
    }),
  },
  {
    path: "merge",
    name: "only some shards",
    check: refuseMerge((d) => Promise.resolve([d[0]!])),
  },
  {
    path: "merge",
    name: "only some shards with --partial (allowed, with a warning)",
    check: async () => {
      const { dirs } = await twoShards();
      const o = await experiment("merge", dirs[0]!, "--out", fresh("merged"), "--partial");
      const warned = o.stderr.split("\n").some((l) => l.startsWith("warning: ") && /1 /.test(l));
      return o.code === 0 && warned ? null : `exit ${o.code}: ${o.stderr.slice(0, 300)}`;
    },
  },
  {
    path: "merge",
    name: "--out is one of the folders",
    check: async () => {
      const { dirs } = await twoShards();
      const before = await snapshot(dirs[0]!);
      return await refuse(await experiment("merge", ...dirs, "--out", dirs[0]!), dirs[0]!, before);
    },
  },
  {
    path: "merge",
    name: "metrics.csv lacks a column",
    check: refuseMerge(async (d) => {
      const f = `${d[1]}/metrics.csv`;
      await Deno.writeTextFile(f, (await Deno.readTextFile(f)).replace("benchmark,", ""));
      return d;
    }),
  },
  {
    path: "merge",
    name: "metrics.csv has an unknown cell",
    check: refuseMerge(async (d) => {
      const f = `${d[1]}/metrics.csv`;
      await Deno.writeTextFile(f, (await Deno.readTextFile(f)).replaceAll("-n768-", "-n999-"));
      return d;
    }),
  },
  {
    path: "merge",
    name: "a folder without metrics.csv",
    check: refuseMerge(async (d) => {
      await Deno.remove(`${d[1]}/metrics.csv`);
      return d;
    }),
  },
  {
    path: "merge",
    name: "experiment.resolved.json not JSON",
    check: refuseMerge(async (d) => {
      await Deno.writeTextFile(`${d[1]}/experiment.resolved.json`, "{");
      return d;
    }),
  },
  {
    path: "merge",
    name: "folders not named <run>-shard<i>of<n> and no --out",
    check: async () => {
      const o = await experiment("merge", `${TMP}/plain`);
      return await refuse(o, null);
    },
  },

  // the LongEval CLI
  ...(
    [
      ["missing --model", () => ["--cases", SMALL_CASES]],
      ["missing --cases", () => ["--model", MODEL]],
      ["cases file missing", () => ["--model", MODEL, "--cases", `${TMP}/none.jsonl`]],
      ["cases file empty", async () => ["--model", MODEL, "--cases", await textFile("", "jsonl")]],
      [
        "cases file malformed",
        async () => ["--model", MODEL, "--cases", await textFile("{x\n", "jsonl")],
      ],
      ["--limit 0", () => ["--model", MODEL, "--cases", SMALL_CASES, "--limit", "0"]],
      ["--limit abc", () => ["--model", MODEL, "--cases", SMALL_CASES, "--limit", "abc"]],
      [
        "--density 2",
        () => ["--model", MODEL, "--cases", SMALL_CASES, "--method", "streaming", "--density", "2"],
      ],
      ["unknown --method", () => ["--model", MODEL, "--cases", SMALL_CASES, "--method", "x"]],
      ["moa without --plan", () => ["--model", MODEL, "--cases", SMALL_CASES, "--method", "moa"]],
      [
        "--plan missing",
        () => ["--model", MODEL, "--cases", SMALL_CASES, "--method", "moa", "--plan", "/none"],
      ],
      [
        "--plan not JSON",
        async () => [
          "--model",
          MODEL,
          "--cases",
          SMALL_CASES,
          "--method",
          "moa",
          "--plan",
          await textFile("{", "json"),
        ],
      ],
      ["--density with dense", () => ["--model", MODEL, "--cases", SMALL_CASES, "--density", "1"]],
      ["unknown --backend", () => ["--model", MODEL, "--cases", SMALL_CASES, "--backend", "tpu"]],
      ["unknown option", () => ["--model", MODEL, "--cases", SMALL_CASES, "--x"]],
      ["model folder missing", () => ["--model", `${TMP}/none`, "--cases", SMALL_CASES]],
      [
        "config.json not JSON",
        async () => [
          "--model",
          await brokenModel(async (d) => await Deno.writeTextFile(`${d}/config.json`, "{")),
          "--cases",
          SMALL_CASES,
        ],
      ],
      [
        "a 2 MB prompt",
        async () => ["--model", MODEL, "--cases", await casesFile(600, 1, 2_000_000)],
      ],
    ] as [string, () => string[] | Promise<string[]>][]
  ).map(([name, args]): Kind => ({
    path: "longeval",
    name,
    check: async () => await refuse(await longeval(...(await args())), null),
  })),
  {
    path: "longeval",
    name: "a prompt beyond max_position_embeddings (allowed, with a warning)",
    check: warns(
      async () =>
        await longeval(
          "--model",
          await (async () => {
            const d = fresh("model-short");
            await writeRandomModel(d, { ...SHAPE, maxPositions: 512 });
            return d;
          })(),
          "--cases",
          SMALL_CASES,
          "--limit",
          "1",
          "--backend",
          "cpu",
        ),
      /max_position_embeddings 512/,
    ),
  },
];

// ---------------------------------------------------------------------------------------------

const results: { path: string; name: string; problem: string | null }[] = [];
for (const k of KINDS) {
  if (flags.only && !k.name.includes(flags.only)) continue;
  let problem: string | null;
  try {
    problem = await k.check();
  } catch (err) {
    problem = `the check threw: ${err instanceof Error ? err.message : err}`;
  }
  results.push({ path: k.path, name: k.name, problem });
  console.log(
    `${problem ? "FAIL" : "ok  "}  ${k.path.padEnd(10)} ${k.name}${
      problem ? `\n        ${problem.replaceAll("\n", " ")}` : ""
    }`,
  );
}
console.log(`\n${"path".padEnd(10)}  tried  handled`);
for (const path of [...new Set(results.map((r) => r.path))]) {
  const sel = results.filter((r) => r.path === path);
  const ok = sel.filter((r) => r.problem === null).length;
  console.log(`${path.padEnd(10)}  ${String(sel.length).padStart(5)}  ${String(ok).padStart(7)}`);
}
const ok = results.filter((r) => r.problem === null).length;
console.log(
  `${"all".padEnd(10)}  ${String(results.length).padStart(5)}  ${String(ok).padStart(7)}`,
);
if (flags.json) await Deno.writeTextFile(flags.json, JSON.stringify(results, null, 1) + "\n");
await Deno.remove(TMP, { recursive: true });
