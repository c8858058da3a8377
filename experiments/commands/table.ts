/**
 * `deno task table RUN_DIR…`: the summary tables of one run, or of several runs of the same grid
 * (the same experiment at `--seed 0`, `1`, `2`) as mean and range (experiments/table.ts).
 *
 * @module
 */
import { join } from "node:path";
import { InputError, runCli } from "../../runtime/errors.ts";
import { readMetricsCsv, type Row } from "../csv.ts";
import { summaryTables } from "../table.ts";
import { CommandLine } from "./_args.ts";

const HELP = `moa table: the summary tables of runs, over seeds

Usage: deno task table RUN_DIR… [--markdown]

Prints the tables a run prints at its end (methods down, lengths across; RULER per task) from
each folder's metrics.csv. Several folders must hold the same experiment (its name) at different
seeds, e.g. the three folders of

  for s in 0 1 2; do deno task experiment experiments/paper/retrieval.yaml --seed $s; done

and each cell then shows the mean over the runs and, in parentheses, the range: 0.81 (0.75–0.84).

Options:
  --markdown   Markdown tables (for README files and job summaries)
`;

/** Runs the command. @returns the exit code */
export async function main(args: string[]): Promise<number> {
  const cli = CommandLine.parse(args, HELP, "markdown!", Infinity);
  if (!cli) return 0;
  if (cli.positionals.length === 0) {
    throw new InputError("table: give one or more run folders (see --help)");
  }
  const runs: { dir: string; rows: Row[] }[] = [];
  for (const dir of cli.positionals) {
    runs.push({ dir, rows: await readMetricsCsv(join(dir, "metrics.csv")) });
  }
  const name = (r: { rows: Row[] }) => String(r.rows[0]?.experiment ?? "");
  for (const r of runs) {
    if (r.rows.length === 0) throw new InputError(`${r.dir}/metrics.csv: no rows`);
    if (name(r) !== name(runs[0]!)) {
      throw new InputError(
        `${r.dir}: experiment '${name(r)}', not '${name(runs[0]!)}' as ${runs[0]!.dir}: ` +
          "tables average runs of one grid only",
      );
    }
  }
  const seeds = runs.map((r) => String(r.rows[0]!.seed));
  const twice = seeds.find((s, i) => seeds.indexOf(s) !== i);
  if (twice !== undefined) {
    throw new InputError(
      `two folders hold seed ${twice} (${
        runs.filter((r) => String(r.rows[0]!.seed) === twice).map((r) => r.dir).join(", ")
      }): a table over seeds takes each seed once`,
    );
  }
  console.log(
    `${name(runs[0]!)}: ${runs.length === 1 ? "seed" : "mean (range) over seeds"} ${
      [...seeds].sort((a, b) => Number(a) - Number(b) || a.localeCompare(b)).join(", ")
    }\n`,
  );
  console.log(summaryTables(runs.flatMap((r) => r.rows), { markdown: cli.flag("markdown") }));
  return 0;
}

if (import.meta.main) await runCli(main);
