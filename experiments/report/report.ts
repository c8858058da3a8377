/**
 * `deno task report RUN_DIR…`: one self-contained HTML page drawing the runs side by side, with
 * each chart also written as SVG beside it (experiments/report/charts.ts for what is drawn).
 *
 * @module
 */
import { writeFileAtomic } from "../../runtime/atomic.ts";
import {
  type Chart,
  decileCharts,
  lengthCharts,
  paretoChart,
  planMapChart,
  proportionCharts,
  trendCharts,
} from "./charts.ts";
import { readHistory } from "./history.ts";
import { figure, page, renderSvg } from "./page.ts";
import { readRuns } from "./runs.ts";
import { readScaleCsv, scaleCharts } from "./scale.ts";

/** Options of {@link writeReport}. */
export interface ReportOptions {
  /** The history to draw trends from (absent or missing file: no trends). */
  history?: string;
  /** `deno task bench scale`'s CSV (absent or missing file: no scale charts). */
  scale?: string;
  /** The time the page says it was generated. @default now */
  now?: Date;
}

/** What {@link writeReport} wrote. */
export interface ReportResult {
  /** The page. */
  html: string;
  /** The charts, in page order. */
  charts: Chart[];
  /** Notes printed on the page (what could not be drawn, and why). */
  notes: string[];
}

/**
 * Reads the run folders, draws every chart their data allows, and writes `index.html` and one
 * `<chart>.svg` per chart to `out`.
 * @throws InputError when a folder is not a run folder, or the history or scale file is malformed
 */
export async function writeReport(
  dirs: string[],
  out: string,
  opts: ReportOptions = {},
): Promise<ReportResult> {
  const runs = await readRuns(dirs);
  const notes: string[] = [];
  const { chart: pareto, unrecorded } = paretoChart(runs);
  if (unrecorded.length > 0) {
    notes.push(
      `Pareto sets not recorded for ${unrecorded.join(", ")}: those plans were made before ` +
        `plans kept their Pareto set (provenance.pareto); delete the plans from the cache ` +
        `(results/.cache/plan) and rerun to draw them.`,
    );
  }
  const history = opts.history ? await readHistory(opts.history) : [];
  const scale = opts.scale ? await readScaleCsv(opts.scale) : null;
  const charts: Chart[] = [
    ...proportionCharts(runs),
    ...decileCharts(runs),
    ...lengthCharts(runs),
    ...(pareto ? [pareto] : []),
    ...[planMapChart(runs)].filter((c): c is Chart => c !== null),
    ...trendCharts(history, runs),
    ...(scale ? scaleCharts(scale) : []),
  ];
  if (runs.every((r) => r.plans.length === 0)) {
    notes.push("No run made a MoA plan: no plan charts.");
  }
  const figures: string[] = [];
  for (const c of charts) {
    const svg = await renderSvg(c);
    await writeFileAtomic(`${out}/${c.id}.svg`, svg);
    figures.push(figure(c, svg));
  }
  const html = page(runs, figures, notes, (opts.now ?? new Date()).toISOString());
  await writeFileAtomic(`${out}/index.html`, html);
  return { html, charts, notes };
}
