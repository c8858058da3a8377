/**
 * `deno task report RUN_DIR…`: draws run folders side by side in one self-contained HTML page
 * (experiments/report/report.ts).
 *
 * @module
 */
import { exists } from "../../runtime/atomic.ts";
import { InputError, runCli } from "../../runtime/errors.ts";
import { checkPage, findChromium } from "../report/browser.ts";
import { writeReport } from "../report/report.ts";
import { CommandLine } from "./_args.ts";

const HELP = `moa report: draw runs in one HTML page

Usage: deno task report RUN_DIR… [--out results/report] [--history FILE] [--scale FILE]

Writes OUT/index.html, one self-contained page (inline SVG and CSS, nothing fetched), and each
chart as OUT/<chart>.svg. Several run folders are drawn side by side, one panel per run. Charts,
for whatever the runs measured:
  - accuracy (and any score) against length, a line per method and density, 95% intervals;
  - accuracy by position decile of the asked line, a heatmap per method;
  - perplexity, decode/prefill tokens/s, KV bytes and any other metric against length;
  - the MoA plans' Pareto sets (density against validation loss, the chosen plan ringed);
  - the plan map: layer × kv head coloured by each head's span at the served lengths;
  - each metric's trend over the history (--history, default results/history.csv if present);
  - deno task bench scale's time and memory per stage (--scale, default
    results/bench/scale.csv if present).

Options:
  --out DIR       where the page and SVGs go (default results/report)
  --history FILE  the history to draw trends from (deno task history)
  --scale FILE    the CSV of deno task bench scale
`;

/** The command's options (see `CommandLine.parse`). */
const OPTIONS = "out=results/report history scale check!";

/** Runs the command. @returns the exit code */
export async function main(args: string[]): Promise<number> {
  const cli = CommandLine.parse(args, HELP, OPTIONS, Infinity);
  if (!cli) return 0;
  if (cli.positionals.length === 0) {
    throw new InputError("report: give at least one run folder (see --help)");
  }
  const out = cli.string("out")!;
  /** A file named by an option must exist; a default one is used when it does. */
  const optional = async (name: string, fallback: string) => {
    const given = cli.string(name);
    if (given !== undefined) {
      if (!(await exists(given))) throw new InputError(`--${name}: ${given} does not exist`);
      return given;
    }
    return (await exists(fallback)) ? fallback : undefined;
  };
  const history = await optional("history", "results/history.csv");
  const scale = await optional("scale", "results/bench/scale.csv");
  const r = await writeReport(cli.positionals, out, {
    ...(history ? { history } : {}),
    ...(scale ? { scale } : {}),
  });
  for (const n of r.notes) console.error(`note: ${n}`);
  console.log(
    `${out}/index.html: ${r.charts.length} charts (${r.charts.map((c) => c.id).join(", ")})`,
  );
  if (!cli.flag("check")) return 0;
  const found = await findChromium();
  if ("reason" in found) throw new InputError(`--check: ${found.reason}`);
  const seen = await checkPage(found.path, `${out}/index.html`, `${out}/screenshot.png`);
  for (const c of seen.charts) console.log(`  ${c.id}: ${c.drawn} of ${c.expected} marks drawn`);
  for (const p of seen.problems) console.error(`problem: ${p}`);
  const verdict = seen.problems.length === 0
    ? "the page is clean"
    : `${seen.problems.length} problem(s)`;
  console.log(`${out}/screenshot.png: ${verdict}`);
  return seen.problems.length === 0 ? 0 : 1;
}

if (import.meta.main) await runCli(main);
