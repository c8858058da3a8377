/**
 * Compares two runs cell by cell and gives each (cell, metric) a verdict:
 *
 * - **Proportions** (`accuracy`, `score…`; position deciles are left out): when both runs scored
 *   the same cases (cases.csv: equal case ids and prompt hashes, their mean the metric's value),
 *   a paired test over those cases: McNemar's exact test for right/wrong outcomes, a paired t-test
 *   for partial scores. Otherwise Newcombe's 95% interval on the difference of the two
 *   proportions. A regression is a significant drop (p < α, or the interval wholly below 0).
 * - **Speeds** (`…_per_s`): the ratio new/base against a noise band estimated from repeats of
 *   the base's cells (other runs of the same grid, or the history): a regression is a ratio below
 *   the band. Without repeats the cell is not judged.
 * - **Deterministic costs** (`perplexity`, `nll`: 1% tolerance; `kv_bytes`: none): a rise beyond
 *   the tolerance is a regression.
 * - Anything else is listed as information.
 *
 * @module
 */
import { InputError } from "../../runtime/errors.ts";
import type { CaseRow } from "../csv.ts";
import type { MetricRow, RunFolder } from "./runs.ts";
import {
  type Interval,
  mcnemarExact,
  newcombe,
  type Noise,
  normalQuantile,
  pooledLogNoise,
  ratioBand,
  studentCdf,
} from "./stats.ts";

/** What a comparison concluded about one (cell, metric). */
export type Outcome = "regression" | "improvement" | "same" | "not judged" | "info";

/** One line of the verdict table. */
export interface Verdict {
  cell: string;
  metric: string;
  base: number;
  next: number;
  /** How the difference was judged, in words (e.g. `McNemar exact, 50 pairs`). */
  test: string;
  /** new − base (proportions) or new / base (speeds and costs). */
  change: number;
  /** The interval on `change`, or the noise band of the ratio, when there is one. */
  interval?: Interval;
  /** The test's p-value, when there is one. */
  p?: number;
  outcome: Outcome;
}

/** Options of {@link compareRuns}. */
export interface CompareOptions {
  /** Significance level of each cell's test. @default 0.05 */
  alpha?: number;
  /**
   * Repeated measurements of the base's timed metrics, keyed `<cell> <metric>` (other runs of
   * the same grid, or earlier entries of the history), for the speed noise band.
   */
  repeats?: Map<string, number[]>;
}

/** The result of a comparison. */
export interface Comparison {
  verdicts: Verdict[];
  /** The noise estimate used for speeds, or null when there were no repeats. */
  noise: Noise | null;
  /** The speed ratio band, or null. */
  band: Interval | null;
  /** Cells in only one of the runs. */
  onlyBase: string[];
  onlyNext: string[];
}

/** Relative rise a deterministic cost may take before it is a regression. */
export const COST_TOLERANCE: Record<string, number> = { perplexity: 0.01, nll: 0.01, kv_bytes: 0 };

const isProportion = (m: string) => /accuracy|score/.test(m) && !/_decile_/.test(m);
const isSpeed = (m: string) => /_per_s$/.test(m);
const isDecile = (m: string) => /_decile_/.test(m);

/** The key of a (cell, metric) in {@link CompareOptions.repeats}. */
export const repeatKey = (cell: string, metric: string) => `${cell} ${metric}`;

/**
 * Compares run `next` against run `base`.
 * @throws InputError when the runs share no cell
 */
