/**
 * `deno task experiment [file] [options]` and `deno task experiment merge DIR…`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { InputError, runCli } from "../../runtime/errors.ts";
import { loadExperiment } from "../schema.ts";
import { parseShard, runExperiment, runIdOf } from "../run.ts";
import { mergeRuns } from "../merge.ts";
import { summaryTables } from "../table.ts";

/** The experiments folder, where `default.yaml` lives. */
const HERE = new URL("..", import.meta.url).pathname;
const ROOT = new URL("../..", import.meta.url).pathname;

export const HELP = `moa experiment runner

Usage:
  deno task experiment [FILE] [options]     run an experiment file (YAML or JSON)
  deno task experiment merge DIR... [--out DIR] [--partial]
                                            merge the outputs of sharded runs

FILE defaults to experiments/default.yaml.

Options:
  --out DIR      output folder (default: results/<run id>, or results/<run id>-shard<i>of<n>;
                 the run id is the experiment name and a hash of its resolved content)
  --resume       continue the run recorded in --out (fails if there is none)
  --shard i/n    run only cells whose index ≡ i (mod n), 0 ≤ i < n, for n machines
  --dry-run      list the cells (marking cached ones) and write nothing
  --no-cache     recompute every stage, ignoring cached artifacts
  --cache DIR    stage artifact cache (default: $MOA_CACHE, else results/.cache)
  --seed N       run the file with seed N instead of its own (cases, calibration, plans): the
                 same grid at another seed, for means and ranges over seeds; a new run id
  --partial      merge: write the merge even when some cells are in none of the folders
                 (without it, a missing shard is an error, exit code 2)
  -h, --help     show this help

Outputs: DIR/experiment.resolved.json (the resolved experiment and its cells) and
DIR/metrics.csv (one row per measurement), both written atomically after every cell.
Stage artifacts are cached in results/.cache/ by a hash of their inputs, so a rerun, even
after kill -9, repeats no finished cell. Exit codes: 0 ok, 1 failure, 2 bad input.
`;

/** Runs the command line; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      out: { type: "string" },
      resume: { type: "boolean", default: false },
      shard: { type: "string" },
      "dry-run": { type: "boolean", default: false },
      "no-cache": { type: "boolean", default: false },
      cache: { type: "string" },
      partial: { type: "boolean", default: false },
      seed: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals[0] === "merge") {
    if (values.seed !== undefined) throw new InputError("--seed does not apply to merge");
    const dirs = positionals.slice(1);
    if (dirs.length === 0) {
      throw new InputError(
        "merge: usage: deno task experiment merge DIR... [--out DIR] [--partial]",
      );
    }
    const stem = dirs[0]!.replace(/\/+$/, "");
    const out = values.out ??
      (/-shard\d+of\d+$/.test(stem) ? stem.replace(/-shard\d+of\d+$/, "") : null);
    if (!out) {
      throw new InputError(
        "merge: --out DIR is required when the folders are not named <run>-shard<i>of<n>",
      );
    }
    const { rows, missing } = await mergeRuns(dirs, out, { partial: values.partial });
    console.log(summaryTables(rows));
    console.error(`merged ${dirs.length} folders, ${rows.length} rows → ${out}/metrics.csv`);
    if (missing.length) {
      console.error(
        `warning: --partial: ${missing.length} cells are missing from the merge: ${
          missing.join(", ")
        }`,
      );
    }
    return 0;
  }
  if (values.partial) throw new InputError("--partial applies to merge only");
  if (positionals.length > 1) {
    throw new InputError(
      `expected one experiment file, got ${positionals.length}: ${positionals.join(" ")}`,
    );
  }
  const file = positionals[0] ?? await defaultExperimentFile();
  const exp = await loadExperiment(file);
  if (values.seed !== undefined) {
    const seed = Number(values.seed);
    if (!Number.isSafeInteger(seed)) {
      throw new InputError(`--seed: expected an integer, got '${values.seed}'`);
    }
    exp.seed = seed;
  }
  const shard = values.shard === undefined ? null : parseShard(values.shard);
  const runId = await runIdOf(exp).catch((e) => {
    throw e instanceof InputError ? new InputError(`${file}: ${e.message}`) : e;
  });
  const out = values.out ??
    `${ROOT}results/${runId}${shard ? `-shard${shard.index}of${shard.count}` : ""}`;
  const result = await runExperiment(exp, {
    out,
    resume: values.resume,
    shard,
    dryRun: values["dry-run"],
    noCache: values["no-cache"],
    cacheDir: values.cache ?? Deno.env.get("MOA_CACHE") ?? `${ROOT}results/.cache`,
    source: file,
  });
  if (values["dry-run"]) return 0;
  console.log(`\n${exp.name} (${result.resolved.run_id}, model ${exp.model})\n`);
  console.log(summaryTables(result.rows));
  console.error(`wrote ${result.rows.length} rows → ${out}/metrics.csv`);
  return 0;
}

async function defaultExperimentFile(): Promise<string> {
  for (const ext of ["yaml", "json"]) {
    const f = `${HERE}default.${ext}`;
    try {
      await Deno.stat(f);
      return f;
    } catch { /* try the next */ }
  }
  throw new InputError(`no experiment file given and ${HERE}default.yaml does not exist`);
}

if (import.meta.main) await runCli(main);
