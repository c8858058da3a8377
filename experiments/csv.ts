/**
 * The tidy CSV every experiment writes: one row per measurement (`metrics.csv`), and one row
 * per benchmark case (`cases.csv`: each case's outcome, which paired comparisons read).
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
 * Reads a CSV file and checks that its header has every column named.
 * @param what the file's kind, for messages (e.g. `metrics.csv`)
 * @param hint said after a missing column, e.g. what the file was expected to be
 * @returns its rows as strings, or null when the file does not exist and `missingOk`
 * @throws InputError when the file cannot be read (or is missing, unless `missingOk`) or its
 *   header lacks a column
 */
export async function readCsvFile(
  path: string,
  columns: readonly string[],
  what: string,
  opts: { missingOk?: boolean; hint?: string } = {},
): Promise<Record<string, string>[] | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound && opts.missingOk) return null;
    throw new InputError(`${path}: cannot read ${what} (${(e as Error).message})`);
  }
  const parsed = csvParse(text);
  for (const c of columns) {
    if (!parsed.columns.includes(c)) {
      throw new InputError(
        `${path}: header lacks column '${c}'${opts.hint ? ` (${opts.hint})` : ""}`,
      );
    }
  }
  return parsed.map((r) => Object.fromEntries(parsed.columns.map((c) => [c, r[c] ?? ""])));
}

/**
 * Reads a metrics.csv written by `writeMetricsCsv`.
 * @throws InputError when the file is missing or its header lacks a column
 */
export async function readMetricsCsv(path: string): Promise<Row[]> {
  const rows = (await readCsvFile(path, CSV_COLUMNS, "metrics.csv"))!;
  return rows.map((r) => Object.fromEntries(CSV_COLUMNS.map((c) => [c, r[c]!])) as Row);
}

/** The columns of cases.csv, in order. */
export const CASE_COLUMNS = ["run_id", "cell", "case", "hash", "score"] as const;

/** One row of cases.csv: a case's outcome in a cell. */
export type CaseRow = Record<(typeof CASE_COLUMNS)[number], string | number>;

/** Writes per-case rows as CSV with the standard columns, atomically. */
export async function writeCasesCsv(path: string, rows: CaseRow[]): Promise<void> {
  await writeFileAtomic(path, csvFormat(rows, [...CASE_COLUMNS]) + "\n");
}

/**
 * Reads a cases.csv written by `writeCasesCsv`; a missing file is no rows (runs made before
 * per-case outcomes were recorded have none).
 * @throws InputError when the header lacks a column or a score is not a number in [0, 1]
 */
export async function readCasesCsv(path: string): Promise<CaseRow[]> {
  const rows = await readCsvFile(path, CASE_COLUMNS, "cases.csv", { missingOk: true });
  return (rows ?? []).map((r, i) => {
    const score = Number(r.score);
    if (r.score === "" || !(score >= 0 && score <= 1)) {
      throw new InputError(
        `${path}:${i + 2}: score: expected a number in [0, 1], got '${r.score}'`,
      );
    }
    return { run_id: r.run_id!, cell: r.cell!, case: r.case!, hash: r.hash!, score };
  });
}
