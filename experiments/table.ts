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

/**
 * Renders the summary tables as text. A cell absent from `rows` shows as `–`; a row whose value
 * is missing (empty: the cell had nothing to measure) shows as `n/a`.
 *
 * @example
 * ```ts
 * import { summaryTables } from "./table.ts";
 * const row = { experiment: "e", run_id: "r", cell: "c", model: "m", method: "dense", density: 1,
 *   length: 1024, benchmark: "longeval", metric: "accuracy", value: 0.5, n: 10, seed: 0,
 *   backend: "cpu", device: "cpu", git_sha: "x", started_at: "" };
 * console.log(summaryTables([row]));
 * ```
 */
export function summaryTables(rows: Row[]): string {
  const out: string[] = [];
  for (const [benchmark, metrics] of Object.entries(HEADLINE_METRICS)) {
    for (const metric of metrics) {
      const sel = rows.filter((r) => r.benchmark === benchmark && r.metric === metric);
      if (sel.length === 0) continue;
      const lengths = [...new Set(sel.map((r) => Number(r.length)))].sort((a, b) => a - b);
      const methods = [...new Set(sel.map((r) => `${r.method}@${r.density}`))];
      const header = [`${benchmark} ${metric}`, ...lengths.map((l) => `${l}`)];
      const body = methods.map((m) => [
        m,
        ...lengths.map((l) => {
          const r = sel.find((x) => `${x.method}@${x.density}` === m && Number(x.length) === l);
          if (!r) return "–"; // not run
          // an empty value is missing (nothing to measure), which is not 0
          return r.value === "" || Number.isNaN(Number(r.value))
            ? "n/a"
            : fmt(metric, Number(r.value));
        }),
      ]);
      out.push(...aligned(header, body), "");
    }
  }
  out.push(...rulerTaskTables(rows));
  return out.join("\n");
}

/** A header and body as aligned lines: the first column left, the others right. */
function aligned(header: string[], body: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "─".repeat(w)).join("  "), ...body.map(line)];
}

/**
 * RULER's per-task scores: one table per length, methods down, tasks across, then the mean
 * over tasks (RULER's average).
 */
function rulerTaskTables(rows: Row[]): string[] {
  const sel = rows.filter((r) => r.benchmark === "ruler" && String(r.metric).startsWith("score"));
  const out: string[] = [];
  for (const length of [...new Set(sel.map((r) => Number(r.length)))].sort((a, b) => a - b)) {
    const here = sel.filter((r) => Number(r.length) === length);
    const tasks = RULER_TASKS.filter((t) => here.some((r) => r.metric === `score_${t}`));
    const methods = [...new Set(here.map((r) => `${r.method}@${r.density}`))];
    const body = methods.map((m) => [
      m,
      ...[...tasks.map((t) => `score_${t}`), "score"].map((metric) => {
        const r = here.find((x) => `${x.method}@${x.density}` === m && x.metric === metric);
        return !r ? "–" : r.value === "" ? "n/a" : fmt(metric, Number(r.value));
      }),
    ]);
    const short = tasks.map((t) =>
      t.replace("niah_", "").replace("single_", "s").replace("multikey_", "mk")
    );
    out.push(...aligned([`ruler ${length}`, ...short, "mean"], body), "");
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