export function compareRuns(
  base: RunFolder,
  next: RunFolder,
  opts: CompareOptions = {},
): Comparison {
  const alpha = opts.alpha ?? 0.05;
  const index = (rows: MetricRow[]) => new Map(rows.map((r) => [repeatKey(r.cell, r.metric), r]));
  const a = index(base.rows), b = index(next.rows);
  const cellsA = new Set(base.rows.map((r) => r.cell));
  const cellsB = new Set(next.rows.map((r) => r.cell));
  const shared = [...cellsA].filter((c) => cellsB.has(c));
  if (shared.length === 0) {
    throw new InputError(
      `compare: ${base.dir} and ${next.dir} share no cell (base has ${
        [...cellsA].slice(0, 2).join(", ") || "none"
      }…, new has ${[...cellsB].slice(0, 2).join(", ") || "none"}…); compare runs of one grid`,
    );
  }
  // the noise band comes from repeats of the base's speed cells, the base's own value included
  const groups: number[][] = [];
  for (const [key, values] of opts.repeats ?? []) {
    const own = a.get(key);
    if (own && isSpeed(own.metric)) groups.push([own.value, ...values]);
  }
  const noise = pooledLogNoise(groups);
  const band = noise ? ratioBand(noise, alpha) : null;
  const casesA = casesByCell(base.cases), casesB = casesByCell(next.cases);
  const verdicts: Verdict[] = [];
  for (const [key, ra] of a) {
    const rb = b.get(key);
    if (!rb || isDecile(ra.metric)) continue;
    const common = { cell: ra.cell, metric: ra.metric, base: ra.value, next: rb.value };
    if (Number.isNaN(ra.value) || Number.isNaN(rb.value)) {
      verdicts.push({ ...common, test: "value missing", change: NaN, outcome: "not judged" });
    } else if (isProportion(ra.metric) && ra.value >= 0 && ra.value <= 1) {
      verdicts.push({
        ...common,
        ...judgeProportion(
          ra,
          rb,
          pairCases(ra, rb, casesA.get(ra.cell), casesB.get(rb.cell)),
          alpha,
        ),
      });
    } else if (isSpeed(ra.metric)) {
      const change = rb.value / ra.value;
      verdicts.push({
        ...common,
        change,
        ...(band
          ? {
            test: `ratio vs noise band (${plural(noise!.cells, "cell")}, ${noise!.df} df)`,
            interval: band,
            outcome: change < band.lo ? "regression" : change > band.hi ? "improvement" : "same",
          }
          : { test: "ratio; no repeats to estimate noise", outcome: "not judged" }),
      });
    } else if (ra.metric in COST_TOLERANCE) {
      const change = rb.value / ra.value, tol = COST_TOLERANCE[ra.metric]!;
      verdicts.push({
        ...common,
        change,
        test: `ratio, tolerance ${tol * 100}%`,
        outcome: change > 1 + tol + 1e-12
          ? "regression"
          : change < 1 - tol - 1e-12
          ? "improvement"
          : "same",
      });
    } else {
      verdicts.push({
        ...common,
        change: rb.value / ra.value,
        test: "not judged",
        outcome: "info",
      });
    }
  }
  return {
    verdicts,
    noise,
    band,
    onlyBase: [...cellsA].filter((c) => !cellsB.has(c)),
    onlyNext: [...cellsB].filter((c) => !cellsA.has(c)),
  };
}

function casesByCell(rows: CaseRow[]): Map<string, CaseRow[]> {
  const m = new Map<string, CaseRow[]>();
  for (const r of rows) m.set(String(r.cell), [...(m.get(String(r.cell)) ?? []), r]);
  return m;
}

/**
 * The cases of a cell paired across two runs, when both scored the same set (equal ids and
 * hashes) and each run's mean score is its metric's value; otherwise null.
 */
function pairCases(
  ra: MetricRow,
  rb: MetricRow,
  ca: CaseRow[] | undefined,
  cb: CaseRow[] | undefined,
): [number, number][] | null {
  if (!ca || !cb || ca.length !== cb.length || ca.length === 0) return null;
  const byId = new Map(cb.map((r) => [String(r.case), r]));
  const pairs: [number, number][] = [];
  for (const x of ca) {
    const y = byId.get(String(x.case));
    if (!y || y.hash !== x.hash) return null;
    pairs.push([Number(x.score), Number(y.score)]);
  }
  const mean = (i: 0 | 1) => pairs.reduce((s, p) => s + p[i], 0) / pairs.length;
  if (Math.abs(mean(0) - ra.value) > 1e-9 || Math.abs(mean(1) - rb.value) > 1e-9) return null;
  return pairs;
}

/** A proportion's verdict: paired over the same cases when possible, else Newcombe's interval. */
function judgeProportion(
  ra: MetricRow,
  rb: MetricRow,
  pairs: [number, number][] | null,
  alpha: number,
): Pick<Verdict, "test" | "change" | "interval" | "p" | "outcome"> {
  const change = rb.value - ra.value;
  const signed = (significant: boolean): Outcome =>
    !significant || change === 0 ? "same" : change < 0 ? "regression" : "improvement";
  if (pairs && pairs.every(([x, y]) => (x === 0 || x === 1) && (y === 0 || y === 1))) {
    const worse = pairs.filter(([x, y]) => x === 1 && y === 0).length;
    const better = pairs.filter(([x, y]) => x === 0 && y === 1).length;
    const p = mcnemarExact(worse, better);
    return {
      test: `McNemar exact, ${pairs.length} pairs (${worse} worse, ${better} better)`,
      change,
      p,
      outcome: signed(p < alpha),
    };
  }
  if (pairs) {
    const d = pairs.map(([x, y]) => y - x);
    const n = d.length, mean = d.reduce((s, x) => s + x, 0) / n;
    const sd = Math.sqrt(d.reduce((s, x) => s + (x - mean) ** 2, 0) / Math.max(1, n - 1));
    const p = sd === 0
      ? (mean === 0 ? 1 : 0)
      : 2 * (1 - studentCdf(Math.abs(mean) / (sd / Math.sqrt(n)), n - 1));
    return { test: `paired t, ${n} pairs`, change, p, outcome: signed(p < alpha) };
  }
  const z = normalQuantile(1 - alpha / 2);
  const interval = newcombe(
    Math.round(ra.value * ra.n),
    ra.n,
    Math.round(rb.value * rb.n),
    rb.n,
    z,
  );
  return {
    test: `Newcombe ${Math.round((1 - alpha) * 100)}% interval, n ${ra.n} vs ${rb.n}`,
    change,
    interval,
    outcome: signed(interval.hi < 0 || interval.lo > 0),
  };
}

