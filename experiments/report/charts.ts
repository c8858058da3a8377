/**
 * The report's charts as Vega-Lite specifications, built from whatever the run folders hold:
 * every proportion metric (LongEval `accuracy`, a benchmark's `score…`) against length with 95%
 * Wilson intervals, position-decile heatmaps, every other metric against length (perplexity,
 * decode and prefill tokens/s, KV bytes, …), the MoA plans' Pareto sets and plan maps, the
 * history's trends and the `bench scale` table. Nothing here knows a method, benchmark or
 * metric by name beyond the few it leaves out (`nll`, `prompt_tokens`: perplexity and the
 * length already say them).
 *
 * Each chart names its data layer `data`, which Vega draws as the mark group `data_marks`; a
 * chart records how many data marks it must show, which the browser test counts.
 *
 * @module
 */
import { elasticSpan } from "../../runtime/spans.ts";
import { entryKey, type HistoryRow } from "./history.ts";
import { type MetricRow, type RunFolder, seriesName } from "./runs.ts";
import { wilson } from "./stats.ts";

/** A Vega-Lite specification (checked by Vega-Lite's compiler when rendered). */
export type Spec = Record<string, unknown>;

/** One chart of the report. */
export interface Chart {
  /** File name stem and HTML id, e.g. `longeval-accuracy`. */
  id: string;
  /** Heading. */
  title: string;
  /** One or two sentences under it: what is drawn and how to read it. */
  caption: string;
  spec: Spec;
  /** How many marks the data layer draws (one per data point, bar or cell). */
  marks: number;
}

/** Metrics not drawn against length: `nll` is log perplexity, `prompt_tokens` the length. */
const NOT_DRAWN = new Set(["nll", "prompt_tokens"]);
const DECILE = /^(.+)_decile_(\d+)$/;

/** Whether a metric is a share of cases in [0, 1] (drawn with a binomial interval). */
export function isProportionMetric(metric: string): boolean {
  return /accuracy|score/.test(metric) && !DECILE.test(metric);
}

/** Width and height of one facet. */
const W = 260, H = 180;

/** The run facet: one column per run, labelled by the run's name. */
const runFacet = { field: "run", type: "nominal", title: null, sort: null };
/** The series legend: one colour per method and density, in the order first seen. */
const seriesColor = { field: "series", type: "nominal", title: "method", sort: null };

/** Finite rows of a metric, tagged with their run and series. */
function tagged(runs: RunFolder[], keep: (r: MetricRow) => boolean) {
  return runs.flatMap((run) =>
    run.rows.filter((r) => keep(r) && Number.isFinite(r.value)).map((r) => ({
      run: run.label,
      series: seriesName(r.method, r.density),
      ...r,
    }))
  );
}

/** The (benchmark, metric) pairs present, in the order first seen. */
function metricsPresent(runs: RunFolder[], keep: (metric: string) => boolean) {
  const seen = new Map<string, { benchmark: string; metric: string }>();
  for (const run of runs) {
    for (const r of run.rows) {
      if (keep(r.metric)) {
        seen.set(`${r.benchmark}/${r.metric}`, { benchmark: r.benchmark, metric: r.metric });
      }
    }
  }
  return [...seen.values()];
}

/** A lengths axis: log₂ spaced, ticks at the measured lengths. */
function lengthAxis(lengths: number[], title = "length (tokens)") {
  return {
    field: "length",
    type: "quantitative",
    title,
    scale: { type: "log", base: 2, nice: false, padding: 12 },
    axis: { values: [...new Set(lengths)].sort((a, b) => a - b), format: "d" },
  };
}

/** Encodings of a chart's x and y axes and its colour. */
type Encoding = Record<string, unknown>;

/**
 * Lines with a point per datum (the data layer), one panel per value of `facet`, over optional
 * layers drawn first (intervals).
 */
export function linesSpec(
  data: object[],
  facet: Encoding,
  enc: { x: Encoding; y: Encoding; color: Encoding },
  tooltip: Encoding[],
  under: Spec[] = [],
  size = { width: W, height: H },
): Spec {
  return {
    data: { values: data },
    facet: { column: facet },
    spec: {
      ...size,
      layer: [
        ...under,
        { mark: { type: "line" }, encoding: enc },
        {
          name: "data",
          mark: { type: "point", filled: true, size: 40 },
          encoding: { ...enc, tooltip },
        },
      ],
    },
  };
}

