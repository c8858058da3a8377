/**
 * The summary printed at the end of a run: one small table per headline metric, methods down,
 * lengths across — the layout of the MoA paper's tables.
 *
 * @module
 */
import { RULER_TASKS } from "../data/ruler/ruler.ts";
import type { Row } from "./csv.ts";

/** The metrics shown in the summary, per benchmark. */
export const HEADLINE_METRICS: Record<string, string[]> = {
  longeval: ["accuracy", "kv_density"],
  ruler: ["score"],
  perplexity: ["perplexity"],
  throughput: ["decode_tokens_per_s", "prefill_tokens_per_s", "kv_bytes"],
};

function fmt(metric: string, v: number): string {
  if (metric === "accuracy" || metric.startsWith("score")) return v.toFixed(2);
  if (metric === "kv_density") return v.toFixed(3);
  if (metric === "kv_bytes") {
    return v >= 1 << 20 ? `${(v / (1 << 20)).toFixed(1)}M` : `${(v / 1024).toFixed(0)}K`;
  }
  if (Math.abs(v) >= 100) return v.toFixed(0);
  return v.toPrecision(3);
}

/** How {@link summaryTables} lays its tables out. */
export interface SummaryOptions {
  /** Markdown tables (`| a | b |`) instead of aligned text. @default false */
  markdown?: boolean;
}

/** The method column's label of a row. */
const label = (r: Row) => `${r.method}@${r.density}`;

/**
 * One cell of a summary table: the value, or over several runs (seeds) the mean and the range,
 * `0.81 (0.75–0.84)`, or the one value where the runs agree to the digits shown. `–`: no row (not
 * run); `n/a`: every value missing (nothing to measure).
 */
function cellText(metric: string, sel: Row[]): string {
  if (sel.length === 0) return "–";
  // an empty value is missing (nothing to measure), which is not 0
  const v = sel.map((r) => r.value).filter((x) => x !== "" && !Number.isNaN(Number(x))).map(
    Number,
  );
  if (v.length === 0) return "n/a";
  if (v.length === 1) return fmt(metric, v[0]!);
  const mean = v.reduce((a, x) => a + x, 0) / v.length;
  const [lo, hi] = [fmt(metric, Math.min(...v)), fmt(metric, Math.max(...v))];
  // runs that agree (to the digits shown) show the one value
  return lo === hi ? lo : `${fmt(metric, mean)} (${lo}–${hi})`;
}

/**
 * Renders the summary tables as text. A cell absent from `rows` shows as `–`; a row whose value
 * is missing (empty: the cell had nothing to measure) shows as `n/a`. Rows of several runs of one
 * grid (e.g. `--seed 0`, `1`, `2`) show as the mean and, in parentheses, the range.
 *
 * @param rows metrics.csv rows, of one run or of several runs of the same grid
 * @param o see {@link SummaryOptions}
 * @example
 * ```ts
 * import { summaryTables } from "./table.ts";
 * const row = { experiment: "e", run_id: "r", cell: "c", model: "m", method: "dense", density: 1,
 *   length: 1024, benchmark: "longeval", metric: "accuracy", value: 0.5, n: 10, seed: 0,
 *   backend: "cpu", device: "cpu", git_sha: "x", started_at: "" };
 * console.log(summaryTables([row, { ...row, value: 0.7, seed: 1 }])); // 0.60 (0.50–0.70)
 * ```
 */
export function summaryTables(rows: Row[], o: SummaryOptions = {}): string {
  const render = o.markdown ? markdownLines : aligned;
  const out: string[] = [];
  for (const [benchmark, metrics] of Object.entries(HEADLINE_METRICS)) {
    for (const metric of metrics) {
      const sel = rows.filter((r) => r.benchmark === benchmark && r.metric === metric);
      if (sel.length === 0) continue;
      const lengths = [...new Set(sel.map((r) => Number(r.length)))].sort((a, b) => a - b);
      const methods = [...new Set(sel.map(label))];
      const header = [`${benchmark} ${metric}`, ...lengths.map((l) => `${l}`)];
      const body = methods.map((m) => [
        m,
        ...lengths.map((l) =>
          cellText(metric, sel.filter((x) => label(x) === m && Number(x.length) === l))
        ),
      ]);
      out.push(...render(header, body), "");
    }
  }
  out.push(...rulerTaskTables(rows, render));
  return out.join("\n");
}

/** A header and body as aligned lines: the first column left, the others right. */
function aligned(header: string[], body: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "─".repeat(w)).join("  "), ...body.map(line)];
}

/** A header and body as a Markdown table. */
function markdownLines(header: string[], body: string[][]): string[] {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...body.map(line)];
}

/**
 * RULER's per-task scores: one table per length, methods down, tasks across, then the mean
 * over tasks (RULER's average).
 */
function rulerTaskTables(
  rows: Row[],
  render: (header: string[], body: string[][]) => string[],
): string[] {
  const sel = rows.filter((r) => r.benchmark === "ruler" && String(r.metric).startsWith("score"));
  const out: string[] = [];
  for (const length of [...new Set(sel.map((r) => Number(r.length)))].sort((a, b) => a - b)) {
    const here = sel.filter((r) => Number(r.length) === length);
    const tasks = RULER_TASKS.filter((t) => here.some((r) => r.metric === `score_${t}`));
    const methods = [...new Set(here.map(label))];
    const body = methods.map((m) => [
      m,
      ...[...tasks.map((t) => `score_${t}`), "score"].map((metric) =>
        cellText(metric, here.filter((x) => label(x) === m && x.metric === metric))
      ),
    ]);
    const short = tasks.map((t) =>
      t.replace("niah_", "").replace("single_", "s").replace("multikey_", "mk")
    );
    out.push(...render([`ruler ${length}`, ...short, "mean"], body), "");
  }
  return out;
}

/** Formats rows of objects as an aligned text table. */
export function textTable(rows: Record<string, string | number>[]): string {
  if (rows.length === 0) return "(no rows)";
  const cols = Object.keys(rows[0]!);
  const cell = (v: string | number) =>
    typeof v !== "number"
      ? v
      : Number.isInteger(v) || Math.abs(v) >= 100
      ? v.toFixed(0)
      : v.toPrecision(3);
  const body = rows.map((r) => cols.map((c) => String(cell(r[c]!))));
  const w = cols.map((c, i) => Math.max(c.length, ...body.map((b) => b[i]!.length)));
  const line = (cs: string[]) => cs.map((c, i) => c.padStart(w[i]!)).join("  ");
  return [line(cols), w.map((x) => "─".repeat(x)).join("  "), ...body.map(line)].join("\n");
}
