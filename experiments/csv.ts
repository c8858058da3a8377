/**
 * The tidy CSV every experiment writes: one row per measurement.
 *
 * @module
 */
// @ts-types="@types/d3-dsv"
import { csvFormat, csvParse } from "d3-dsv";
import { writeFileAtomic } from "../runtime/atomic.ts";
import { InputError } from "../runtime/errors.ts";

/** The columns of metrics.csv, in order. */
export const CSV_COLUMNS = [
  "experiment",
  "run_id",
  "cell",
  "model",
  "method",
  "density",
  "length",
  "benchmark",
  "metric",
  "value",
  "n",
  "seed",
  "backend",
  "device",
  "git_sha",
  "started_at",
] as const;

/** One row of metrics.csv. */
export type Row = Record<(typeof CSV_COLUMNS)[number], string | number>;

/** Writes rows as CSV with the standard columns, atomically. */
export async function writeMetricsCsv(path: string, rows: Row[]): Promise<void> {
  await writeFileAtomic(path, csvFormat(rows, [...CSV_COLUMNS]) + "\n");
}

/**
 * Reads a metrics.csv written by `writeMetricsCsv`.
 * @throws InputError when the file is missing or its header lacks a column
 */
export async function readMetricsCsv(path: string): Promise<Row[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    throw new InputError(`${path}: cannot read metrics.csv`);
  }
  const parsed = csvParse(text);
  for (const c of CSV_COLUMNS) {
    if (!parsed.columns.includes(c)) throw new InputError(`${path}: header lacks column '${c}'`);
  }
  return parsed.map((r) => Object.fromEntries(CSV_COLUMNS.map((c) => [c, r[c] ?? ""])) as Row);
}
