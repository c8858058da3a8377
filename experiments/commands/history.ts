/**
 * `deno task history RUN_DIR…`: appends finished runs to the history (experiments/report/
 * history.ts), keyed by git commit, date and run id; `deno task report` draws its trends.
 *
 * @module
 */
import { InputError, runCli } from "../../runtime/errors.ts";
import { appendHistory } from "../report/history.ts";
import { readRuns } from "../report/runs.ts";
import { CommandLine } from "./_args.ts";

const HELP = `moa history: keep finished runs in one history CSV

Usage: deno task history RUN_DIR… [--file results/history.csv]

Appends each run folder's metrics.csv to the history, one row per measurement, keyed by git
commit, date (the start of the run's last cell) and run id. Appending a folder again replaces its
entry, so nothing is counted twice. \`deno task report … --history FILE\` draws each metric's trend
over it, and \`deno task compare … --history FILE\` takes the spread of its timed metrics as noise.

Options:
  --file FILE   the history (default results/history.csv; created when missing)
`;

/** The command's options (see `CommandLine.parse`). */
const OPTIONS = "file=results/history.csv";

/** Runs the command. @returns the exit code */
export async function main(args: string[]): Promise<number> {
  const cli = CommandLine.parse(args, HELP, OPTIONS, Infinity);
  if (!cli) return 0;
  if (cli.positionals.length === 0) {
    throw new InputError("history: give at least one run folder (see --help)");
  }
  const file = cli.string("file")!;
  const runs = await readRuns(cli.positionals);
  const { added, replaced } = await appendHistory(file, runs);
  console.log(
    `${file}: ${added} entr${added === 1 ? "y" : "ies"} added` +
      (replaced ? `, ${replaced} replaced` : ""),
  );
  return 0;
}

if (import.meta.main) await runCli(main);