/** Whether any verdict is a regression. */
export function hasRegression(c: Comparison): boolean {
  return c.verdicts.some((v) => v.outcome === "regression");
}

function fmtValue(metric: string, v: number): string {
  if (Number.isNaN(v)) return "n/a";
  if (isProportion(metric)) return v.toFixed(3);
  if (Math.abs(v) >= 1000) return v.toFixed(0);
  return v.toPrecision(4);
}

function fmtChange(v: Verdict): string {
  if (Number.isNaN(v.change)) return "n/a";
  if (isProportion(v.metric)) return `${v.change >= 0 ? "+" : ""}${v.change.toFixed(3)}`;
  return `×${v.change.toFixed(3)}`;
}

function fmtInterval(v: Verdict): string {
  if (!v.interval) return v.p === undefined ? "" : `p=${v.p.toPrecision(2)}`;
  const { lo, hi } = v.interval;
  return isProportion(v.metric)
    ? `[${lo.toFixed(3)}, ${hi.toFixed(3)}]`
    : `band [×${lo.toFixed(3)}, ×${hi.toFixed(3)}]`;
}

/** The verdict table's rows as cells of text: regressions first, then in run order. */
function tableRows(c: Comparison): string[][] {
  const rank: Record<Outcome, number> = {
    regression: 0,
    improvement: 1,
    "not judged": 2,
    same: 3,
    info: 4,
  };
  return [...c.verdicts]
    .map((v, i) => ({ v, i }))
    .sort((x, y) => rank[x.v.outcome] - rank[y.v.outcome] || x.i - y.i)
    .map(({ v }) => [
      v.cell,
      v.metric,
      fmtValue(v.metric, v.base),
      fmtValue(v.metric, v.next),
      fmtChange(v),
      fmtInterval(v),
      v.test,
      v.outcome,
    ]);
}

const HEADER = ["cell", "metric", "base", "new", "change", "interval / p", "test", "verdict"];

/** One line saying what the comparison found. */
export function summaryLine(c: Comparison): string {
  const count = (o: Outcome) => c.verdicts.filter((v) => v.outcome === o).length;
  const parts = [
    `${count("regression")} regression(s)`,
    `${count("improvement")} improvement(s)`,
    `${count("same")} within noise`,
    `${count("not judged")} not judged`,
  ];
  const only = c.onlyBase.length + c.onlyNext.length;
  return `${parts.join(", ")}${only ? `; ${only} cell(s) in one run only` : ""}`;
}

/** The verdict table as aligned text. */
export function textReport(c: Comparison): string {
  const rows = [HEADER, ...tableRows(c)];
  const widths = HEADER.map((_, j) => Math.max(...rows.map((r) => r[j]!.length)));
  const line = (r: string[]) => r.map((x, j) => x.padEnd(widths[j]!)).join("  ").trimEnd();
  return [
    line(rows[0]!),
    widths.map((w) => "-".repeat(w)).join("  "),
    ...rows.slice(1).map(line),
    "",
    summaryLine(c),
  ].join("\n");
}

/** The verdict table as GitHub-flavoured Markdown (for a CI job summary). */
export function markdownReport(c: Comparison, title: string): string {
  const esc = (s: string) => s.replace(/\|/g, "\\|");
  const rows = tableRows(c).map((r) => {
    const outcome = r[7]!;
    r[7] = outcome === "regression" ? "**regression**" : outcome;
    return `| ${r.map(esc).join(" | ")} |`;
  });
  return [
    `### ${title}`,
    "",
    `${hasRegression(c) ? "**Regression.**" : "No regression."} ${summaryLine(c)}.`,
    "",
    `| ${HEADER.join(" | ")} |`,
    `| ${HEADER.map(() => "---").join(" | ")} |`,
    ...rows,
    "",
  ].join("\n");
}

/** `1 cell`, `2 cells`. */
function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? "" : "s"}`;
}
