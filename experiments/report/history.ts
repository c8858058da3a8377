/**
 * The history of finished runs: one CSV (default `results/history.csv`) that every run can be
 * appended to, keyed by git commit, date and run id, one row per measurement. Reports draw each
 * metric's trend over it; comparisons take the spread of timed metrics over its recent entries
 * as their noise.
 *
 * @module
 */
// @ts-types="@types/d3-dsv"
import { csvFormat } from "d3-dsv";
import { writeFileAtomic } from "../../runtime/atomic.ts";
import { InputError } from "../../runtime/errors.ts";
import { readCsvFile } from "../csv.ts";
import type { MetricRow, RunFolder } from "./runs.ts";

/** The history's columns, in order; (git_sha, date, run_id) is an entry's key. */
export const HISTORY_COLUMNS = [
  "git_sha",
  "date",
  "run_id",
  "experiment",
  "cell",
  "method",
  "density",
  "length",
  "benchmark",
  "metric",
  "value",
  "n",
  "device",
] as const;

/** One row of the history: a metrics.csv row with the run it came from. */
export interface HistoryRow extends
  Pick<
    MetricRow,
    "cell" | "method" | "density" | "length" | "benchmark" | "metric" | "value" | "n" | "device"
  > {
  git_sha: string;
  /** When the run's last cell started (ISO 8601): the entry's date. */
  date: string;
  run_id: string;
  experiment: string;
}

/** The key of a history entry: one run folder's rows share it. */
export const entryKey = (r: Pick<HistoryRow, "git_sha" | "date" | "run_id">) =>
  `${r.git_sha} ${r.date} ${r.run_id}`;

/** A run folder's rows as history rows (its date: the latest start time among its cells). */
export function historyRows(run: RunFolder): HistoryRow[] {
  const date = run.rows.map((r) => r.started_at).filter((s) => s !== "").sort().at(-1) ?? "";
  return run.rows.map((r) => ({
    git_sha: r.git_sha || run.resolved.git_sha,
    date,
    run_id: run.resolved.run_id,
    experiment: run.resolved.experiment.name,
    cell: r.cell,
    method: r.method,
    density: r.density,
    length: r.length,
    benchmark: r.benchmark,
    metric: r.metric,
    value: r.value,
    n: r.n,
    device: r.device,
  }));
}

/**
 * Reads the history; a missing file is an empty history.
 * @throws InputError when the header lacks a column or a number is malformed
 */
export async function readHistory(path: string): Promise<HistoryRow[]> {
  const parsed = await readCsvFile(path, HISTORY_COLUMNS, "the history", {
    missingOk: true,
    hint: "is it a history file?",
  });
  return (parsed ?? []).map((r, i) => {
    const num = (k: "density" | "length" | "value" | "n") => {
      const v = r[k] ?? "";
      const x = v === "" ? NaN : Number(v);
      if (Number.isNaN(x) && v !== "") {
        throw new InputError(`${path}:${i + 2}: ${k}: expected a number, got '${v}'`);
      }
      return x;
    };
    return {
      git_sha: r.git_sha!,
      date: r.date!,
      run_id: r.run_id!,
      experiment: r.experiment!,
      cell: r.cell!,
      method: r.method!,
      density: num("density"),
      length: num("length"),
      benchmark: r.benchmark!,
      metric: r.metric!,
      value: num("value"),
      n: num("n"),
      device: r.device!,
    };
  });
}

/**
 * Appends runs to the history, replacing an entry with the same key (appending a folder twice
 * changes nothing), and writes it atomically, entries in date order.
 * @returns the entries added and the entries replaced
 */
export async function appendHistory(
  path: string,
  runs: RunFolder[],
): Promise<{ added: number; replaced: number }> {
  const old = await readHistory(path);
  const fresh = runs.flatMap(historyRows);
  const keys = new Set(fresh.map(entryKey));
  const oldKeys = new Set(old.map(entryKey));
  const kept = old.filter((r) => !keys.has(entryKey(r)));
  // a stable sort by date keeps each entry's rows in their run's order
  const all = [...kept, ...fresh].sort((a, b) => a.date.localeCompare(b.date));
  const out = all.map((r) => ({ ...r, value: Number.isNaN(r.value) ? "" : r.value }));
  await writeFileAtomic(path, csvFormat(out, [...HISTORY_COLUMNS]) + "\n");
  const replaced = [...keys].filter((k) => oldKeys.has(k)).length;
  return { added: keys.size - replaced, replaced };
}

/**
 * Earlier values of a run's timed metrics from the history: for each (cell, metric) that matches
 * `metric`, the values of up to `last` earlier entries of the same experiment on the same device
 * (the run's own entry left out), for the comparison's noise band.
 * @returns values keyed `<cell> <metric>`
 */
export function historyRepeats(
  history: HistoryRow[],
  run: RunFolder,
  metric: (name: string) => boolean,
  last = 10,
): Map<string, number[]> {
  const own = new Set(historyRows(run).map(entryKey));
  const devices = new Map(run.rows.map((r) => [`${r.cell} ${r.metric}`, r.device]));
  const byKey = new Map<string, HistoryRow[]>();
  for (const h of history) {
    const key = `${h.cell} ${h.metric}`;
    if (
      h.experiment !== run.resolved.experiment.name || !metric(h.metric) ||
      own.has(entryKey(h)) || devices.get(key) !== h.device || Number.isNaN(h.value)
    ) continue;
    byKey.set(key, [...(byKey.get(key) ?? []), h]);
  }
  const out = new Map<string, number[]>();
  for (const [key, rows] of byKey) {
    out.set(
      key,
      rows.sort((a, b) => a.date.localeCompare(b.date)).slice(-last).map((r) => r.value),
    );
  }
  return out;
}