/**
 * A proportion (accuracy, score) against length, one line per method and density, one panel
 * per run, with 95% Wilson intervals from each value's n.
 */
export function proportionCharts(runs: RunFolder[]): Chart[] {
  return metricsPresent(runs, isProportionMetric).map(({ benchmark, metric }) => {
    const data = tagged(runs, (r) => r.benchmark === benchmark && r.metric === metric).map((r) => {
      const ci = wilson(Math.round(r.value * r.n), r.n);
      return { run: r.run, series: r.series, length: r.length, value: r.value, n: r.n, ...ci };
    });
    const x = lengthAxis(data.map((d) => d.length));
    const y = { field: "value", type: "quantitative", title: metric, scale: { domain: [0, 1] } };
    return {
      id: `${benchmark}-${metric}`,
      title: `${benchmark}: ${metric} against length`,
      caption: `One line per method and density; bars are 95% Wilson intervals over each cell's ` +
        `n cases.`,
      marks: data.length,
      spec: linesSpec(data, runFacet, { x, y, color: seriesColor }, [
        { field: "series" },
        { field: "length" },
        { field: "value", format: ".3f" },
        { field: "n" },
        { field: "lo", format: ".3f", title: "95% lo" },
        { field: "hi", format: ".3f", title: "95% hi" },
      ], [{
        mark: { type: "rule", opacity: 0.6 },
        encoding: {
          x,
          y: { field: "lo", type: "quantitative" },
          y2: { field: "hi" },
          color: seriesColor,
        },
      }]),
    };
  });
}

/**
 * A heatmap (the data layer: one rect per datum) with each cell's value written in it, one panel
 * per row and column facet value.
 */
export function heatmapSpec(
  data: object[],
  facet: { row: Encoding; column: Encoding },
  enc: { x: Encoding; y: Encoding; color: Encoding },
  tooltip: Encoding[],
  text: { text: Encoding; color: Encoding; fontSize: number },
  size: { width: unknown; height: unknown },
): Spec {
  const at = { x: enc.x, y: enc.y };
  return {
    data: { values: data },
    facet: {
      row: { ...facet.row, header: { labelAngle: 0, labelAlign: "left" } },
      column: facet.column,
    },
    spec: {
      ...size,
      layer: [
        { name: "data", mark: { type: "rect" }, encoding: { ...enc, tooltip } },
        {
          mark: { type: "text", fontSize: text.fontSize },
          encoding: { ...at, text: text.text, color: text.color },
        },
      ],
    },
  };
}

/** Accuracy by position decile of the asked line: a heatmap per method (and run). */
export function decileCharts(runs: RunFolder[]): Chart[] {
  const bases = new Map<string, { benchmark: string; base: string }>();
  for (const run of runs) {
    for (const r of run.rows) {
      const m = DECILE.exec(r.metric);
      if (m) bases.set(`${r.benchmark}/${m[1]}`, { benchmark: r.benchmark, base: m[1]! });
    }
  }
  return [...bases.values()].map(({ benchmark, base }) => {
    const data = tagged(
      runs,
      (r) => r.benchmark === benchmark && DECILE.exec(r.metric)?.[1] === base,
    )
      .map((r) => ({
        run: r.run,
        series: r.series,
        length: r.length,
        decile: Number(DECILE.exec(r.metric)![2]),
        value: r.value,
        n: r.n,
      }));
    const enc = {
      x: { field: "decile", type: "ordinal", title: "position decile of the asked line" },
      y: { field: "length", type: "ordinal", title: "length", sort: "descending" },
    };
    return {
      id: `${benchmark}-${base}-deciles`,
      title: `${benchmark}: ${base} by position of the asked line`,
      caption: `Decile 0 is the start of the record, 9 its end; colour is ${base}, the number ` +
        `in each cell its value (over that decile's cases only, so few per cell).`,
      marks: data.length,
      spec: heatmapSpec(
        data,
        { row: runFacet, column: { field: "series", type: "nominal", title: null, sort: null } },
        {
          ...enc,
          color: {
            field: "value",
            type: "quantitative",
            title: base,
            scale: { domain: [0, 1], scheme: "viridis" },
          },
        },
        [{ field: "decile" }, { field: "length" }, { field: "value", format: ".2f" }, {
          field: "n",
        }],
        {
          text: { field: "value", format: ".1f" },
          color: { condition: { test: "datum.value < 0.5", value: "white" }, value: "black" },
          fontSize: 7,
        },
        { width: { step: 18 }, height: { step: 18 } },
      ),
    };
  });
}

