/**
 * `deno task bench scale`'s CSV in the report: each stage's time, and its peak memory where
 * measured, against length, one panel per model shape, on log–log axes (where growth
 * exponents are slopes).
 *
 * The layout read: one row per (shape, length, stage), columns `shape`, `length`, `stage` and
 * `seconds`, optionally `peak_rss_bytes` (or `peak_bytes`; any others are ignored; rows with stage
 * `failed` are left out). A stage run per method (decode
 * dense and MoA) names it in the stage or in an optional `method` column.
 *
 * @module
 */
import { InputError } from "../../runtime/errors.ts";
import { readCsvFile } from "../csv.ts";
import { type Chart, linesSpec } from "./charts.ts";

/** One row of the scale CSV. */
export interface ScaleRow {
  shape: string;
  length: number;
  stage: string;
  seconds: number;
  /** NaN where not measured. */
  peakBytes: number;
}

/** Columns the scale CSV must have. */
export const SCALE_COLUMNS = ["shape", "length", "stage", "seconds"] as const;

/**
 * Reads the scale CSV; a missing file is null (the report leaves the charts out).
 * @throws InputError naming the file, line and column when it is malformed
 */
export async function readScaleCsv(path: string): Promise<ScaleRow[] | null> {
  const parsed = await readCsvFile(path, SCALE_COLUMNS, "the scale CSV", {
    missingOk: true,
    hint: `expected ${SCALE_COLUMNS.join(", ")}[, peak_rss_bytes]`,
  });
  if (parsed === null) return null;
  // rows of a (model, length) that failed (stage `failed`, no time) are left out of the charts
  return parsed.flatMap((r, i) =>
    r.stage === "failed" ? [] : [r].map(() => {
      const num = (k: string, optional: boolean) => {
        const v = r[k] ?? "";
        if (v === "" && optional) return NaN;
        const x = Number(v);
        if (v === "" || !Number.isFinite(x) || x < 0) {
          throw new InputError(`${path}:${i + 2}: ${k}: expected a number ≥ 0, got '${v}'`);
        }
        return x;
      };
      const method = r.method ? ` ${r.method}` : "";
      return {
        shape: r.shape!,
        length: num("length", false),
        stage: `${r.stage}${method}`,
        seconds: num("seconds", false),
        // `deno task bench scale` writes peak_rss_bytes; peak_bytes is the older name
        peakBytes: num(r.peak_rss_bytes !== undefined ? "peak_rss_bytes" : "peak_bytes", true),
      };
    })
  );
}

/** Time (and peak memory, where measured) of each stage against length, per shape. */
export function scaleCharts(rows: ScaleRow[]): Chart[] {
  const lengths = [...new Set(rows.map((r) => r.length))].sort((a, b) => a - b);
  const chart = (id: string, title: string, field: "seconds" | "peakBytes", yTitle: string) => {
    const data = rows.filter((r) => Number.isFinite(r[field]) && r[field] > 0).map((r) => ({
      shape: r.shape,
      stage: r.stage,
      length: r.length,
      value: r[field],
    }));
    const x = {
      field: "length",
      type: "quantitative",
      title: "length (tokens)",
      scale: { type: "log", base: 2, nice: false, padding: 12 },
      axis: { values: lengths, format: "d" },
    };
    const y = {
      field: "value",
      type: "quantitative",
      title: yTitle,
      scale: { type: "log" },
      ...(field === "peakBytes" ? { axis: { format: "~s" } } : {}),
    };
    const color = { field: "stage", type: "nominal", title: "stage", sort: null };
    return data.length === 0 ? null : {
      id,
      title,
      caption: `deno task bench scale: one panel per model shape, log–log axes (a growth ` +
        `exponent is a slope). Random weights of the real shapes: time and memory only.`,
      marks: data.length,
      spec: linesSpec(
        data,
        { field: "shape", type: "nominal", title: null, sort: null },
        { x, y, color },
        [{ field: "shape" }, { field: "stage" }, { field: "length" }, {
          field: "value",
          format: ".4~g",
        }],
        [],
        { width: 220, height: 180 },
      ),
    } satisfies Chart;
  };
  return [
    chart("scale-time", "Scale: time of each stage against length", "seconds", "seconds"),
    chart(
      "scale-memory",
      "Scale: peak memory of each stage against length",
      "peakBytes",
      "peak bytes",
    ),
  ].filter((c): c is NonNullable<typeof c> => c !== null);
}
