/**
 * Renders the report's charts to SVG with Vega (no browser: `view.toSVG()`) and lays them out
 * in one self-contained HTML page: inline SVG and CSS, no script, nothing fetched.
 *
 * @module
 */
import * as vega from "vega";
import * as vl from "vega-lite";
import type { Chart } from "./charts.ts";
import { type RunFolder, seriesName } from "./runs.ts";

/** The look every chart shares. */
const CONFIG = {
  font: "DejaVu Sans, Helvetica, Arial, sans-serif",
  view: { stroke: "#ccc" },
  axis: { labelFontSize: 10, titleFontSize: 11, gridColor: "#eee" },
  legend: { labelFontSize: 10, titleFontSize: 11 },
  header: { labelFontSize: 11, titleFontSize: 11 },
};

/**
 * Renders a chart's Vega-Lite spec to an SVG document.
 * @throws Error with the chart's id when Vega-Lite or Vega rejects the spec
 */
export async function renderSvg(chart: Chart): Promise<string> {
  try {
    const spec = {
      $schema: "https://vega.github.io/schema/vega-lite/v6.json",
      config: CONFIG,
      ...chart.spec,
    };
    const compiled = vl.compile(spec as unknown as vl.TopLevelSpec).spec;
    const view = new vega.View(vega.parse(compiled), { renderer: "none" });
    const svg = await view.toSVG();
    view.finalize();
    return svg;
  } catch (e) {
    throw new Error(`chart ${chart.id}: ${(e as Error).message}`);
  }
}

/** Escapes text for HTML. */
export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

const CSS = `
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px;
  padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
figure { margin: 1.5em 0; } figcaption { color: #555; font-size: 0.9em; margin: 0.3em 0 0.6em; }
figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: right; }
th { background: #f6f6f6; } td:first-child, th:first-child { text-align: left; }
code { font-size: 0.9em; } .note { color: #8a5a00; }
`;

/** The metrics shown in a run's summary table: one column each, when the run has them. */
function summaryMetrics(run: RunFolder): string[] {
  const seen: string[] = [];
  for (const r of run.rows) {
    if (/_decile_/.test(r.metric) || r.metric === "nll" || seen.includes(r.metric)) continue;
    seen.push(r.metric);
  }
  return seen;
}

function fmt(metric: string, v: number): string {
  if (!Number.isFinite(v)) return "n/a";
  if (/accuracy|score/.test(metric)) return v.toFixed(2);
  if (metric.endsWith("bytes")) {
    return v >= 1 << 20 ? `${(v / (1 << 20)).toFixed(1)} MiB` : `${(v / 1024).toFixed(0)} KiB`;
  }
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3);
}

/** A run's summary: one row per method, density and length, one column per metric. */
function summaryTable(run: RunFolder): string {
  const metrics = summaryMetrics(run);
  const rows = new Map<string, Map<string, number>>();
  for (const r of run.rows) {
    const key = `${seriesName(r.method, r.density)}\u0000${r.length}`;
    if (!rows.has(key)) rows.set(key, new Map());
    rows.get(key)!.set(r.metric, r.value);
  }
  const head = `<tr><th>method</th><th>length</th>${
    metrics.map((m) => `<th>${esc(m)}</th>`).join("")
  }</tr>`;
  const body = [...rows.entries()].map(([key, vals]) => {
    const [series, length] = key.split("\u0000");
    const cells = metrics.map((m) => `<td>${vals.has(m) ? fmt(m, vals.get(m)!) : "–"}</td>`);
    return `<tr><td>${esc(series!)}</td><td>${length}</td>${cells.join("")}</tr>`;
  });
  return `<table>${head}${body.join("")}</table>`;
}

/** What the page says about each run. */
function runsSection(runs: RunFolder[]): string {
  const rows = runs.map((r) => {
    const e = r.resolved.experiment;
    const started = r.rows.map((x) => x.started_at).filter((s) => s).sort();
    return `<tr><td>${esc(r.label)}</td><td><code>${esc(r.resolved.run_id)}</code></td>` +
      `<td><code>${esc(r.resolved.git_sha ?? "")}</code></td><td>${
        esc(String(e.model ?? ""))
      }</td>` +
      `<td>${new Set(r.rows.map((x) => x.cell)).size}</td><td>${esc(started[0] ?? "")}</td>` +
      `<td><code>${esc(r.dir)}</code></td></tr>`;
  });
  return `<table><tr><th>run</th><th>run id</th><th>commit</th><th>model</th><th>cells</th>` +
    `<th>started</th><th>folder</th></tr>${rows.join("")}</table>` +
    runs.map((r) => `<h3>${esc(r.label)}</h3>${summaryTable(r)}`).join("");
}

/** One chart on the page: its SVG inline, with what the browser test checks as attributes. */
export function figure(chart: Chart, svg: string): string {
  return `<figure id="${esc(chart.id)}" data-chart="${
    esc(chart.id)
  }" data-marks="${chart.marks}">` +
    `<h2>${esc(chart.title)}</h2><figcaption>${esc(chart.caption)} ` +
    `(<a href="${esc(chart.id)}.svg">SVG</a>)</figcaption>${
      svg.replace(/^<\?xml[^>]*>/, "")
    }</figure>`;
}

/** The whole page. */
export function page(
  runs: RunFolder[],
  figures: string[],
  notes: string[],
  generated: string,
): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>moa report: ${esc(runs.map((r) => r.label).join(", "))}</title>
<style>${CSS}</style></head>
<body>
<h1>moa report: ${esc(runs.map((r) => r.label).join(", "))}</h1>
<p>Generated ${esc(generated)} by <code>deno task report</code> from ${runs.length} run folder${
    runs.length === 1 ? "" : "s"
  }.</p>
${notes.map((n) => `<p class="note">${esc(n)}</p>`).join("\n")}
<h2>Runs</h2>
${runsSection(runs)}
${figures.join("\n")}
</body></html>
`;
}