/** Every other metric against length (perplexity, tokens/s, KV bytes, …), one chart each. */
export function lengthCharts(runs: RunFolder[]): Chart[] {
  const other = (m: string) => !isProportionMetric(m) && !DECILE.test(m) && !NOT_DRAWN.has(m);
  return metricsPresent(runs, other).map(({ benchmark, metric }) => {
    const data = tagged(runs, (r) => r.benchmark === benchmark && r.metric === metric).map((
      r,
    ) => ({ run: r.run, series: r.series, length: r.length, value: r.value, n: r.n }));
    const x = lengthAxis(
      data.map((d) => d.length),
      benchmark === "throughput" ? "context (tokens)" : "length (tokens)",
    );
    const bytes = metric.endsWith("bytes");
    const y = {
      field: "value",
      type: "quantitative",
      title: metric,
      scale: { zero: bytes },
      ...(bytes ? { axis: { format: "~s" } } : {}),
    };
    return {
      id: `${benchmark}-${metric}`,
      title: `${benchmark}: ${metric} against ${benchmark === "throughput" ? "context" : "length"}`,
      caption: `One line per method and density, one panel per run.`,
      marks: data.length,
      spec: linesSpec(data, runFacet, { x, y, color: seriesColor }, [
        { field: "series" },
        { field: "length" },
        { field: "value", format: ".4~g" },
        { field: "n" },
      ]),
    };
  });
}

/** One plan's Pareto point as the plan's provenance records it (solver/pipeline.ts). */
interface ParetoPoint {
  validation_loss: number;
  densities: Record<string, number>;
}

function recordedPareto(p: Record<string, unknown>): ParetoPoint[] | null {
  const v = p.pareto;
  if (!Array.isArray(v) || v.length === 0) return null;
  const ok = v.every((x) =>
    typeof x === "object" && x !== null && typeof x.validation_loss === "number" &&
    typeof x.densities === "object" && x.densities !== null
  );
  return ok ? v as ParetoPoint[] : null;
}

/**
 * The MoA plans' Pareto sets: each Pareto plan's mean density at the serving length against its
 * validation loss, the chosen plan (lowest validation loss) ringed.
 * @returns the chart (null when no plan recorded its set) and the plans that did not
 */
export function paretoChart(runs: RunFolder[]): { chart: Chart | null; unrecorded: string[] } {
  const unrecorded: string[] = [];
  const data = runs.flatMap((run) =>
    run.plans.flatMap(({ method, density, plan }) => {
      const front = recordedPareto(plan.provenance);
      if (!front) {
        unrecorded.push(`${run.label}: ${seriesName(method, density)}`);
        return [];
      }
      const best = Math.min(...front.map((p) => p.validation_loss));
      return front.map((p) => ({
        run: run.label,
        plan: seriesName(method, density),
        density: p.densities[`density@${plan.servingLength}`] ??
          Math.max(...Object.values(p.densities)),
        loss: p.validation_loss,
        chosen: p.validation_loss === best ? "chosen" : "Pareto",
      }));
    })
  );
  if (data.length === 0) return { chart: null, unrecorded };
  const x = {
    field: "density",
    type: "quantitative",
    title: "mean density at the serving length",
    scale: { zero: false, padding: 10 },
  };
  const y = {
    field: "loss",
    type: "quantitative",
    title: "validation loss (nats)",
    scale: { zero: false, padding: 10 },
  };
  return {
    unrecorded,
    chart: {
      id: "plan-pareto",
      title: "MoA plans: Pareto sets",
      caption: `Each point is a plan of the solver's Pareto set (over the profiled lengths' ` +
        `losses) at its density budget; the ringed point is the chosen one, lowest validation loss.`,
      marks: data.length,
      spec: {
        data: { values: data },
        facet: { column: runFacet },
        spec: {
          width: W,
          height: H,
          layer: [
            {
              name: "data",
              mark: { type: "point", filled: true, size: 50 },
              encoding: {
                x,
                y,
                color: { field: "plan", type: "nominal", title: "plan", sort: null },
                tooltip: [{ field: "plan" }, { field: "density", format: ".3f" }, {
                  field: "loss",
                  format: ".4f",
                }, { field: "chosen" }],
              },
            },
            {
              transform: [{ filter: "datum.chosen === 'chosen'" }],
              mark: { type: "point", size: 260, strokeWidth: 2, color: "black" },
              encoding: { x, y, shape: { field: "chosen", type: "nominal", title: null } },
            },
          ],
        },
      },
    },
  };
}

