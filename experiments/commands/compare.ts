/**
 * `deno task compare BASE NEW`: compares two run folders cell by cell and prints a verdict table
 * (experiments/report/compare.ts); exit code 1 on a significant regression, 0 otherwise, 2 on
 * bad input.
 *
 * @module
 */
import { writeFileAtomic } from "../../runtime/atomic.ts";
import { InputError, runCli } from "../../runtime/errors.ts";
import {
  compareRuns,
  hasRegression,
  markdownReport,
  repeatKey,
  textReport,
} from "../report/compare.ts";
import { historyRepeats, readHistory } from "../report/history.ts";
import { readRun, readRuns } from "../report/runs.ts";
import { CommandLine } from "./_args.ts";

const HELP = `moa compare: is the new run worse than the base?

Usage: deno task compare BASE_DIR NEW_DIR [--repeats DIR,DIR…] [--history FILE] [--alpha 0.05]
                         [--markdown FILE]

Compares two run folders cell by cell (cells with the same id and metric) and prints a verdict
per (cell, metric):
  accuracy, score   paired over the same cases when both runs scored them (cases.csv: McNemar's
                    exact test, or a paired t-test for partial scores), else Newcombe's interval
                    on the difference of the two proportions; a significant drop (p < alpha, or
                    the interval wholly below 0) is a regression
  …_per_s           the ratio new/base against the noise band of the base's repeats (--repeats,
                    --history); below the band is a regression; without repeats: not judged
  perplexity, nll   a rise of more than 1% is a regression; kv_bytes: any rise
Position deciles are left out; other metrics are listed.

Options:
  --repeats DIRS  other runs of the base's grid (comma-separated folders): their timed metrics
                  estimate the noise band
  --history FILE  the history (deno task history): the base experiment's last 10 entries on the
                  same device also count as repeats
  --alpha A       significance level of each cell's test (default 0.05)
  --markdown FILE append the verdict table as Markdown (e.g. "$GITHUB_STEP_SUMMARY")

Exit code: 1 when some cell regressed, 0 otherwise, 2 on bad input (unreadable folders, runs
that share no cell).
`;

/** The command's options (see `CommandLine.parse`). */
const OPTIONS = "repeats history alpha=0.05 markdown";

/** Runs the command. @returns the exit code */
export async function main(args: string[]): Promise<number> {
  const cli = CommandLine.parse(args, HELP, OPTIONS, 2);
  if (!cli) return 0;
  if (cli.positionals.length !== 2) {
    throw new InputError("compare: give two run folders, BASE_DIR NEW_DIR (see --help)");
  }
  const alpha = Number(cli.string("alpha"));
  if (!(alpha > 0 && alpha < 1)) {
    throw new InputError(`--alpha: expected a number in (0, 1), got '${cli.string("alpha")}'`);
  }
  const [base, next] = await readRuns(cli.positionals);
  const repeats = new Map<string, number[]>();
  const add = (key: string, values: number[]) =>
    repeats.set(key, [...(repeats.get(key) ?? []), ...values]);
  for (const dir of (cli.string("repeats") ?? "").split(",").filter((d) => d !== "")) {
    const r = await readRun(dir);
    if (r.resolved.experiment.name !== base!.resolved.experiment.name) {
      throw new InputError(
        `--repeats: ${dir} holds experiment '${r.resolved.experiment.name}', not the base's '${
          base!.resolved.experiment.name
        }'`,
      );
    }
    for (const row of r.rows) add(repeatKey(row.cell, row.metric), [row.value]);
  }
  const historyFile = cli.string("history");
  if (historyFile) {
    const h = await readHistory(historyFile);
    for (const [k, v] of historyRepeats(h, base!, (m) => m.endsWith("_per_s"))) add(k, v);
  }
  const c = compareRuns(base!, next!, { alpha, repeats });
  console.log(`base: ${base!.dir} (${base!.resolved.run_id}, ${base!.resolved.git_sha})`);
  console.log(`new:  ${next!.dir} (${next!.resolved.run_id}, ${next!.resolved.git_sha})`);
  console.log("");
  console.log(textReport(c));
  const md = cli.string("markdown");
  if (md) {
    // appended, as GitHub's job summary file expects
    const before = await Deno.readTextFile(md).catch((e) => {
      if (e instanceof Deno.errors.NotFound) return "";
      throw new InputError(`--markdown: cannot read ${md} (${e})`);
    });
    const title = `compare ${base!.label} → ${next!.label}`;
    await writeFileAtomic(md, before + markdownReport(c, title) + "\n");
  }
  return hasRegression(c) ? 1 : 0;
}

if (import.meta.main) await runCli(main);