/** The plan map: layer × kv head, coloured by each head's span at every served length. */
export function planMapChart(runs: RunFolder[]): Chart | null {
  const data = runs.flatMap((run) => {
    const lengths: number[] = run.resolved.experiment.lengths ?? [];
    return run.plans.flatMap(({ method, density, plan }) =>
      lengths.flatMap((length) =>
        plan.alphas.flatMap((row, layer) =>
          row.map((alpha, head) => ({
            plan: `${run.label}: ${seriesName(method, density)}`,
            length,
            layer,
            head,
            span: Math.round(elasticSpan(alpha, plan.betas[layer]![head]!, length)),
            alpha,
            beta: plan.betas[layer]![head]!,
          }))
        )
      )
    );
  });
  if (data.length === 0) return null;
  const heads = Math.max(...data.map((d) => d.head)) + 1;
  const enc = {
    x: { field: "head", type: "ordinal", title: "kv head" },
    y: { field: "layer", type: "ordinal", title: "layer" },
  };
  return {
    id: "plan-map",
    title: "MoA plans: span of each kv head",
    caption: `Each cell is one kv head; its colour and number are the keys it attends to besides ` +
      `the sink, α + β·n (at most n), at each served length n.`,
    marks: data.length,
    spec: heatmapSpec(
      data,
      {
        row: { field: "plan", type: "nominal", title: null, sort: null },
        column: { field: "length", type: "ordinal", title: "served length" },
      },
      {
        ...enc,
        color: {
          field: "span",
          type: "quantitative",
          title: "span (tokens)",
          scale: { type: "log", scheme: "blues" },
        },
      },
      [{ field: "layer" }, { field: "head" }, { field: "span" }, { field: "alpha", title: "α" }, {
        field: "beta",
        title: "β",
      }],
      { text: { field: "span" }, color: { value: "black" }, fontSize: 8 },
      { width: Math.max(60, 22 * heads), height: { step: 22 } },
    ),
  };
}

/**
 * Each metric's trend over the history for the experiments in the report: one chart per
 * (experiment, metric) with two entries or more, a line per method, density and length.
 */
export function trendCharts(history: HistoryRow[], runs: RunFolder[]): Chart[] {
  const names = new Set(runs.map((r) => r.resolved.experiment.name));
  const rows = history.filter((h) =>
    names.has(h.experiment) && Number.isFinite(h.value) && !DECILE.test(h.metric) &&
    !NOT_DRAWN.has(h.metric)
  );
  const groups = new Map<string, HistoryRow[]>();
  for (const h of rows) {
    const k = `${h.experiment}/${h.metric}`;
    groups.set(k, [...(groups.get(k) ?? []), h]);
  }
  // a trend needs two entries at least (one entry is the run itself, drawn above)
  return [...groups.entries()].filter(([, hs]) => new Set(hs.map(entryKey)).size >= 2).map(
    ([key, hs]) => {
      const [experiment, metric] = key.split("/") as [string, string];
      const data = hs.map((h) => ({
        date: h.date,
        value: h.value,
        commit: h.git_sha,
        run_id: h.run_id,
        series: `${seriesName(h.method, h.density)} n=${h.length}`,
      }));
      const x = { field: "date", type: "temporal", title: "run date" };
      const y = { field: "value", type: "quantitative", title: metric, scale: { zero: false } };
      return {
        id: `trend-${experiment}-${metric}`.replace(/[^\w.-]+/g, "_"),
        title: `${experiment}: ${metric} over the history`,
        caption: `One point per history entry (commit, date, run id); one line per method, ` +
          `density and length.`,
        marks: data.length,
        spec: {
          data: { values: data },
          width: 2 * W,
          height: H,
          layer: [
            {
              mark: { type: "line" },
              encoding: { x, y, color: { field: "series", type: "nominal", title: "cell" } },
            },
            {
              name: "data",
              mark: { type: "point", filled: true, size: 40 },
              encoding: {
                x,
                y,
                color: { field: "series", type: "nominal", title: "cell" },
                tooltip: [{ field: "date", type: "temporal" }, { field: "commit" }, {
                  field: "run_id",
                }, {
                  field: "value",
                  format: ".4~g",
                }],
              },
            },
          ],
        },
      };
    },
  );
}
